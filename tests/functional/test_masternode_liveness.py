"""Four ``timecoind`` masternodes (the devnet genesis's Gold masternodes, each with its own key)
in a ring over loopback: each signs heartbeats, gossip carries them to all, and
``masternodelist``/``masternodestatus`` report every masternode online from liveness only
(DESIGN §5; heartbeats never change weights, invariant 7). A killed masternode keeps its
registration and weight while its liveness goes stale.
"""

from __future__ import annotations

import pytest

from timecoin.rpc import errors
from timecoin.testing.node import (
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    masternode_network,
    wait_until,
)

N = 4


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    chain = build_devnet_chain(tmp_path_factory.mktemp("mn_liveness"), 0, 0)
    with masternode_network(chain, N, default_port_seed() + 20, mesh=False) as nodes:
        yield nodes


def test_every_masternode_sees_all_online(nodes):
    for node in nodes:
        wait_until(
            lambda n=node: sum(row["online"] for row in n.rpc.masternodelist()) == N,
            30,
            what=f"{node} sees {N} masternodes online",
        )
    rows = nodes[0].rpc.masternodelist()
    assert len(rows) == N and len({r["public_key"] for r in rows}) == N
    assert {str(r["tier"]).lower() for r in rows} == {"gold"}
    own = nodes[1].rpc.masternodestatus()
    assert own["online"] and own["public_key"] in {r["public_key"] for r in rows}


def test_weights_do_not_follow_liveness(nodes):
    before = {r["public_key"]: r["weight"] for r in nodes[0].rpc.masternodelist()}
    nodes[3].kill()
    after = {r["public_key"]: r["weight"] for r in nodes[0].rpc.masternodelist()}
    assert after == before


def test_status_errors(nodes):
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "32 bytes", nodes[0].rpc.masternodestatus, "abcd")
    unknown = nodes[0].rpc.masternodestatus("11" * 32)
    assert unknown["registered"] is False and unknown["reason"]
