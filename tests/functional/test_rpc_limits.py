"""The JSON-RPC server cannot be locked (DESIGN §13 "RPC limits", §12 invariants 6, 9 and 10).

One live ``timecoind`` with ``--rpcthreads 4 --rpcworkqueue 0``: four requests worked on at once
and none waiting, so a fifth request is answered HTTP 503 ``SERVER_OVERLOADED`` while every slot
is held. That 503 is the observable "every slot is taken" the tests use instead of sleeps.

Raw sockets on loopback play the clients that hurt: connections that stall mid-body, clients
that hang up mid-body or during ``waitfornewblock`` and the other waits, batches longer than the
cap, a batch whose replies pass the reply cap, and a long batch that must not hold the event
loop. After each, ``getblockcount`` must answer, and the node's log must hold no ERROR and no
traceback for clients that merely went away.
"""

from __future__ import annotations

import base64
import http.client
import select
import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from timecoin.rpc import errors
from timecoin.rpc.client import JSONRPCError
from timecoin.rpc.server import BODY_READ_TIMEOUT, MAX_BATCH_REPLY_BYTES, MAX_BATCH_REQUESTS
from timecoin.testing.node import (
    DevnetChain,
    TestNode,
    build_devnet_chain,
    default_port_seed,
    wait_until,
    write_chain,
)
from timecoin.testing.util import scaled

THREADS = 4
"""``--rpcthreads`` of the test node: the request slots."""
PROBE_TIMEOUT = 20.0
"""Seconds (scaled) a probe ``getblockcount`` may take: far more than it needs, far less than
the forever a locked server takes."""


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> DevnetChain:
    return build_devnet_chain(tmp_path_factory.mktemp("rpc_limits"), 1, 2)


@pytest.fixture(scope="module")
def node(chain: DevnetChain) -> Iterator[TestNode]:
    n = TestNode(
        0,
        chain.genesis_file.parent,
        chain.genesis_file,
        port_seed=default_port_seed() + 11,
        extra_args=["--rpcthreads", str(THREADS), "--rpcworkqueue", "0"],
    )
    write_chain(n.datadir, chain, 1)
    n.start_and_wait()
    yield n
    if n.running:
        n.stop()
    n.cleanup()


# -- raw HTTP ---------------------------------------------------------------------------------------


def _headers(node: TestNode, length: int) -> bytes:
    token = base64.b64encode((node.datadir / ".cookie").read_bytes().strip()).decode()
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{node.rpc_port}\r\nAuthorization: Basic {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _connect(node: TestNode) -> socket.socket:
    return socket.create_connection(("127.0.0.1", node.rpc_port), timeout=scaled(PROBE_TIMEOUT))


def _send_partial(node: TestNode, declared: int, sent: bytes) -> socket.socket:
    """A connection that declares a ``declared``-byte body, sends ``sent`` of it and stops."""
    assert len(sent) < declared
    sock = _connect(node)
    sock.sendall(_headers(node, declared) + sent)
    return sock


def _send_request(node: TestNode, payload: object) -> socket.socket:
    """A connection that sent a whole request and has not read the answer."""
    body = orjson.dumps(payload)
    sock = _connect(node)
    sock.sendall(_headers(node, len(body)) + body)
    return sock


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    sock.settimeout(scaled(timeout))
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


def _post(node: TestNode, payload: object, timeout: float = 120.0) -> tuple[int, object]:
    sock = _send_request(node, payload)
    try:
        status, body = _read_response(sock, timeout)
    finally:
        sock.close()
    return status, orjson.loads(body) if body else None


def _answers(node: TestNode) -> bool:
    """Whether ``getblockcount`` answers now (False on HTTP 503 "overloaded")."""
    client = node.new_rpc(PROBE_TIMEOUT)
    try:
        return bool(client.getblockcount() == 1)
    except JSONRPCError as e:
        if e.http_status == 503 and e.code == errors.SERVER_OVERLOADED:
            return False
        raise
    finally:
        client.close()


def _overloaded(node: TestNode) -> bool:
    return not _answers(node)


def _assert_clean_log(node: TestNode, since: int) -> None:
    """No ERROR line and no traceback in what the node logged after offset ``since``."""
    text = node.log_text()[since:]
    assert " ERROR " not in text and "Traceback" not in text, text[-4000:]


def _close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


# -- tests ------------------------------------------------------------------------------------------


def test_stalled_bodies_take_no_slot_and_time_out(node: TestNode) -> None:
    """Twice as many connections as slots stall mid-body: the slot is taken only once the body is
    in, so ``getblockcount`` answers at once; after ``BODY_READ_TIMEOUT`` the node answers each
    stalled connection HTTP 408 and closes it. (Before: each stalled body held a slot for ever.)"""
    since = len(node.log_text())
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "getblockcount"})
    started = time.monotonic()
    stalled = [_send_partial(node, len(body), body[:10]) for _ in range(2 * THREADS)]
    try:
        for _ in range(3):
            assert _answers(node)
        for sock in stalled:
            status, reply = _read_response(sock, BODY_READ_TIMEOUT + 60)
            assert status == 408
            assert orjson.loads(reply)["error"]["code"] == errors.INVALID_REQUEST
            sock.settimeout(scaled(30))
            assert sock.recv(1) == b""  # and the connection is closed
        assert time.monotonic() - started >= BODY_READ_TIMEOUT * 0.9  # not cut before the timeout
    finally:
        _close_all(stalled)
    assert _answers(node)
    _assert_clean_log(node, since)


