"""One load-test run against running nodes (DESIGN §11):

0. **set-up**: every node's chain (``getblockchaininfo``: network and genesis hash, which the
   signatures commit to) must be one, and the given genesis if any (a devnet's);
1. **fan-out**: the account keys' coins (``listunspent``: the genesis allocations on a fresh
   devnet, what earlier runs left on a reused one) are split (one or more levels, :mod:`.generator`)
   until there is one coin per load transaction; each level is submitted and must be committed
   in a block on every node before the next (the mempool admits spends of committed coins only),
   waited for while it progresses (:data:`SETTLE_SLOTS` block slots without one more committed
   ends the wait).
   Nodes without block production (no ``getconsensusinfo``) cannot commit it: the run then
   reports the fan-out it submitted and stops there, saying so in ``notes``;
2. **pre-signing** of every load transaction (timed: the generator's rate is in the report);
3. **load**: open-loop submission at ``rate`` for ``duration`` seconds (:mod:`.submitter`, binary
   ``POST /rawtransactions`` batches: no hex or JSON on the submission path) while finality is
   followed (:mod:`.follower`) if the nodes serve ``getfinalityfeed``; every other call, the
   fan-out's submissions included, is JSON-RPC;
4. **settle**: wait for the last block (empty mempools, one tip everywhere), then compare tip and
   UTXO set hash (``gettxoutsetinfo``) across the nodes, and check that every transaction
   reported final is final on every node (``lost`` counts those that are not).

Overload and failure are results, not crashes (DESIGN §12 invariant 10): transactions a node
refuses as overloaded (-32001) are counted as refused (``overloaded``), calls that fail on the
connection (``ClientOSError``, a node gone or restarting) are recorded (``errors``, ``notes``,
``unreachable``), and the run always ends with a report; a node that cannot be checked at the
end makes ``nodes_agree`` false.

A test may perturb the network during the load (kill, restart or pause nodes: DESIGN §12)
through ``LoadTestConfig.during_load``: a coroutine run beside the load phase and awaited before
the settle phase, so the settle checks see the network it leaves.

A rich progress bar shows submission and finality while it runs on a terminal; elsewhere (a CI
log) plain lines name each phase and the counts every few seconds (:mod:`.progress`). The report
carries the run's metadata (:mod:`.metadata`: commit, versions, host, parameters, start time).
:func:`prepare` and :func:`verify` are the phases :mod:`.distributed` shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import timecoin_native
from rich.console import Console

from timecoin import crypto, gctune
from timecoin import params as network_params
from timecoin.core.address import address_of_key
from timecoin.core.types import OutPoint
from timecoin.ledger.genesis import GenesisConfig, build_genesis
from timecoin.loadtest.follower import FEED_METHOD, Follower
from timecoin.loadtest.generator import DEFAULT_BATCH, MAX_FANOUT, Generator, SpendableCoin
from timecoin.loadtest.metadata import run_metadata
from timecoin.loadtest.progress import LoadProgress, phase
from timecoin.loadtest.report import percentile, timeline, write_plot, write_report
from timecoin.loadtest.sampler import NodeProbe, Sampler
from timecoin.loadtest.submitter import NETWORK_ERRORS, AsyncRPC, Endpoint, Submission, Submitter
from timecoin.params import NetworkParams

__all__ = [
    "LoadTestConfig",
    "Preparation",
    "Verification",
    "common_fields",
    "parameters",
    "prepare",
    "run_loadtest",
    "summary_lines",
    "verify",
]

CONSENSUS_METHOD = "getconsensusinfo"
FINALITY_METHOD = "gettransactionfinality"
STATUS_BATCH = 5_000
"""``gettransactionfinality`` calls per JSON-RPC batch."""
SETTLE_SLOTS = 10
"""Block slots to wait for the last block at the end, or for a fan-out level's next transaction
to commit (a level as a whole may take longer while it progresses)."""
POLL_INTERVAL = 0.2
"""Seconds between two polls of the nodes while waiting."""
FANOUT_BATCH = 256
"""Fan-out transactions per ``sendrawtransactions`` call (each up to ~80 kB)."""
OVERLOAD_RETRY = 0.25
"""Seconds before fan-out transactions a node refused as overloaded are sent again (the load
itself is open loop: its refusals are counted, never retried)."""
MIN_SETTLE = 20.0
"""Seconds: the least of those waits, whatever the slot."""


@dataclass(frozen=True, slots=True)
class LoadTestConfig:
    """What to run: target ``rate`` (tx/s) for ``duration`` (s) over ``endpoints``, spending the
    coins of ``account_keys`` (32-byte seeds); report files go to ``out_dir``. ``genesis``, when
    given (a devnet's), must be the one the nodes run; without it the network and chain id are
    the nodes' own (``getblockchaininfo``), so any network can be aimed at.

    ``during_load``, if given, is started with the load phase and given its :class:`Follower`
    (live results in ``follower.result``, the nodes' clients in ``follower.nodes``); the run
    awaits it before the settle phase and raises what it raises (once the load phase is over).

    ``probes`` (in the order of ``endpoints``) say where each node's ``/metrics`` and process
    are, for the height, mempool and CPU samples the plot draws (:mod:`.sampler`)."""

    genesis: GenesisConfig | None
    account_keys: list[bytes]
    endpoints: list[Endpoint]
    rate: float
    duration: float
    out_dir: Path
    batch_size: int = DEFAULT_BATCH
    max_fanout: int = MAX_FANOUT
    drain_timeout: float = 10.0
    during_load: Callable[[Follower], Coroutine[Any, Any, None]] | None = None
    probes: list[NodeProbe] = field(default_factory=list)


async def _wait(predicate: Any, timeout: float, interval: float = POLL_INTERVAL) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


async def _account_coins(node: AsyncRPC, params: NetworkParams, keys: list[bytes]) -> list[SpendableCoin]:
    """The committed coins of the account keys (32-byte seeds) that no pending or final
    transaction spends, from the node (``listunspent``), by outpoint: the genesis allocations on
    a fresh devnet, what earlier load tests left on a reused one."""
    owners = {address_of_key(crypto.public_key(k), params): k for k in keys}
    rows = await node.call("listunspent", 1, list(owners))
    return [
        SpendableCoin(OutPoint(bytes.fromhex(r["txid"]), r["vout"]), r["amount_sat"], owners[r["address"]])
        for r in rows
    ]


async def _statuses(node: AsyncRPC, txids: list[str]) -> list[dict[str, Any]]:
    """``gettransactionfinality`` of each txid, in batches (``{"status": "error", "error": ...}``
    where a call failed)."""
    out: list[dict[str, Any]] = []
    for i in range(0, len(txids), STATUS_BATCH):
        replies = await node.batch(FINALITY_METHOD, [[t] for t in txids[i : i + STATUS_BATCH]])
        out.extend(
            r["result"] if isinstance(r.get("result"), dict) else {"status": "error", "error": r.get("error")}
            for r in replies
        )
    return out


def _failure(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


async def _statuses_everywhere(
    nodes: list[AsyncRPC], asks: list[list[str]]
) -> list[list[dict[str, Any]] | BaseException]:
    """:func:`_statuses` of ``asks[i]`` on node ``i``, all nodes asked at once (each answers
    from its own process: one after another, the settle phase took the sum of their times); per
    node its statuses, or the :data:`NETWORK_ERRORS` failure that ended the asking. Any other
    exception propagates."""
    answers = await asyncio.gather(
        *(_statuses(node, ask) for node, ask in zip(nodes, asks, strict=True)), return_exceptions=True
    )
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, NETWORK_ERRORS):
            raise answer
    return answers


async def _wait_committed(
    nodes: list[AsyncRPC], txids: list[str], stall: float, interval: float = POLL_INTERVAL
) -> bool:
    """Waits until every node holds every one of ``txids`` in a block (``True``), or until
    ``stall`` seconds pass in which no node reported one more of them in a block (``False``; a
    node that cannot be asked makes no progress). Each poll asks a node only about the txids it
    did not yet report in a block (a block's transactions stay in it: commits are final).

    A fixed deadline failed big fan-outs that were progressing: 128,000 transactions (a 15,000
    tx/s load for 30 s) need ~20 s to finalize and commit at the network's capacity, and asking
    four nodes about all of them on every poll loaded the nodes that were committing them."""
    remaining = [list(txids) for _ in nodes]
    progress_at = time.monotonic()
    while True:
        answers = await _statuses_everywhere(nodes, remaining)
        for i, answer in enumerate(answers):
            if isinstance(answer, BaseException):
                continue
            left = [t for t, s in zip(remaining[i], answer, strict=True) if s.get("height") is None]
            if len(left) < len(remaining[i]):
                progress_at = time.monotonic()
            remaining[i] = left
        if not any(remaining):
            return True
        if time.monotonic() - progress_at > stall:
            return False
        await asyncio.sleep(interval)


async def _lost(nodes: list[AsyncRPC], txids: list[str]) -> tuple[dict[str, dict[int, str]], dict[int, str]]:
    """Of ``txids`` (reported final), those some node does not hold as final (in a block or its
    finalized pool): txid → {node index: what that node says}; and the nodes that could not be
    asked (node index → the failure), whose transactions are not checked."""
    lost: dict[str, dict[int, str]] = {}
    unreachable: dict[int, str] = {}
    for i, statuses in enumerate(await _statuses_everywhere(nodes, [txids] * len(nodes))):
        if isinstance(statuses, BaseException):
            unreachable[i] = _failure(statuses)
            continue
        for txid, s in zip(txids, statuses, strict=True):
            if s["status"] != "final":
                lost.setdefault(txid, {})[i] = s["status"] if s["status"] != "error" else str(s["error"])
    return lost, unreachable


async def _settled(nodes: list[AsyncRPC]) -> bool:
    """Empty mempools and one tip on every node (False while a node does not answer)."""
    try:
        infos = await asyncio.gather(*(n.call("getmempoolinfo") for n in nodes))
        tips = await asyncio.gather(*(n.call("getbestblockhash") for n in nodes))
    except NETWORK_ERRORS:
        return False
    return all(i["size"] == 0 for i in infos) and len(set(tips)) == 1


async def _agreement(nodes: list[AsyncRPC], timeout: float) -> tuple[bool, list[dict[str, Any]]]:
    """Whether every node has one tip and UTXO set hash, compared at one height: blocks keep
    coming, so snapshots taken while one node commits are taken again (for up to ``timeout`` s).
    A node that does not answer gets ``{"error": ...}`` as its row, and the nodes do not agree."""
    deadline = time.monotonic() + timeout
    while True:
        infos = await asyncio.gather(*(n.call("gettxoutsetinfo") for n in nodes), return_exceptions=True)
        rows: list[dict[str, Any]] = []
        for info in infos:
            if isinstance(info, NETWORK_ERRORS):
                rows.append({"error": _failure(info)})
            elif isinstance(info, BaseException):
                raise info
            else:
                rows.append(
                    {"height": info["height"], "tip": info["bestblock"], "utxosethash": info["utxosethash"]}
                )
        answered = [r for r in rows if "error" not in r]
        if len({r["height"] for r in answered}) <= 1 or time.monotonic() > deadline:
            agree = len(answered) == len(rows) and len({(r["tip"], r["utxosethash"]) for r in rows}) == 1
            return agree, rows
        await asyncio.sleep(0.05)


async def _submit_fanout(submitter: Submitter, raws: list[bytes], nodes: int, timeout: float) -> None:
    """Sends one fan-out level in :data:`FANOUT_BATCH` calls spread over the nodes; what a node
    refuses as overloaded is sent again every :data:`OVERLOAD_RETRY` seconds, for up to
    ``timeout`` seconds (the next level needs all of it)."""
    deadline = time.monotonic() + timeout
    turn = 0
    while raws:
        refused: list[bytes] = []
        for i in range(0, len(raws), FANOUT_BATCH):
            refused += await submitter.send(turn % nodes, raws[i : i + FANOUT_BATCH])
            turn += 1
        if not refused or time.monotonic() > deadline:
            return
        await asyncio.sleep(OVERLOAD_RETRY)
        raws = refused


@dataclass(slots=True)
class Preparation:
    """What the set-up and fan-out phases leave for the load phase: the nodes' chain (network
    parameters and chain id), what they serve, the start height, the generator whose pool holds
    one coin per load transaction when ``load_ready``, and what the fan-out did."""

    params: NetworkParams | None = None
    chain_id: bytes | None = None
    consensus: bool = False
    finality: bool = False
    start_height: int | None = None
    generator: Generator | None = None
    levels: list[int] = field(default_factory=list)
    fanout: Submission = field(default_factory=Submission)
    load_ready: bool = False
    notes: list[str] = field(default_factory=list)


async def _chain(
    nodes: list[AsyncRPC], genesis: GenesisConfig | None, notes: list[str]
) -> tuple[NetworkParams, bytes] | None:
    """The network parameters and chain id (genesis hash) every answering node runs, checked
    against ``genesis`` when given; None (and a note) when they differ or node 0 does not say."""
    infos = await asyncio.gather(*(n.call("getblockchaininfo") for n in nodes), return_exceptions=True)
    first = infos[0]
    if isinstance(first, BaseException):
        if not isinstance(first, NETWORK_ERRORS):
            raise first
        notes.append(f"node 0 failed the set-up calls ({_failure(first)}): no load ran")
        return None
    chains = {(i["chain"], i["genesis"]) for i in infos if isinstance(i, dict)}
    if len(chains) > 1:
        notes.append(f"the nodes run different chains {sorted(chains)}: no load ran")
        return None
    try:
        params = network_params.by_name(first["chain"])
    except ValueError as e:
        notes.append(f"node 0 runs an unknown network ({e}): no load ran")
        return None
    chain_id = bytes.fromhex(first["genesis"])
    if genesis is not None and (genesis.params.name, build_genesis(genesis).hash) != (params.name, chain_id):
        notes.append(
            f"the nodes run {params.name} {chain_id.hex()[:16]}…, not the given genesis: no load ran"
        )
        return None
    for i, info in enumerate(infos):
        if isinstance(info, BaseException):
            notes.append(f"node {i} did not answer at the start ({_failure(info)})")
    return params, chain_id


async def prepare(
    nodes: list[AsyncRPC],
    genesis: GenesisConfig | None,
    account_keys: list[bytes],
    total: int,
    batch_size: int,
    max_fanout: int,
    console: Console,
) -> Preparation:
    """Set-up (the nodes' chain and services, the accounts' coins) and fan-out into ``total``
    coins, each level committed on every node before the next (module docstring, steps 1)."""
    prep = Preparation()
    notes = prep.notes
    chain = await _chain(nodes, genesis, notes)
    if chain is None:
        return prep
    prep.params, prep.chain_id = chain
    settle = _settle_seconds(prep.params)
    coins: list[SpendableCoin] = []
    try:
        prep.consensus = await nodes[0].has_method(CONSENSUS_METHOD)
        prep.finality = await nodes[0].has_method(FEED_METHOD)
        if not prep.finality:
            notes.append(f"the nodes do not serve {FEED_METHOD}: finality not followed")
        prep.start_height = await nodes[0].call("getblockcount")
        coins = await _account_coins(nodes[0], prep.params, account_keys)
    except NETWORK_ERRORS as e:
        notes.append(f"node 0 failed the set-up calls ({_failure(e)}): no load ran")
        prep.consensus = prep.finality = False
    generator = prep.generator = Generator(prep.params, prep.chain_id, coins, batch_size)
    fanout_submitter = Submitter(nodes, prep.fanout)
    prep.load_ready = bool(coins)
    prep.levels = generator.fanout_plan(total, max_fanout) if coins else []
    if not coins and prep.start_height is not None:
        notes.append("the account keys hold no committed unspent coin: nothing to spend")
    for level, want in enumerate(prep.levels, 1):
        try:
            raws = generator.fan_out(want, max_fanout)
        except ValueError as e:
            notes.append(f"the accounts' coins cannot fund {total} transactions: {e}")
            prep.load_ready = False
            break
        phase(
            console, f"fan-out level {level}/{len(prep.levels)}: {len(raws)} transactions into {want} coins"
        )
        txids = [t.hex() for t in timecoin_native.txids(raws)]
        await _submit_fanout(fanout_submitter, raws, len(nodes), settle)
        if any(t not in prep.fanout.sent_at for t in txids):
            notes.append(f"fan-out transactions were rejected: {prep.fanout.rejected}")
            prep.load_ready = False
            break
        if not prep.consensus:
            notes.append(
                f"the nodes do not serve {CONSENSUS_METHOD} (no block production): the fan-out "
                f"of {len(raws)} transactions cannot commit, so the load phase did not run"
            )
            prep.load_ready = False
            break
        if not await _wait_committed(nodes, txids, settle):
            notes.append(f"the fan-out stopped committing on some node for {settle:.0f} s")
            prep.load_ready = False
            break
    return prep


@dataclass(slots=True)
class Verification:
    """The settle phase's findings (module docstring, step 4)."""

    agree: bool
    tips: list[dict[str, Any]]
    end_height: int | None
    lost: dict[str, dict[int, str]]
    unreachable: dict[int, str]


async def verify(
    nodes: list[AsyncRPC], final_txids: list[str], prep: Preparation, finality: bool, console: Console
) -> Verification:
    """Waits for the last block, compares the nodes, and looks up every transaction reported
    final on every node; notes go to ``prep.notes``."""
    notes = prep.notes
    settle = _settle_seconds(prep.params)
    phase(console, "settle: waiting for empty mempools and one tip, then comparing the nodes")
    if prep.consensus and not await _wait(lambda: _settled(nodes), settle):
        notes.append(f"the nodes did not settle (empty mempools, one tip) within {settle:.0f} s")
    agree, tips = await _agreement(nodes, settle)
    end_height: int | None = None
    try:
        end_height = await nodes[0].call("getblockcount")
    except NETWORK_ERRORS as e:
        notes.append(f"node 0 did not answer getblockcount at the end ({_failure(e)})")
    lost, unreachable = await _lost(nodes, final_txids) if finality else ({}, {})
    if lost:
        sample = dict(itertools.islice(lost.items(), 5))
        notes.append(f"{len(lost)} transactions reported final are not final everywhere, e.g. {sample}")
    unreachable.update((i, row["error"]) for i, row in enumerate(tips) if "error" in row)
    if unreachable:
        notes.append(f"nodes not answering at the end (their state is not checked): {unreachable}")
    return Verification(agree, tips, end_height, lost, unreachable)


def _settle_seconds(params: NetworkParams | None) -> float:
    return max(MIN_SETTLE, SETTLE_SLOTS * (params.block_slot if params is not None else 0.0))


def parameters(config: LoadTestConfig) -> dict[str, Any]:
    """The run's parameters as the report's ``meta.parameters`` gives them (no credentials)."""
    return {
        "rate": config.rate,
        "duration_s": config.duration,
        "batch": config.batch_size,
        "max_fanout": config.max_fanout,
        "drain_timeout_s": config.drain_timeout,
        "targets": [e.url for e in config.endpoints],
        "funding_keys": len(config.account_keys),
        "workers": 0,
    }


async def run_loadtest(config: LoadTestConfig, console: Console | None = None) -> dict[str, Any]:
    """Runs the test; returns the report (also written to ``out_dir/loadtest.json`` and
    ``out_dir/loadtest.png``). ``ValueError`` for a rate or duration that is not positive."""
    if config.rate <= 0 or config.duration <= 0:
        raise ValueError("rate and duration must be positive")
    meta = run_metadata(parameters(config))
    console = console or Console(stderr=True)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    connector = aiohttp.TCPConnector(limit=64)
    total = math.ceil(config.rate * config.duration)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        nodes = [AsyncRPC(session, e) for e in config.endpoints]
        prep = await prepare(
            nodes, config.genesis, config.account_keys, total, config.batch_size, config.max_fanout, console
        )
        notes = prep.notes
        finality = prep.finality
        submission = Submission()
        submitter = Submitter(nodes, submission, binary=True)
        follower = Follower(nodes, submission)
        sampler = Sampler(session, nodes, config.probes)
        load_started = time.monotonic()
        if prep.load_ready and prep.generator is not None:
            phase(console, f"pre-signing {total} transactions")
        raws = prep.generator.spends(total) if prep.load_ready and prep.generator is not None else []
        presign_s = time.monotonic() - load_started
        # The plan (every pre-signed transaction and its coins) lives until the end: frozen, it
        # is never scanned by the collector again, which would take CPU from the nodes under test.
        gctune.settle()
        duration = 0.0
        if raws:
            phase(console, f"load: {config.rate:g} tx/s for {config.duration:g} s over {len(nodes)} nodes")
            with LoadProgress(console) as progress:
                progress.add("submitted", len(raws))
                progress.add("finalized", len(raws), visible=finality)
                if finality:
                    try:
                        await follower.start()
                    except NETWORK_ERRORS as e:
                        notes.append(f"a finality feed did not answer ({_failure(e)}): finality not followed")
                        finality = False
                        progress.hide("finalized")
                load_started = time.monotonic()
                sampling = asyncio.create_task(sampler.run())
                perturb: asyncio.Task[None] | None = None
                if config.during_load is not None:
                    perturb = asyncio.create_task(config.during_load(follower))
                submit = asyncio.create_task(
                    submitter.run(raws, config.rate, lambda n: progress.advance("submitted", n))
                )
                try:
                    if finality:
                        await follower.run(
                            submit.done, config.drain_timeout, lambda n: progress.advance("finalized", n)
                        )
                    await submit
                except BaseException:
                    if perturb is not None:
                        perturb.cancel()
                    raise
                finally:
                    sampling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sampling
                duration = time.monotonic() - load_started
                if perturb is not None:
                    await perturb

        checked = await verify(nodes, list(follower.result.final), prep, finality, console)

    result = follower.result
    latencies = sorted(result.final.values())
    finished = list(result.final_at.values())
    first_send = min(submission.sent_at.values(), default=load_started)
    span = (max(finished) - first_send) if finished else 0.0
    report: dict[str, Any] = {
        "meta": meta,
        "nodes": len(config.endpoints),
        "rate": config.rate,
        "duration_s": round(duration, 3),
        "submitted": submission.submitted,
        "accepted": len(submission.sent_at),
        "finalized": len(result.final),
        "rejected": sum(submission.rejected.values()) + len(result.rejected),
        "overloaded": submission.overloaded,
        "reject_reasons": {
            **submission.rejected,
            **({"finality": len(result.rejected)} if result.rejected else {}),
        },
        "finalized_tps": round(len(result.final) / span, 1) if span > 0 else 0.0,
        "finality_ms": {
            key: None if (v := percentile(latencies, p)) is None else round(v * 1000, 2)
            for key, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        "lost": len(checked.lost),
        "feed_missed": result.missed,
        "feed_restarts": result.restarts,
        "finality_available": finality,
        "consensus_available": prep.consensus,
        **common_fields(prep, checked, presign_s),
        "submitted_per_second": submission.per_second,
        "timeline": timeline(first_send, submission.sent_at, result.final, result.final_at),
        "nodes_sampled": sampler.result(first_send),
        "errors": (prep.fanout.errors + submission.errors + result.errors)[:20],
        "notes": notes,
    }
    write_report(report, config.out_dir / "loadtest.json")
    write_plot(report, config.out_dir / "loadtest.png")
    return report


def common_fields(prep: Preparation, checked: Verification, presign_s: float) -> dict[str, Any]:
    """The report's fields on the network and the preparation, alike in every mode."""
    end, start = checked.end_height, prep.start_height
    stats = prep.generator.stats if prep.generator is not None else None
    return {
        "blocks": end - start if end is not None and start is not None else None,
        "unreachable": sorted(checked.unreachable),
        "nodes_agree": checked.agree,
        "tips": checked.tips,
        "fanout": {
            "levels": len(prep.levels),
            "submitted": prep.fanout.submitted,
            "accepted": len(prep.fanout.sent_at),
            "reject_reasons": prep.fanout.rejected,
        },
        "generator": {
            "transactions": stats.transactions if stats else 0,
            "seconds": round(stats.seconds, 3) if stats else 0.0,
            "tps": round(stats.rate, 1) if stats else 0.0,
            "presign_s": round(presign_s, 3),
        },
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The few lines a terminal shows after a run."""
    f = report["finality_ms"]
    lines = [
        f"nodes {report['nodes']}, offered {report['rate']:.0f} tx/s for {report['duration_s']:.1f} s",
        f"submitted {report['submitted']}, accepted {report['accepted']}, finalized {report['finalized']}, "
        f"rejected {report['rejected']} (overloaded {report['overloaded']}), lost {report['lost']}",
        f"finalized TPS {report['finalized_tps']}, finality ms p50 {f['p50']} p95 {f['p95']} p99 {f['p99']}",
        f"blocks {report['blocks']}, nodes agree: {report['nodes_agree']}, "
        f"generator {report['generator']['tps']:.0f} tx/s",
    ]
    return lines + [f"note: {n}" for n in report["notes"]]
