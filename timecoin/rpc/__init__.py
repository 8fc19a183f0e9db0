"""JSON-RPC: the server (:mod:`.server`), methods by area (``blockchain``, ``rawtransactions``,
``mempool``, ``network``, ``util``, ``control``), their table (:mod:`.methods`), error codes
(:mod:`.errors`) and a client (:mod:`.client`)."""
