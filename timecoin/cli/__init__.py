"""Command-line entry points: ``timecoin`` (tools); ``timecoind`` and ``timecoin-cli`` arrive
with the node (issue: the node as a product)."""
