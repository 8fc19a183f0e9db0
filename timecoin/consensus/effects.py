"""What the consensus logic asks its driver to do (DESIGN §2: "it takes messages and time in,
and gives messages, store writes and timers out").

Every entry point of :class:`timecoin.consensus.engine.Consensus` returns a list of effects. The
driver executes them **in order**, each finished before the next starts: a :class:`Persist` must
be durable before any later :class:`Broadcast`/:class:`SendTo`/:class:`Reply` leaves and before
any later :class:`TransactionFinalized` is reported, which is how "persist, then send" (signer
safety, DESIGN §7) and "durable before anyone is told" (DESIGN §6, §12 invariant 5) are
guaranteed. A driver also runs all effects of one call before it feeds the engine its next input
(they describe the state right after that call). ``timecoin.consensus.runner.EffectRunner`` is
the reference driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from timecoin.core.types import Block, BlockView
    from timecoin.ledger.blockbuilder import Election

__all__ = [
    "Encodable",
    "ApplyBlock",
    "Broadcast",
    "BuildBlock",
    "CheckBlock",
    "Effect",
    "Evidence",
    "FetchTransactions",
    "Persist",
    "Reply",
    "ScheduleTimer",
    "SendTo",
    "ServeDecision",
    "Sweep",
    "SyncBlock",
    "Timer",
    "TransactionFinalized",
    "TransactionRejected",
    "Writes",
]

Writes = tuple[tuple[bytes, bytes, bytes | None], ...]
"""(database, key, value or None to delete): ``ChainStore.write`` input."""


class Encodable(Protocol):
    """Something whose encoding is built when asked (a certificate by reference)."""

    def encode(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer's identity: ``name`` and the (height, round) it belongs to. A timer that fires
    after its height or round has passed is ignored by the logic, so drivers never cancel."""

    name: str
    height: int = 0
    round: int = 0