def test_clients_that_drop_mid_body_are_not_errors(node: TestNode) -> None:
    """Clients that hang up (FIN or RST) halfway through their body free everything and are
    logged at debug, not as an ERROR with a traceback. (Before: one ERROR traceback each.)"""
    since = len(node.log_text())
    for i in range(2 * THREADS):
        sock = _send_partial(node, 10_000, b'[{"jsonrpc": "2.0", "id": 1, ')
        if i % 2:  # abortive close: RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    for _ in range(3):
        assert _answers(node)
    _assert_clean_log(node, since)


def test_waits_are_cancelled_when_the_client_hangs_up(node: TestNode) -> None:
    """One of each long wait fills every slot (the node answers 503); the clients hang up; the
    waits are cancelled and their slots come back. (Before: the slots stayed taken for good.)"""
    since = len(node.log_text())
    waits = [
        {"jsonrpc": "2.0", "id": 1, "method": "waitfornewblock", "params": [0]},
        {"jsonrpc": "2.0", "id": 2, "method": "waitforblockheight", "params": [1_000_000, 0]},
        {"jsonrpc": "2.0", "id": 3, "method": "waittransactionfinality", "params": ["ab" * 32, 3_600_000]},
        [{"jsonrpc": "2.0", "id": 4, "method": "getfinalityfeed"}],  # its cursor, then a long poll
    ]
    status, reply = _post(node, waits[3])
    assert status == 200
    cursor = reply[0]["result"]["cursor"]  # type: ignore[index]
    waits[3] = {"jsonrpc": "2.0", "id": 4, "method": "getfinalityfeed", "params": [cursor, 3_600_000]}
    assert len(waits) == THREADS
    socks = [_send_request(node, w) for w in waits]
    try:
        wait_until(lambda: _overloaded(node), 30, what="every slot taken by a wait")
        for sock in socks:  # the waits are still waiting
            assert select.select([sock], [], [], 0)[0] == []
    finally:
        _close_all(socks)
    wait_until(lambda: _answers(node), 30, what="slots released by the hung-up waits")
    # every slot is free again: THREADS more waits fit (then hang up too)
    socks = [
        _send_request(node, {"jsonrpc": "2.0", "id": 9, "method": "waitfornewblock"}) for _ in range(THREADS)
    ]
    try:
        wait_until(lambda: _overloaded(node), 30, what="every slot taken again")
    finally:
        _close_all(socks)
    wait_until(lambda: _answers(node), 30, what="slots released again")
    _assert_clean_log(node, since)


