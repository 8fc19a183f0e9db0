"""Masternodes (DESIGN §5; docs/masternodes.md).

Consensus (pure functions of chain data; nothing reads gossip, the clock or the network):

* :mod:`timecoin.masternode.registry` — the set of each height from the chain: registration,
  deregistration, payout changes, collateral spends, rollback; :mod:`.records` its storage layout.
* :mod:`timecoin.masternode.weights` — fixed-point weights: tier × longevity × reputation.
* :mod:`timecoin.masternode.leader` — the VRF-weighted leader order and proposer eligibility.

Liveness and reporting (never an input to the above, DESIGN §12 invariant 7):

* :mod:`timecoin.masternode.heartbeat` — signed heartbeats, online/offline, the production gate.
* :mod:`timecoin.masternode.status` — the data behind ``masternodelist`` / ``masternodestatus``.
"""