@dataclass(frozen=True, slots=True)
class Persist:
    """Write these records durably, in one store transaction, before the next effect."""

    writes: Writes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Gossip an encoded consensus message to every peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Resend:
    """Gossip an encoded consensus message to every peer again, even those that had it (votes
    re-sent on a round change, the proof of lock of a re-proposal)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class RelayTransactions:
    """Send these encoded pending transactions to every peer again, even one that had them: a
    peer with a full mempool dropped them, and a masternode that never holds a transaction
    never votes on it (finality could stall for good)."""

    raws: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send an encoded message to the masternode with this public key (a Snowball query, a
    decision request): the driver maps the key to a connection (or gossips if it has none)."""

    masternode: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class FetchTransactions:
    """Ask the masternode ``masternode`` for these transactions: its verified vote accepted them
    and this node does not hold them (DESIGN §8: "votes naming unknown txids make the node fetch
    them, within a bound"). The driver asks that masternode's connection within its per-peer
    bound (``timecoin.p2p.gossip``), and the connection pays for txids it never serves; a driver
    without such a path (the simulation) ignores it."""

    masternode: bytes
    txids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Sweep:
    """Delete these (database, key) records when convenient: records a committed block made
    useless that no invariant needs deleted at once (the finalized records it archived, the vote
    batches only they named, the signer's accept records of the outpoints it spent;
    ``timecoin.store.sweeper``). A node deletes them a chunk at a time after the block; a
    driver without a sweeper writes them at once."""

    keys: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class SyncBlock:
    """``peer`` served a verified decision of ``height`` whose block this node cannot rebuild
    from its own transactions (the decision, too large for one message whole, carried the
    coinbase only): fetch the blocks up to ``height`` from it by block sync, which carries
    certified blocks of any size in chunks (DESIGN §4, §8). The driver raises the peer's claimed
    height to ``height`` (a hint: cut if it fails to serve); each block synced is then a block
    connected outside the engine."""

    peer: Any
    height: int


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the peer a message came from (``peer`` is the driver's own peer id)."""

    peer: Any
    data: bytes


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Call ``Consensus.on_timer(timer, now)`` once the clock reaches ``at`` (unix seconds)."""

    timer: Timer
    at: float


@dataclass(frozen=True, slots=True)
class ApplyBlock:
    """Block ``height`` is committed: connect ``block`` with ``ChainState.connect_block``, with
    ``certificate`` (the encoded commit certificate, ``consensus`` database) and the deletes of the
    finalized records it archives as ``extra`` writes of its store transaction, then call
    ``Consensus.on_block_applied`` with ``view``, the same block as the engine checked it (so it
    is not split and hashed again). Nothing after this effect in the same list depends on it."""

    height: int
    block_hash: bytes
    block: bytes
    certificate: bytes
    view: Block | BlockView


@dataclass(frozen=True, slots=True)
class CheckBlock:
    """Check the encoded ``block`` (hash ``block_hash``) as block ``height`` on the chain's tip
    (``timecoin.consensus.blocks.check_block`` with the set's ``keys`` and ``weights``), then
    feed the verdict, the ``CheckedBlock`` or the ``BlockRejected`` it raised, to
    ``Consensus.on_block_checked``. Only an engine made with ``offload_blocks`` asks for this.
    The check only reads the chain (the UTXO set lets a write wait for it), so a driver may run
    it on another thread while its loop goes on; the engine waits for the verdict as it waits
    for a missing transaction, and ignores one that arrives after its height has passed."""

    height: int
    block_hash: bytes
    block: bytes
    keys: tuple[bytes, ...]
    weights: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BuildBlock:
    """Assemble this node's block for ``round`` of ``height``, as the leader ``election``
    (``timecoin.consensus.blocks.build_elected``), from ``transactions`` ((txid, encoded
    transaction) pairs the engine chose, in order) stamped for time ``now``, then feed the
    encoded block, or the exception the build raised, to ``Consensus.on_block_built``. Only an
    engine made with ``offload_blocks`` asks for this; like :class:`CheckBlock` it only reads
    the chain, so a driver may run it on another thread. A block built for a round the engine
    has left is dropped."""

    height: int
    round: int
    election: Election
    transactions: tuple[tuple[bytes, bytes], ...]
    now: float


@dataclass(frozen=True, slots=True)
class ServeDecision:
    """Send ``peer`` the committed block of ``height`` with its commit certificate (a
    ``messages.Decision``), read from the store, if this node has it."""

    peer: Any
    height: int


@dataclass(slots=True)
class TransactionFinalized:
    """``txid`` is final: its transaction and finality certificate are already durable (the
    :class:`Persist` before this effect). Tell clients, wallets, RPC waiters. Not frozen, unlike
    the other effects: there is one per final transaction on every node, and a frozen
    dataclass's ``__init__`` makes a call per field (treat it as read-only all the same)."""

    txid: bytes
    transaction: bytes
    certificate: bytes | Encodable
    """The finality certificate: encoded, or by reference (``finality.CertificateRefs``, encoded
    on request: :meth:`certificate_bytes`); empty when a block settled a conflict (the block's
    commit certificate is then the proof)."""
    latency: float | None
    """Seconds from this node first seeing the transaction to finality, if it saw it."""
    block_height: int | None = None
    """The height of the block that settled it, when a block did."""

    def certificate_bytes(self) -> bytes:
        """The encoded finality certificate (empty when a block settled it)."""
        cert = self.certificate
        return cert if isinstance(cert, bytes) else cert.encode()


@dataclass(frozen=True, slots=True)
class TransactionRejected:
    """``txid`` will not become final here: rejected by more than 1/3 of the weight, spending an
    outpoint another transaction spent with finality or in a block; its locks are released."""

    txid: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """A masternode signed two conflicting messages (``kind``: ``double-prevote``,
    ``double-precommit``, ``double-proposal``, ``contradictory-tx-vote``, ``conflicting-accept``);
    ``messages`` are both encodings, for operators and future slashing."""

    kind: str
    masternode: bytes
    height: int
    messages: tuple[bytes, ...]


Effect = (
    Persist
    | Broadcast
    | Resend
    | RelayTransactions
    | SendTo
    | FetchTransactions
    | Reply
    | ScheduleTimer
    | ApplyBlock
    | BuildBlock
    | CheckBlock
    | ServeDecision
    | TransactionFinalized
    | TransactionRejected
    | Evidence
)
