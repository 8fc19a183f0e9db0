"""A masternode killed with SIGKILL under load, then restarted (DESIGN §6, §7, §11, §12.4, §12.5).

Four ``timecoind`` masternodes (the devnet genesis's equal Gold masternodes, full mesh over
loopback, 2 s slots) take the real load test (:func:`timecoin.loadtest.runner.run_loadtest`:
pre-signed transfers submitted open-loop with ``sendrawtransactions`` round-robin over all four
nodes, finality followed on each node's ``getfinalityfeed``). Through the runner's
``during_load`` hook, once the load is finalizing, one masternode is killed with SIGKILL:

* the other three (3/4 of the weight, ≥ 2/3) keep finalizing the load and commit blocks made
  entirely without it: the follower's final count grows and every survivor's height passes the
  kill-time height by 3 while it is down (a height whose first leader it is waits out the leader
  timeout and rotates). Submissions routed to the dead node fail (``rpc-error``: never accepted,
  so never reported final);
* it is restarted on the same data directory while the load still runs; it catches up: after the
  load every node has the same tip hash and UTXO set hash at one height (``nodes_agree``);
* no transaction reported final is lost: every txid the follower saw final (including those the
  killed node itself reported final before the kill, and those final while it was down) is final
  on every node, the restarted one included (``lost == 0``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from rich.console import Console

from timecoin.loadtest.follower import Follower
from timecoin.loadtest.runner import LoadTestConfig, run_loadtest
from timecoin.loadtest.submitter import Endpoint
from timecoin.testing.node import build_devnet_chain, default_port_seed, masternode_network, wait_until
from timecoin.testing.util import run, scaled, wait_until_async

SEED_OFFSET = 44
N = 4
VICTIM = 1
"""The killed masternode: dialed by nodes 2 and 3 and dialing node 0, so the mesh re-forms from
both sides."""
ACCOUNTS = 16
RATE = 300.0
"""Offered load, tx/s, spread over the four nodes."""
DURATION = 14.0
"""Seconds of load: the victim is back before the load ends (down 3 to 8 s, longer when it is
the first leader of a height it misses and the survivors wait out the leader timeout)."""
FINAL_BEFORE_KILL = 150
"""Load transactions reported final before the kill (about half a second of load)."""
FINAL_WHILE_DOWN = 600
"""Load transactions that must be reported final while the victim is down."""
BLOCKS_WHILE_DOWN = 3
"""Heights the survivors pass while the victim is down: all but the first are proposed, voted
and committed after the kill, so without the victim."""


@dataclass
class Outage:
    """What the ``during_load`` hook saw: times (``time.monotonic()``), the follower's final
    counts and the survivors' heights at the kill and at the restart."""

    killed_at: float = 0.0
    restarted_at: float = 0.0
    """When the victim's process was started again."""
    back_at: float = 0.0
    """When its RPC answered again."""
    final_at_kill: int = 0
    final_at_restart: int = 0
    height_at_kill: int = 0
    heights_at_restart: list[int] = field(default_factory=list)


def test_masternode_killed_under_load_recovers(tmp_path):
    chain = build_devnet_chain(tmp_path / "chain", 0, 0, accounts=ACCOUNTS)
    with masternode_network(chain, N, default_port_seed() + SEED_OFFSET) as nodes:
        for node in nodes:
            wait_until(lambda n=node: n.rpc.getconnectioncount() == N - 1, 30, what=f"{node} full mesh")
        victim = nodes[VICTIM]
        survivors = [i for i in range(N) if i != VICTIM]
        outage = Outage()
        followed: list[Follower] = []

        async def heights(follower: Follower) -> list[int]:
            return list(await asyncio.gather(*(follower.nodes[i].call("getblockcount") for i in survivors)))

        async def kill_and_restart(follower: Follower) -> None:
            followed.append(follower)
            final = follower.result.final
            await wait_until_async(
                lambda: len(final) >= FINAL_BEFORE_KILL, timeout=30, message="load finalizing before the kill"
            )
            outage.height_at_kill = max(await heights(follower))
            await asyncio.to_thread(victim.kill)
            outage.killed_at = time.monotonic()
            outage.final_at_kill = len(final)

            # Three of four keep finalizing and committing while the victim is down.
            deadline = time.monotonic() + scaled(30)
            while True:
                now_heights = await heights(follower)
                if (
                    len(final) >= outage.final_at_kill + FINAL_WHILE_DOWN
                    and min(now_heights) >= outage.height_at_kill + BLOCKS_WHILE_DOWN
                ):
                    break
                assert time.monotonic() < deadline, (
                    f"3 of 4 masternodes stalled: {len(final) - outage.final_at_kill} final since the "
                    f"kill, heights {now_heights} (kill at {outage.height_at_kill})"
                )
                await asyncio.sleep(0.1)
            assert not victim.running
            outage.final_at_restart = len(final)
            outage.heights_at_restart = now_heights
            outage.restarted_at = time.monotonic()
            await asyncio.to_thread(victim.start_and_wait)
            outage.back_at = time.monotonic()

        config = LoadTestConfig(
            chain.config,
            chain.account_keys,
            [Endpoint.from_datadir(n.datadir, n.rpc_port) for n in nodes],
            RATE,
            DURATION,
            tmp_path / "loadtest",
            drain_timeout=3.0,
            during_load=kill_and_restart,
        )
        report = run(run_loadtest(config, Console(quiet=True)), timeout=150)
        (follower,) = followed
        summary = {k: report[k] for k in ("submitted", "accepted", "finalized", "reject_reasons", "notes")}

        # The load ran through the outage: submitted in full, the dead node's share refused at the
        # transport, nothing refused by a live node.
        assert report["submitted"] == RATE * DURATION, summary
        assert report["consensus_available"] and report["finality_available"]
        assert set(report["reject_reasons"]) == {"rpc-error"}, summary
        assert report["accepted"] + report["reject_reasons"]["rpc-error"] == report["submitted"], summary
        assert outage.killed_at < outage.restarted_at < outage.back_at
        assert outage.final_at_restart - outage.final_at_kill >= FINAL_WHILE_DOWN
        final_at = follower.result.final_at
        assert sum(outage.killed_at < t < outage.restarted_at for t in final_at.values()) >= FINAL_WHILE_DOWN

        # The restarted node caught up: one tip and UTXO set hash at one height on all four.
        assert report["nodes_agree"] is True, report["tips"]
        assert len(report["tips"]) == N and len({t["height"] for t in report["tips"]}) == 1
        assert report["tips"][VICTIM]["height"] >= max(outage.heights_at_restart)
        assert victim.rpc.getconsensusinfo()["voter"] is True

        # Nothing reported final was lost: final on every node, the restarted one included. That
        # covers what the victim itself reported final before its kill (DESIGN §12.5)...
        node_of = follower.submission.node_of
        by_victim = [t for t, at in final_at.items() if node_of[t] == VICTIM and at < outage.killed_at]
        assert by_victim, "the victim reported nothing final before its kill"
        assert report["lost"] == 0 and report["notes"] == [], summary
        assert report["feed_missed"] == 0
        # ...and the restarted node's own decisions were followed again (its feed restarts at 0).
        last_send = max(follower.submission.sent_at.values())
        assert outage.back_at < last_send, "the victim was back only after the load: raise DURATION"
        assert report["feed_restarts"] == 1
        assert any(node_of[t] == VICTIM and at > outage.back_at for t, at in final_at.items())
        assert report["finalized"] >= FINAL_BEFORE_KILL + FINAL_WHILE_DOWN