def test_batch_length_is_capped(node: TestNode) -> None:
    """A batch of ``MAX_BATCH_REQUESTS`` is served; one request more, or a 4 MB body of a million
    tiny calls, gets one ``INVALID_REQUEST`` error and nothing is run. (Before: a reply per call,
    ~190 MB for the 4 MB body.)"""
    call = {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}
    status, reply = _post(node, [call] * MAX_BATCH_REQUESTS)
    assert status == 200
    assert isinstance(reply, list) and len(reply) == MAX_BATCH_REQUESTS
    assert all(r["result"] == 1 for r in reply)

    status, reply = _post(node, [call] * (MAX_BATCH_REQUESTS + 1))
    assert status == 200 and isinstance(reply, dict)
    assert reply["error"]["code"] == errors.INVALID_REQUEST
    assert f"{MAX_BATCH_REQUESTS + 1} requests" in reply["error"]["message"]
    assert str(MAX_BATCH_REQUESTS) in reply["error"]["message"]

    tiny = b"[" + b",".join([b"{}"] * 1_300_000) + b"]"
    sock = _connect(node)
    try:
        sock.sendall(_headers(node, len(tiny)) + tiny)
        status, body = _read_response(sock, 120)
    finally:
        sock.close()
    assert status == 200 and len(body) < 1_000
    assert orjson.loads(body)["error"]["code"] == errors.INVALID_REQUEST
    assert _answers(node)


def test_batch_reply_size_is_capped(node: TestNode) -> None:
    """A batch whose replies pass ``MAX_BATCH_REPLY_BYTES`` stops there: the requests before have
    their results, every later one gets ``RESPONSE_TOO_LARGE`` with its id and is not run, and
    the reply stays near the cap. (Before: the whole reply was built, however large.)"""
    help_size = len(orjson.dumps(node.rpc.help()))
    count = MAX_BATCH_REPLY_BYTES // help_size + 50
    assert count <= MAX_BATCH_REQUESTS, "help is too small a reply to reach the cap within a batch"
    batch = [{"jsonrpc": "2.0", "id": i, "method": "help"} for i in range(count)]
    status, reply = _post(node, batch)
    assert status == 200 and isinstance(reply, list) and len(reply) == count
    assert [r["id"] for r in reply] == list(range(count))
    served = [r for r in reply if "result" in r]
    refused = reply[len(served) :]
    assert served and refused
    assert len(orjson.dumps(served)) >= MAX_BATCH_REPLY_BYTES  # stopped at the cap, not before
    assert all(r["error"]["code"] == errors.RESPONSE_TOO_LARGE for r in refused)
    assert len(orjson.dumps(reply)) < MAX_BATCH_REPLY_BYTES + help_size + count * 200
    assert _answers(node)


def test_long_batch_does_not_hold_the_event_loop(node: TestNode, chain: DevnetChain) -> None:
    """While a long batch runs (a transaction first, then ``MAX_BATCH_REQUESTS - 1`` calls of
    ``getconsensusinfo``), another client sees the transaction in the mempool and gets
    ``getblockcount`` answered before the batch's reply exists: the server yields between chunks.
    (Before: nothing else ran until the whole batch was done, P2P and consensus included.)"""
    (tx,) = chain.transfers(1)
    txid = tx.txid.hex()
    batch = [{"jsonrpc": "2.0", "id": 0, "method": "sendrawtransaction", "params": [tx.encode().hex()]}]
    batch += [{"jsonrpc": "2.0", "id": i, "method": "getconsensusinfo"} for i in range(1, MAX_BATCH_REQUESTS)]
    probe = node.new_rpc(PROBE_TIMEOUT)
    sock = _send_request(node, batch)
    try:
        wait_until(lambda: txid in probe.getrawmempool(), 60, interval=0.001, what="the batch's first call")
        assert probe.getblockcount() == 1
        assert select.select([sock], [], [], 0)[0] == [], "the batch finished before anyone else was served"
        status, body = _read_response(sock, 300)
    finally:
        sock.close()
        probe.close()
    reply = orjson.loads(body)
    assert status == 200 and len(reply) == MAX_BATCH_REQUESTS
    assert reply[0]["result"] == txid
    assert all("result" in r for r in reply)
