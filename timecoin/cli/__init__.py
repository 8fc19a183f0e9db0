"""Command-line entry points: ``timecoind`` (the node daemon, :mod:`.daemon`), ``timecoin-cli``
(JSON-RPC client, :mod:`.client`) and ``timecoin`` (tools, :mod:`.main`)."""
