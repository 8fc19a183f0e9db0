"""The load test of DESIGN §11: pre-signed transactions (:mod:`.generator`) submitted open-loop at
a target rate over the nodes (:mod:`.submitter`), finality followed per transaction
(:mod:`.follower`), and a JSON report with a plot (:mod:`.report`); :mod:`.runner` drives one
run and :mod:`.cli` is ``timecoin loadtest``."""
