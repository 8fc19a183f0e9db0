"""Fixtures of the simulator tests: real consensus, real LMDB stores, a fake clock and an
in-memory network (``timecoin.testing.consensus_sim``)."""

from __future__ import annotations

import pytest

from timecoin.testing.consensus_sim import Simulation


@pytest.fixture
def make_sim(tmp_path):
    """``make_sim(masternodes=4, seed=0, **options)``: a started simulation (``options``: more
    ``Simulation`` arguments), closed after the test."""
    sims = []

    def make(masternodes=4, seed=0, **options):
        sim = Simulation(tmp_path / f"sim{len(sims)}", masternodes, seed=seed, **options).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.close()
