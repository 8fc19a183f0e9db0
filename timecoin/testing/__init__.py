"""Test harness shipped in the package (DESIGN §2): deterministic chains (:mod:`.chaingen`),
and real node processes with ``TestNode``, ``wait_until`` and ``assert_raises_rpc_error``
(:mod:`.node`). The node's own code never imports it (its crash points are
:mod:`timecoin.failpoints`)."""
