"""The end-to-end fault runner (DESIGN §13 "Proof by faults"; CometBFT's ``test/e2e`` is the
model; docs/e2e.md): a TOML manifest of masternodes and faults (:mod:`.manifest`), a seeded
schedule (:mod:`.schedule`), real ``timecoind`` processes perturbed while the real load test runs
(:mod:`.network`, :mod:`.perturb`, :mod:`.byzantine`, :mod:`.runner`), a history checker over
RPC (:mod:`.checker`) and a JSON report with a timeline plot (:mod:`.report`).

Nothing here is imported by the node: it drives nodes from the outside, as an operator would.
"""
