"""The garbage collector of a node process (docs/operator.md, "Memory").

A node allocates a few objects per transaction, vote and frame and frees nearly all of them by
reference counting; CPython's cyclic collector, run after every 700 net allocations by default,
then spends its time scanning the long-lived start-up state (chain, indexes, modules) and finds
no garbage: 13–16 % of the main thread at 2,750 tx/s on the 2-core development machine. So once
the node has started, :func:`settle` collects once, moves everything alive into the permanent
generation (``gc.freeze``: never scanned again) and raises the thresholds (:data:`GC_THRESHOLDS`)
so that the youngest generation is collected every 200,000 net allocations.

What a node keeps per transaction in flight gives the collector nothing to track (the records
of ``timecoin.consensus.txstate``, the tally's per-txid state, certificates by reference, the
finality feed), so net allocations grow mostly in the bursts of a block's processing and a
collection scans those few: one node at 6,000 tx/s offered for 40 s ran 2 young collections
(0.14 s, the longest 109 ms) where a threshold of 50,000 ran 42 (1.6 s, the longest 73 ms);
docs/benchmarks.md, "less for the collector to scan".
"""

from __future__ import annotations

import gc
import logging

__all__ = ["GC_THRESHOLDS", "settle"]

log = logging.getLogger(__name__)

GC_THRESHOLDS = (200_000, 20, 50)
"""``gc.set_threshold`` after start-up: net allocations between two collections of generation
0; collections of generation 0 between two of generation 1; of 1 between two full ones."""


def settle() -> None:
    """Called once a long-lived process has built its lasting state (a node once started, the
    load generator once its transactions are signed): collect, freeze what is alive, raise the
    thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("gc: %d start-up objects frozen, thresholds %s", gc.get_freeze_count(), GC_THRESHOLDS)
