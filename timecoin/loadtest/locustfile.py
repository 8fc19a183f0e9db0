"""The load test on Locust's distributed mode (DESIGN §13 "Many machines"; docs/loadtest.md
"Workers on many machines"). Loaded only by the ``locust`` processes that ``timecoin loadtest
--workers N`` / ``--worker`` start (:mod:`.distributed`): importing Locust monkey-patches the
process with gevent, so nothing else may import this module.

* **Master** (before the clock starts, in Locust's ``init`` event): waits for its workers, sends
  each a disjoint slice of the fan-out's coins and its share of the offered rate
  (:data:`~.plan.PREPARE`), and waits until every worker has signed (:data:`~.plan.PREPARED`).
  Then Locust starts the users. When every worker has sent its results (:data:`~.plan.RESULTS`)
  and Locust's merged stats hold every finality event they counted, it writes the merged results
  file and quits (its ``--csv`` and ``--html`` reports are written then).
* **Worker**: signs one transfer per coin natively in a thread (the gevent loop keeps answering
  the master's heartbeats; gevent never signs during the load). Its users (``FastHttpUser``, one
  per target node, round-robin) submit the signed transactions in binary batches (``POST
  /rawtransactions``, :mod:`timecoin.rpc.rawbatch`) on an open-loop schedule at the worker's
  rate: every :data:`~.submitter.TICK` a user posts what is due without waiting for earlier
  answers. One greenlet per node follows its finality feed (``getfinalityfeed``) and each
  decision on this worker's transactions becomes a Locust event (:data:`~.plan.FINALITY` /
  :data:`~.plan.FINAL`, response time = finality latency in ms; :data:`~.plan.REJECTED` as a
  failure), so the master aggregates percentiles over all workers. Per-transaction refusals at
  submission are events too (:data:`~.plan.ADMISSION`, named by reason).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import orjson
from gevent.pool import Group  # type: ignore[import-untyped]
from locust import FastHttpUser, constant_pacing, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from timecoin import params as network_params
from timecoin.loadtest.follower import FEED_METHOD, FEED_WAIT_MS, FinalityBook
from timecoin.loadtest.generator import Generator
from timecoin.loadtest.plan import (
    ADMISSION,
    COIN_RECORD,
    FINAL,
    FINALITY,
    PLAN_OPTION,
    PREPARE,
    PREPARED,
    REJECTED,
    RESULTS,
    MasterPlan,
    WorkerPlan,
    decode_coins,
    read_plan,
)
from timecoin.loadtest.submitter import OVERLOADED, RPC_ERROR, TICK, Endpoint, Submission, basic_auth
from timecoin.rpc import rawbatch
from timecoin.rpc.client import JSONRPCError, RPCClient, raw_reply
from timecoin.rpc.errors import INVALID_PARAMETER, MEMPOOL_OVERLOADED

log = logging.getLogger("timecoin.loadtest")

WORKERS_TIMEOUT = 300.0
"""Seconds the master waits for its workers to connect."""
PREPARE_TIMEOUT = 600.0
"""Seconds the master waits for every worker to sign its transactions."""
RESULTS_MARGIN = 60.0
"""Seconds past the load and the drain the master waits for the workers' results."""
STATS_TIMEOUT = 30.0
"""Seconds the master waits for Locust's merged stats to hold every finality event counted
(workers report stats every few seconds)."""
POST_MAX = 5000
"""Most transactions in one ``POST /rawtransactions`` (what is due beyond waits for the next tick)."""
USER_CONCURRENCY = 32
"""Requests one user may have in flight (the open loop does not wait for answers)."""
RPC_TIMEOUT = 60.0
"""Seconds a feed call may take."""
MAX_ERRORS = 20
"""Error messages a worker keeps for the report."""


def _options(parser: Any) -> None:
    parser.add_argument(
        PLAN_OPTION, type=str, default="", help="The plan timecoin loadtest wrote.", include_in_web_ui=False
    )


