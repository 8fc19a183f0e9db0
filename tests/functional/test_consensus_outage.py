"""An outage longer than the round window, with real ``timecoind`` processes (DESIGN §7 "nodes
behind by rounds catch up", §12 invariant 8; docs/consensus.md §4 "Recovery bound").

Four devnet masternodes in a full mesh; two are killed with SIGKILL (the other two hold 1/2 of
the weight: no quorum). The survivors keep stepping rounds past ``ROUND_WINDOW`` (64). The two
come back from their stores at the round they last signed, far behind: the votes the survivors
re-send at every round change reach them, more than 1/3 of the weight is seen in a higher round,
they jump there, and the four commit again within the documented bound (one round to meet, then
at most f + 1 = 2 rounds: 15 s on the devnet; the test allows 90 s for a busy box).

On 8074c1d the returning nodes dropped the survivors' votes as ``round-too-far`` and the two
groups stepped rounds side by side for good.
"""

from __future__ import annotations

from timecoin.consensus.bft import ROUND_WINDOW
from timecoin.testing.node import build_devnet_chain, default_port_seed, masternode_network, wait_until


def round_of(node) -> int:
    return int(node.rpc.getconsensusinfo()["round_state"]["round"])


def test_outage_longer_than_the_round_window_heals(tmp_path):
    chain = build_devnet_chain(tmp_path / "chain", 0, 0, accounts=16)
    with masternode_network(chain, 4, default_port_seed() + 160) as nodes:
        wait_until(lambda: all(n.rpc.getblockcount() >= 2 for n in nodes), 90, what="first blocks")
        survivors, away = nodes[:2], nodes[2:]
        for node in away:
            node.kill()
        wait_until(
            lambda: min(round_of(n) for n in survivors) > ROUND_WINDOW + 4,
            400,
            what="survivors step past the round window",
        )
        start = max(n.rpc.getblockcount() for n in survivors)
        assert all(n.rpc.getblockcount() == start for n in survivors)  # no quorum while away
        for node in away:
            node.start_and_wait()
        wait_until(
            lambda: all(n.rpc.getblockcount() >= start + 2 for n in nodes),
            90,
            what="blocks again on all four",
        )
        height = min(n.rpc.getblockcount() for n in nodes)
        assert len({n.rpc.getblockhash(height) for n in nodes}) == 1
        assert max(round_of(n) for n in nodes) < ROUND_WINDOW  # the new heights start at round 0
