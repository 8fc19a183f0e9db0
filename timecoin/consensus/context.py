"""State shared by the finality and BFT halves of one node's consensus, and the outbox both
fill while handling one input (no I/O: the outbox becomes the effect list the driver runs).

The outbox orders its effects so that signer safety and durability hold by construction:
every store write of the step first (one ``Persist``), then messages, then timers, then
notifications, then a committed block's ``ApplyBlock`` (or the block work for the driver,
``CheckBlock`` and ``BuildBlock``: a step that committed a block drops it, it was for the height
it decided), and the ``Sweep`` last. Persisting earlier than strictly needed is never wrong; sending or
reporting before persisting would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from timecoin.consensus.effects import (
    ApplyBlock,
    BuildBlock,
    CheckBlock,
    Effect,
    Persist,
    ScheduleTimer,
    Sweep,
    Timer,
)
from timecoin.consensus.monitor import Monitor
from timecoin.consensus.signer import SignerState
from timecoin.consensus.validators import ValidatorSet
from timecoin.ledger.chain import ChainState
from timecoin.params import NetworkParams

__all__ = ["Context", "Outbox"]


@dataclass
class Context:
    """One node's consensus identity and view: the chain, its masternode key (None for a node
    that only follows), the signer state, and the masternode set of the height being decided
    (tip + 1) and of the one before it."""

    params: NetworkParams
    chain: ChainState
    chain_id: bytes
    secret_key: bytes | None
    public_key: bytes | None
    signer: SignerState | None
    monitor: Monitor
    vset: ValidatorSet
    prev_vset: ValidatorSet | None = None
    behind: bool = False
    """A peer is known to have committed the height being decided: sync instead of voting."""
    perf: Callable[[], float] = field(default=lambda: 0.0)
    max_message_bytes: int | None = None
    """Bytes of one consensus message its transport carries (the P2P LARGE_VOTE item): the
    proposals this node makes and the decisions it serves fit it (None: no limit)."""
    offload_blocks: bool = False
    """Blocks are checked and built by the driver (``CheckBlock``, ``BuildBlock``; answered
    through ``Consensus.on_block_checked`` / ``on_block_built``), which may run them off its
    loop, instead of inside the step that needs them."""

    @property
    def height(self) -> int:
        """The height being decided: tip + 1."""
        return self.vset.height

    @property
    def is_voter(self) -> bool:
        """Whether this node signs votes at the current height: it has a key in the set."""
        return self.secret_key is not None and self.public_key in self.vset and self.signer is not None

    def set_for(self, height: int) -> ValidatorSet | None:
        """The set of ``height`` if it is the current or the previous height."""
        if height == self.vset.height:
            return self.vset
        if self.prev_vset is not None and height == self.prev_vset.height:
            return self.prev_vset
        return None


class Outbox:
    """Effects collected while handling one input, emitted in the safe order."""

    __slots__ = ("writes", "parts", "sends", "timers", "notices", "apply", "offloaded", "sweeps")

    def __init__(self) -> None:
        self.writes: list[tuple[bytes, bytes, bytes | None]] = []
        self.parts: dict[bytes, tuple[bytes, list[bytes]]] = {}
        """database → (key, pieces): one record per database whose value the step builds piece
        by piece (the group of transactions it made final), written joined after
        :attr:`writes`, in the same ``Persist``."""
        self.sends: list[Effect] = []
        self.timers: list[ScheduleTimer] = []
        self.notices: list[Effect] = []
        self.apply: ApplyBlock | None = None
        self.offloaded: list[CheckBlock | BuildBlock] = []
        """Block work for the driver (``Context.offload_blocks``)."""
        self.sweeps: list[tuple[bytes, bytes]] = []
        """(database, key) deletes for whenever (:class:`~timecoin.consensus.effects.Sweep`)."""

    def timer(self, timer: Timer, at: float) -> None:
        self.timers.append(ScheduleTimer(timer, at))

    def effects(self) -> list[Effect]:
        out: list[Effect] = []
        if self.parts:
            self.writes.extend((db, key, b"".join(pieces)) for db, (key, pieces) in self.parts.items())
            self.parts = {}
        if self.writes:
            out.append(Persist(tuple(self.writes)))
        out.extend(self.sends)
        out.extend(self.timers)
        out.extend(self.notices)
        if self.apply is not None:
            out.append(self.apply)
        elif self.offloaded:
            out.extend(self.offloaded)
        if self.sweeps:
            out.append(Sweep(tuple(self.sweeps)))
        return out