class _Worker:
    """One worker's state: its nodes, signed transactions, schedule, submission and finality."""

    def __init__(self, environment: Environment, plan: WorkerPlan) -> None:
        self.environment = environment
        self.endpoints: list[Endpoint] = plan.endpoints
        self.keys = plan.keys
        self.headers = [basic_auth(e.user, e.password) for e in self.endpoints]
        self.raws: list[bytes] = []
        self.rate = 0.0
        self.drain_timeout = 0.0
        self.taken = 0
        self.started: float | None = None
        self.posts = Group()
        self.submission = Submission()
        self.book = FinalityBook(self.submission, self._decided)
        self.wall_offset = time.time() - time.monotonic()
        self.sent_per_second: Counter[int] = Counter()
        self.presign_s = 0.0
        self.last_send = 0.0
        """``time.monotonic()`` of the last batch sent."""
        self.generated = (0, 0.0)
        self.followers = Group()
        self.cursors: list[int] = []

    # -- preparation (before the clock) --------------------------------------------------------------

    def prepare(self, environment: Environment, msg: Any) -> None:
        """``PREPARE``: signs one transfer per coin of the slice (in a thread), answers
        ``PREPARED`` with the count or the error."""
        runner = environment.runner
        assert runner is not None
        try:
            data = msg.data
            params = network_params.by_name(data["network"])
            coins = decode_coins(data["coins"], self.keys)
            generator = Generator(params, bytes.fromhex(data["chain_id"]), coins, data["batch_size"])
            started = time.monotonic()
            self.raws = gevent.get_hub().threadpool.apply(generator.spends, (len(coins),))
            self.presign_s = time.monotonic() - started
            self.generated = (generator.stats.transactions, generator.stats.seconds)
            self.rate, self.drain_timeout = float(data["rate"]), float(data["drain_timeout"])
        except Exception as e:  # every failure goes back to the master, which stops the run
            log.exception("preparation failed")
            runner.send_message(PREPARED, {"error": f"{type(e).__name__}: {e}"})
            return
        runner.send_message(PREPARED, {"count": len(self.raws), "presign_s": self.presign_s})

    # -- load ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """``test_start``: takes every node's feed cursor (decisions before are not followed),
        then follows each feed and waits for the end of the load and the drain."""
        self.cursors = [self._client(i).call(FEED_METHOD)["cursor"] for i in range(len(self.endpoints))]
        for i in range(len(self.endpoints)):
            self.followers.spawn(self._follow, i)
        gevent.spawn(self._finish)

    def take(self) -> list[bytes]:
        """The transactions due now on the open-loop schedule (rate × elapsed), at most
        :data:`POST_MAX`; empty once all are taken."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        due = min(len(self.raws), int(self.rate * (now - self.started + TICK)))
        batch = self.raws[self.taken : min(due, self.taken + POST_MAX)]
        self.taken += len(batch)
        return batch

    def exhausted(self) -> bool:
        return self.taken >= len(self.raws)

    def sent(self, node: int, raws: list[bytes], sent: float, status: int, body: bytes) -> None:
        """Records one batch's verdicts (the single-process submitter's accounting)."""
        result = self.submission
        result.submitted += len(raws)
        self.last_send = max(self.last_send, sent)
        self.sent_per_second[int(sent + self.wall_offset)] += len(raws)
        try:
            txids, rejects = raw_reply(status, body, len(raws))
        except JSONRPCError as e:
            if e.http_status == 401 and (fresh := self.endpoints[node].fresh_credentials()) is not None:
                self.headers[node] = basic_auth(*fresh)
            reason = OVERLOADED if e.code == MEMPOOL_OVERLOADED else RPC_ERROR
            if reason == RPC_ERROR and len(result.errors) < MAX_ERRORS:
                result.errors.append(f"node {node}: {e}")
            result.refuse(reason, len(raws))
            self._refused(reason, str(e), len(raws))
            return
        for i, txid in enumerate(txids):
            reject = rejects.get(i)
            if reject is None:
                assert txid is not None  # raw_reply refuses an accepted transaction without one
                result.sent_at[txid] = sent
                result.node_of[txid] = node
            else:
                reason = OVERLOADED if reject[0] == MEMPOOL_OVERLOADED else reject[1].split(":")[0]
                result.refuse(reason)
                self._refused(reason, reject[1], 1)

    def _refused(self, reason: str, message: str, count: int) -> None:
        for _ in range(count):
            self.environment.events.request.fire(  # type: ignore[no-untyped-call]
                request_type=ADMISSION,
                name=reason,
                response_time=0,
                response_length=0,
                exception=RuntimeError(message),
                context={},
            )

    def _decided(self, txid: str, final: bool, latency: float) -> None:
        self.environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type=FINALITY,
            name=FINAL if final else REJECTED,
            response_time=latency * 1000,
            response_length=0,
            exception=None if final else RuntimeError("rejected by consensus"),
            context={},
        )

    # -- finality --------------------------------------------------------------------------------------

    def _client(self, node: int) -> RPCClient:
        e = self.endpoints[node]
        user, password = e.fresh_credentials() or (e.user, e.password)
        return RPCClient(e.host, e.port, user, password, timeout=RPC_TIMEOUT)

    def _follow(self, node: int) -> None:
        """Follows node ``node``'s feed until killed; a node found behind the cursor restarted and
        is followed from 0 again (:class:`~.follower.Follower`'s rule)."""
        client = self._client(node)
        result = self.book.result
        while True:
            try:
                page = client.call(FEED_METHOD, self.cursors[node], FEED_WAIT_MS)
            except (JSONRPCError, OSError) as e:
                if len(result.errors) < MAX_ERRORS:
                    result.errors.append(f"node {node}: {e}")
                client.close()
                client = self._client(node)
                if isinstance(e, JSONRPCError) and e.code == INVALID_PARAMETER:
                    try:
                        if client.call(FEED_METHOD)["cursor"] < self.cursors[node]:
                            self.cursors[node] = 0
                            result.restarts += 1
                            continue
                    except (JSONRPCError, OSError):
                        pass
                gevent.sleep(FEED_WAIT_MS / 1000)
                continue
            seen = time.monotonic()
            self.cursors[node] = page["cursor"]
            result.missed += page["missed"]
            for txid in page["final"]:
                self.book.record(node, txid, True, seen)
            for txid in page["rejected"]:
                self.book.record(node, txid, False, seen)

    def _finish(self) -> None:
        """Waits for the last submission's answer, then for every accepted transaction to be
        decided or the drain time to pass; sends the results to the master."""
        while not self.exhausted():
            gevent.sleep(TICK)
        self.posts.join()
        deadline = time.monotonic() + self.drain_timeout
        while time.monotonic() < deadline:
            self.book.settle_early()
            if self.book.done() >= len(self.submission.sent_at):
                break
            gevent.sleep(FEED_WAIT_MS / 1000)
        self.book.settle_early()
        self.followers.kill()
        runner = self.environment.runner
        assert runner is not None
        runner.send_message(RESULTS, self.results())

    def results(self) -> dict[str, Any]:
        """What this worker reports to the master (:mod:`.distributed` merges it)."""
        s, r = self.submission, self.book.result
        offset = self.wall_offset
        return {
            "final": [[txid, latency, r.final_at[txid] + offset] for txid, latency in r.final.items()],
            "submitted": s.submitted,
            "accepted": len(s.sent_at),
            "reject_reasons": dict(s.rejected),
            "overloaded": s.overloaded,
            "finality_rejected": len(r.rejected),
            "first_send": min(s.sent_at.values(), default=0.0) + offset if s.sent_at else None,
            "last_send": self.last_send + offset if s.submitted else None,
            "sent_per_second": {str(k): v for k, v in self.sent_per_second.items()},
            "errors": (s.errors + r.errors)[:MAX_ERRORS],
            "feed_missed": r.missed,
            "feed_restarts": r.restarts,
            "generator": {"transactions": self.generated[0], "seconds": self.generated[1]},
            "presign_s": self.presign_s,
        }


