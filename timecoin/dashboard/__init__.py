"""A read-only web dashboard of one node at ``/ui`` on its JSON-RPC port (issue 16 item 7;
docs/operator.md, "Dashboard"): tip, peers, masternodes, mempool, finalized transactions per
second and finality latency percentiles, live over server-sent events, and the recent blocks.

Off by default (config key ``dashboard``), on in ``timecoin devnet``; served to loopback clients
only. :mod:`timecoin.dashboard.state` samples the node, :mod:`timecoin.dashboard.web` serves the
page, its static files (``static/``: no build step, uPlot vendored) and the event stream. Nothing
here changes node state.
"""

from timecoin.dashboard.web import Dashboard, add_dashboard

__all__ = ["Dashboard", "add_dashboard"]
