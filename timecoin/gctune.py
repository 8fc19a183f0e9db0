"""The garbage collector of a node process (docs/operator.md, "Memory").

A node allocates a few objects per transaction, vote and frame and frees nearly all of them by
reference counting; CPython's cyclic collector, run after every 700 net allocations by default,
then spends its time scanning the long-lived start-up state (chain, indexes, modules) and finds
no garbage: 13–16 % of the main thread at 2,750 tx/s on the 2-core development machine. So once
the node has started, :func:`settle` collects once, moves everything alive into the permanent
generation (``gc.freeze``: never scanned again) and raises the thresholds (:data:`GC_THRESHOLDS`)
so that the youngest generation is collected every 50,000 net allocations: about 20 times a
second at 10,000 tx/s, each a scan of at most that many young objects.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["GC_THRESHOLDS", "settle"]

log = logging.getLogger(__name__)

GC_THRESHOLDS = (50_000, 20, 50)
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