class _Master:
    """The master's part: hands out coins, waits for the signing, collects the results."""

    def __init__(self, environment: Environment, runner: MasterRunner, plan: MasterPlan) -> None:
        self.environment = environment
        self.runner = runner
        self.plan = plan
        self.prepared: dict[str, dict[str, Any]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.workers: list[str] = []
        runner.register_message(PREPARED, self._on_prepared)
        runner.register_message(RESULTS, self._on_results)

    def _on_prepared(self, environment: Environment, msg: Any) -> None:
        self.prepared[msg.node_id] = msg.data

    def _on_results(self, environment: Environment, msg: Any) -> None:
        self.results[msg.node_id] = msg.data

    def _wait(self, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f} s")
            gevent.sleep(0.2)

    def prepare(self) -> None:
        """Waits for the workers, sends each its slice, waits until all have signed. Raises
        (Locust then exits with status 1) when a worker fails or does not answer in time."""
        plan = self.plan
        self._wait(lambda: len(self.runner.clients.ready) >= plan.expect_workers, WORKERS_TIMEOUT, "workers")
        workers = sorted((c.id for c in self.runner.clients.ready), key=self.runner.get_worker_index)
        coins = plan.coins_file.read_bytes()
        record = COIN_RECORD.size
        count = len(coins) // record
        per = math.ceil(count / len(workers))
        for i, worker in enumerate(workers):
            part = coins[i * per * record : (i + 1) * per * record]
            share = len(part) // record
            self.runner.send_message(
                PREPARE,
                {
                    "coins": part,
                    "rate": plan.rate * share / count if count else 0.0,
                    "drain_timeout": plan.drain_timeout,
                    "network": plan.network,
                    "chain_id": plan.chain_id,
                    "batch_size": plan.batch_size,
                },
                client_id=worker,
            )
        self.workers = workers
        log.info("sent %d coins to %d workers; waiting for them to sign", count, len(workers))
        self._wait(lambda: all(w in self.prepared for w in workers), PREPARE_TIMEOUT, "the workers to sign")
        failed = {w: p["error"] for w, p in self.prepared.items() if "error" in p}
        if failed:
            raise RuntimeError(f"workers failed to prepare: {failed}")
        log.info("every worker signed its transactions: starting the load")

    def finish(self) -> None:
        """After the test starts: waits for every worker's results and for the merged stats to
        count their finality events, writes the results file, quits."""
        plan = self.plan
        try:
            self._wait(
                lambda: all(w in self.results for w in self.workers),
                plan.duration + plan.drain_timeout + RESULTS_MARGIN,
                "the workers' results",
            )
            final = sum(len(r["final"]) for r in self.results.values())
            entry = self.environment.stats.get(FINAL, FINALITY)
            self._wait(lambda: entry.num_requests >= final, STATS_TIMEOUT, "Locust's stats")
        except RuntimeError as e:
            log.error("%s", e)
        merged = {"workers": [self.results.get(w) for w in self.workers], "prepared": self.prepared}
        plan.results_file.write_bytes(orjson.dumps(merged))
        self.runner.quit()


_state: dict[str, Any] = {}
"""This process's role object (``worker`` or ``master``)."""


def _init(environment: Environment, runner: Any, **kwargs: Any) -> None:
    options = environment.parsed_options
    path = getattr(options, PLAN_OPTION.removeprefix("--").replace("-", "_"), "") if options else ""
    if not path:
        raise RuntimeError(f"this locustfile runs under `timecoin loadtest` only (no {PLAN_OPTION})")
    plan = read_plan(Path(path))
    if isinstance(runner, WorkerRunner):
        if not isinstance(plan, WorkerPlan):
            raise RuntimeError(f"{path} is not a worker plan")
        worker = _state["worker"] = _Worker(environment, plan)
        runner.register_message(PREPARE, worker.prepare, concurrent=True)
    elif isinstance(runner, MasterRunner):
        if not isinstance(plan, MasterPlan):
            raise RuntimeError(f"{path} is not a master plan")
        master = _state["master"] = _Master(environment, runner, plan)
        master.prepare()
    else:
        raise RuntimeError("run with --master or --worker (timecoin loadtest --workers N)")


def _test_start(environment: Environment, **kwargs: Any) -> None:
    if "worker" in _state:
        _state["worker"].start()
    elif "master" in _state:
        gevent.spawn(_state["master"].finish)


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_init)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_test_start)  # type: ignore[no-untyped-call]


class TimecoinUser(FastHttpUser):
    """Submits this worker's signed transactions to one node (users take nodes round-robin)."""

    wait_time = constant_pacing(TICK)
    concurrency = USER_CONCURRENCY
    _numbers = itertools.count()

    def __init__(self, environment: Environment) -> None:
        worker: _Worker = _state["worker"]
        self.worker = worker
        self.node = next(TimecoinUser._numbers) % len(worker.endpoints)
        self.host = worker.endpoints[self.node].url
        super().__init__(environment)

    @task
    def submit(self) -> None:
        batch = self.worker.take()
        if batch:
            self.worker.posts.spawn(self._post, batch)

    def _post(self, batch: list[bytes]) -> None:
        worker, node = self.worker, self.node
        body = rawbatch.encode_batch(batch)
        headers = {**worker.headers[node], "Content-Type": rawbatch.CONTENT_TYPE}
        sent = time.monotonic()
        with self.client.post(
            rawbatch.PATH,
            data=body,  # type: ignore[arg-type]
            headers=headers,
            catch_response=True,
        ) as response:
            status, content = response.status_code, response.content or b""
            if status == 200:
                response.success()
            else:
                response.failure(f"HTTP {status}")
        worker.sent(node, batch, sent, status, content)
