"""airspeed velocity benchmarks (asv.conf.json, ``.ci/bench``; docs/benchmarks.md "History and the
regression gate"): the workloads of the pytest-benchmark suites (:mod:`workloads`), measured per
commit for a history.

* :mod:`.instructions`: instruction counts under callgrind (``track_``, unit "instructions"):
  what ``.ci/bench`` gates on;
* :mod:`.wall`: wall time of the same hot paths (``time_``), shown beside them, not gated (this
  machine's other work moves them by more than a regression would);
* :mod:`.knee`: the devnet's saturation knee (tx/s), only when ``TIMECOIN_BENCH_KNEE`` asks for it
  (minutes per commit); higher is better, so it is never gated.
"""

import sys
from pathlib import Path

# asv imports this package alone (not its parent directory): put benches/ on the path, as
# pyproject.toml's pytest `pythonpath` does, so `workloads` and `callgrind` import here too.
_BENCHES = str(Path(__file__).resolve().parent.parent)
if _BENCHES not in sys.path:
    sys.path.insert(0, _BENCHES)
