"""The transactions of the last committed blocks, by txid: what a masternode that missed a
decided block fetches from the masternodes that committed it (DESIGN §7 phase 4: "one missing a
transaction fetches it"; docs/consensus.md, "Compact blocks").

A decided block's transactions leave the finalized pool when the block is committed, so
without this a peer catching up on a :class:`~timecoin.consensus.messages.Decision` whose
compact form names transactions it lacks could get them from nobody.
"""

from __future__ import annotations

from collections import deque

from timecoin.core.types import BlockView

__all__ = ["RECENT_BLOCKS", "RecentBlocks"]

RECENT_BLOCKS = 2
"""Committed blocks whose transactions are served: the tip, which a masternode one height
behind is deciding, and the one before, for one that fell behind during a commit."""


class _Block:
    __slots__ = ("index", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.index: dict[bytes, bytes] | None = None


class RecentBlocks:
    """The last :data:`RECENT_BLOCKS` committed blocks (owned by the node's event-loop task).
    :meth:`add` keeps a reference to the block's bytes; a block is indexed by txid only when a
    transaction is first asked of it, so a node nobody asks does no work per block."""

    def __init__(self) -> None:
        self._blocks: deque[_Block] = deque(maxlen=RECENT_BLOCKS)

    def add(self, raw: bytes) -> None:
        """Remembers a committed block (encoded), dropping the oldest past the bound."""
        self._blocks.append(_Block(raw))

    def transaction(self, txid: bytes) -> bytes | None:
        """The encoded transaction ``txid`` if one of the remembered blocks holds it."""
        for block in reversed(self._blocks):
            if block.index is None:
                view = BlockView.decode(block.raw)
                block.index = dict(zip(view.txids, view.raw_transactions, strict=True))
            found = block.index.get(txid)
            if found is not None:
                return found
        return None
