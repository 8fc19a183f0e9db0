"""Binary transaction submission, ``POST /rawtransactions`` (issue 13 item 8; DESIGN §10, §12
invariants 6 and 10, §13 "RPC limits" and "Admission control").

Two live ``timecoind`` nodes, not connected to each other, start from the same devnet chain (3
blocks written into each data directory) with the same settings: rpcuser credentials, a 1 MB
``rpcmaxrequest``, two request slots and no wait queue, and a small admission limit. Every batch
goes to node A as raw bytes (:meth:`RPCClient.sendrawtransactions_binary`) and, identically, to
node B as hex JSON-RPC (``sendrawtransactions``): the verdicts must be equal item for item (txids,
accepted, reject codes and messages) and the two mempools must stay equal, for

* a mix of valid transfers, an in-batch duplicate, one already pending, a conflicting spend,
  garbage bytes, a forged signature, a missing input and a committed transaction;
* an admission limit that fits part of a batch (the rest answered -32001 per transaction), then
  none of it (the whole call refused with -32001; HTTP 503 on the binary endpoint).

Raw HTTP requests then play the bad clients of the binary endpoint: no or wrong credentials,
another method or content type, a truncated frame, a length beyond the body, trailing bytes, an
empty transaction, one transaction over the batch limit, a body over ``rpcmaxrequest`` (declared
or chunked), a stalled upload, and every slot taken. Each gets its HTTP status and error code,
admits nothing (a valid transaction rides in every bad body and is admitted only at the end) and
leaves the node serving.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import socket
import struct
import time
from collections.abc import Iterator

import orjson
import pytest

from timecoin.core.types import Block, OutPoint, Transaction, TxOut, Witness
from timecoin.p2p.messages import encode_items
from timecoin.rpc import errors, rawbatch
from timecoin.rpc.client import JSONRPCError, RPCClient
from timecoin.rpc.rawtransactions import MAX_BATCH
from timecoin.rpc.server import BODY_READ_TIMEOUT
from timecoin.testing.node import (
    DevnetChain,
    TestNode,
    build_devnet_chain,
    default_port_seed,
    wait_until,
    write_chain,
)
from timecoin.testing.util import scaled

SEED_OFFSET = 83
BLOCKS, TXS_PER_BLOCK = 3, 8
USER, PASSWORD = "alice", "s3cret"
MAX_REQUEST = 1_000_000
"""``--rpcmaxrequest`` of both nodes: a batch of MAX_BATCH + 1 tiny items (~500 kB) fits."""
BOUND = 24
"""``--admission-max-pending`` of both nodes."""
THREADS = 2
ARGS = [
    "--rpcuser", USER, "--rpcpassword", PASSWORD, "--rpcmaxrequest", str(MAX_REQUEST),
    "--rpcthreads", str(THREADS), "--rpcworkqueue", "0", "--admission-max-pending", str(BOUND),
]  # fmt: skip
U32 = struct.Struct("<I")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> DevnetChain:
    return build_devnet_chain(tmp_path_factory.mktemp("rpc_rawsubmit"), BLOCKS, TXS_PER_BLOCK)


@pytest.fixture(scope="module")
def pool(chain: DevnetChain) -> list[Transaction]:
    """Fresh transfers, each spending a different committed coin (the mempool admits spends of
    committed coins only); tests take them with ``pop``."""
    return chain.transfers(32)


@pytest.fixture(scope="module")
def pair(chain: DevnetChain) -> Iterator[tuple[TestNode, TestNode]]:
    root = chain.genesis_file.parent
    seed = default_port_seed() + SEED_OFFSET
    nodes = [TestNode(i, root, chain.genesis_file, port_seed=seed, extra_args=ARGS) for i in range(2)]
    try:
        for n in nodes:
            write_chain(n.datadir, chain, BLOCKS)
            n.start_and_wait()
        yield nodes[0], nodes[1]
        for n in nodes:
            n.stop()
    finally:
        for n in nodes:
            n.cleanup()


# -- helpers ----------------------------------------------------------------------------------------


def _auth(node: TestNode) -> str:
    return "Basic " + base64.b64encode((node.datadir / ".cookie").read_bytes().strip()).decode()


def _post_raw(
    node: TestNode,
    body: bytes | list[bytes],
    *,
    content_type: str | None = rawbatch.CONTENT_TYPE,
    auth: str | None = "cookie",
    method: str = "POST",
) -> tuple[int, bytes]:
    """One raw HTTP request to the binary endpoint on a fresh connection; a list body goes
    chunked (no Content-Length)."""
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if auth is not None:
        headers["Authorization"] = _auth(node) if auth == "cookie" else auth
    conn = http.client.HTTPConnection("127.0.0.1", node.rpc_port, timeout=scaled(60))
    try:
        if isinstance(body, list):
            conn.request(method, rawbatch.PATH, body=iter(body), headers=headers, encode_chunked=True)
        else:
            conn.request(method, rawbatch.PATH, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _error(body: bytes) -> tuple[int, str]:
    error = orjson.loads(body)["error"]
    return error["code"], error["message"]


def _state(node: TestNode) -> tuple[list[str], dict[str, object]]:
    return node.rpc.getrawmempool(), node.rpc.getmempoolinfo()


def _pool_entries(node: TestNode) -> dict[str, dict[str, object]]:
    """``getrawmempool true`` without the arrival time (the two nodes differ in it)."""
    return {t: {k: v for k, v in e.items() if k != "time"} for t, e in node.rpc.getrawmempool(True).items()}


def _finality(node: TestNode, txid: str) -> dict[str, object]:
    status = node.rpc.gettransactionfinality(txid)
    return {k: status.get(k) for k in ("status", "conflicted", "height")}


def _answers(node: TestNode) -> bool:
    """Whether ``getblockcount`` answers now (False on HTTP 503 "server overloaded")."""
    try:
        return bool(node.rpc.getblockcount() == BLOCKS)
    except JSONRPCError as e:
        if e.http_status == 503 and e.code == errors.SERVER_OVERLOADED:
            return False
        raise


def _both(a: TestNode, b: TestNode, raws: list[bytes]) -> list[dict[str, object]]:
    """The verdicts of ``raws`` sent binary to ``a`` and as hex JSON-RPC to ``b``, asserted equal."""
    binary = a.rpc.sendrawtransactions_binary(raws)
    json = b.rpc.sendrawtransactions([r.hex() for r in raws])
    assert binary == json
    return binary


# -- tests ------------------------------------------------------------------------------------------


def test_binary_batch_is_admitted_as_sendrawtransactions(
    pair: tuple[TestNode, TestNode], chain: DevnetChain, pool: list[Transaction]
) -> None:
    """A mixed batch gets, item for item, the verdicts ``sendrawtransactions`` gives, and the
    accepted transactions become visible (mempool, finality status) exactly as via JSON-RPC."""
    a, b = pair
    params = chain.config.params
    network = int(params.network)
    pending = pool.pop()
    for node in pair:
        assert node.rpc.sendrawtransaction(pending.encode().hex()) == pending.txid.hex()
    valid = [pool.pop() for _ in range(6)]
    honest = pool.pop()
    w = honest.witnesses[0]
    forged = dataclasses.replace(
        honest, witnesses=(Witness(w.public_key, bytes([w.signature[0] ^ 1]) + w.signature[1:]),)
    )
    key = chain.wallet.coins[OutPoint(valid[1].txid, 0)][1]  # the key of valid[1]'s input
    out = valid[1].outputs[0]
    conflict = Transaction.transfer([valid[1].inputs[0]], [TxOut(out.value, out.pubkey_hash)])
    conflict = conflict.signed_with([key], chain.genesis.hash, network)
    missing = Transaction.transfer([OutPoint(b"\x01" * 32, 0)], [TxOut(10_000, out.pubkey_hash)])
    missing = missing.signed_with([key], chain.genesis.hash, network)
    committed = Block.decode(chain.blocks[2]).transactions[1]
    garbage = b"\x00\xff"
    batch = [
        valid[0], valid[1], garbage, valid[0], pending, forged, valid[2], missing, conflict,
        committed, valid[3], valid[4], valid[5],
    ]  # fmt: skip
    raws = [t if isinstance(t, bytes) else t.encode() for t in batch]

    verdicts = _both(a, b, raws)

    def txid(t: Transaction | bytes) -> str | None:
        return t.txid.hex() if isinstance(t, Transaction) else None

    def code(v: dict[str, object]) -> int | None:
        return v["reject"]["code"] if v["reject"] else None  # type: ignore[index]

    expected = {
        0: None, 1: None, 2: errors.DESERIALIZATION_ERROR, 3: None, 4: None, 5: errors.VERIFY_REJECTED,
        6: None, 7: errors.VERIFY_ERROR, 8: None, 9: errors.VERIFY_ALREADY_IN_CHAIN, 10: None, 11: None,
        12: None,
    }  # fmt: skip
    assert {i: code(v) for i, v in enumerate(verdicts)} == expected, verdicts
    assert [v["accepted"] for v in verdicts] == [c is None for c in expected.values()]
    for i, (t, v) in enumerate(zip(batch, verdicts, strict=True)):
        if v["accepted"] or i in (5, 7, 9):
            assert v["txid"] == txid(t), (i, v)
    assert "bad-signature" in verdicts[5]["reject"]["reason"]  # type: ignore[index]
    assert "missing-input" in verdicts[7]["reject"]["reason"]  # type: ignore[index]

    # Visible exactly as via JSON-RPC: same mempool (order included), same finality statuses.
    assert a.rpc.getrawmempool() == b.rpc.getrawmempool()
    assert _pool_entries(a) == _pool_entries(b)
    in_pool = set(a.rpc.getrawmempool())
    assert in_pool == {t.txid.hex() for t in [pending, *valid]}
    for t in [pending, *valid, conflict, forged, missing, committed]:
        assert _finality(a, t.txid.hex()) == _finality(b, t.txid.hex())
    assert _finality(a, conflict.txid.hex())["conflicted"] is True
    assert a.rpc.getrawtransaction(valid[5].txid.hex()) == valid[5].encode().hex()
    pool.append(honest)  # never admitted: still spendable as the probe of the next test


def test_bad_bodies_are_refused_and_change_nothing(
    pair: tuple[TestNode, TestNode], pool: list[Transaction]
) -> None:
    """Every malformed, unauthorized, mistyped, overlong or oversize request is refused with its
    HTTP status and error code; the valid transaction inside each is not admitted; a stalled
    upload is cut at the body timeout; the node keeps serving and finally admits the probe."""
    a, b = pair
    probe = pool.pop()
    raw = probe.encode()
    good = rawbatch.encode_batch([raw])
    frame = U32.pack(len(raw)) + raw
    # A stalled upload first: it holds no slot while everything below runs.
    stalled = socket.create_connection(("127.0.0.1", a.rpc_port), timeout=scaled(30))
    stalled.sendall(
        (
            f"POST {rawbatch.PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {_auth(a)}\r\n"
            f"Content-Type: {rawbatch.CONTENT_TYPE}\r\nContent-Length: {len(good)}\r\n\r\n"
        ).encode()
        + good[: len(good) // 2]
    )
    started = time.monotonic()
    try:
        before = _state(a)

        def refused(status: int, code: int | None, fragment: str, response: tuple[int, bytes]) -> None:
            assert response[0] == status, response
            if code is not None:
                got_code, message = _error(response[1])
                assert got_code == code and fragment in message, response
            else:
                assert fragment in response[1].decode(), response
            assert _state(a) == before
            assert probe.txid.hex() not in a.rpc.getrawmempool()

        refused(401, None, "authorization required", _post_raw(a, good, auth=None))
        wrong = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
        refused(401, None, "authorization required", _post_raw(a, good, auth=wrong))
        refused(405, None, "takes POST", _post_raw(a, good, method="PUT"))
        refused(415, errors.INVALID_REQUEST, rawbatch.CONTENT_TYPE, _post_raw(a, good, content_type=None))
        json_type = _post_raw(a, good, content_type="application/json")
        refused(415, errors.INVALID_REQUEST, "not application/json", json_type)
        malformed = [
            (good[:-1], "past the payload"),  # truncated frame
            (U32.pack(1) + U32.pack(len(raw) + 10) + raw, "past the payload"),  # length beyond the body
            (good + b"\x00", "trailing"),
            (U32.pack(0), "count 0"),
            (U32.pack(2) + frame + U32.pack(0), "length 0"),  # an empty transaction after a valid one
            (U32.pack(3) + frame + frame, "past the payload"),  # a transaction short
            (b"", "no count"),
        ]
        for body, fragment in malformed:
            refused(400, errors.INVALID_REQUEST, fragment, _post_raw(a, body))
        # One over the batch limit (a valid transaction first): refused whole, with
        # sendrawtransactions' error and message.
        too_many = encode_items([raw] + [b"\x00"] * MAX_BATCH)
        assert len(too_many) < MAX_REQUEST
        message = f"{MAX_BATCH + 1} transactions exceed the batch limit of {MAX_BATCH}"
        refused(400, errors.INVALID_PARAMETER, message, _post_raw(a, too_many))
        with pytest.raises(JSONRPCError) as info:
            b.rpc.sendrawtransactions(["00"] * (MAX_BATCH + 1))
        assert info.value.code == errors.INVALID_PARAMETER and info.value.message == message
        # Over rpcmaxrequest, declared or chunked.
        oversize = encode_items([raw, b"\x00" * MAX_REQUEST])
        refused(413, errors.INVALID_REQUEST, "exceeds the limit", _post_raw(a, oversize))
        chunks = [oversize[i : i + 65_536] for i in range(0, len(oversize), 65_536)]
        refused(413, errors.INVALID_REQUEST, "exceeds the limit", _post_raw(a, chunks))

        # The stalled upload: HTTP 408 after the body timeout, and the connection closed.
        stalled.settimeout(scaled(BODY_READ_TIMEOUT + 60))
        response = http.client.HTTPResponse(stalled)
        response.begin()
        assert response.status == 408
        assert _error(response.read())[0] == errors.INVALID_REQUEST
        assert time.monotonic() - started >= BODY_READ_TIMEOUT * 0.9
        assert stalled.recv(1) == b""
        assert _state(a) == before
    finally:
        stalled.close()
    # Nothing above admitted the probe; now it goes in (and in B too, to keep the pair equal).
    assert _both(a, b, [raw]) == [{"txid": probe.txid.hex(), "accepted": True, "reject": None}]
    assert a.rpc.getrawmempool() == b.rpc.getrawmempool()
    assert " ERROR " not in a.log_text() and "Traceback" not in a.log_text()


def test_overload_is_answered_as_for_json_rpc(
    pair: tuple[TestNode, TestNode], pool: list[Transaction]
) -> None:
    """At the admission limit the binary endpoint admits what fits and answers the rest -32001
    per transaction, then refuses a whole batch with -32001 (HTTP 503), exactly as
    ``sendrawtransactions``; with every request slot taken it answers HTTP 503 -32000 at once.
    rpcuser credentials work as the cookie does."""
    a, b = pair
    clients = [RPCClient("127.0.0.1", n.rpc_port, USER, PASSWORD, scaled(60)) for n in pair]
    try:
        sizes = [n.rpc.getmempoolinfo()["size"] for n in pair]
        assert sizes[0] == sizes[1] and sizes[0] < BOUND
        room = BOUND - sizes[0]
        batch = [pool.pop() for _ in range(room + 3)]
        raws = [t.encode() for t in batch]
        binary = clients[0].sendrawtransactions_binary(raws)
        assert binary == clients[1].sendrawtransactions([r.hex() for r in raws])
        assert [v["txid"] for v in binary[:room]] == [t.txid.hex() for t in batch[:room]]
        assert all(v["accepted"] for v in binary[:room])
        for v in binary[room:]:
            assert v["txid"] is None and v["accepted"] is False, v
            assert v["reject"]["code"] == errors.MEMPOOL_OVERLOADED, v  # type: ignore[index]
            assert v["reject"]["reason"].startswith("mempool-overloaded: "), v  # type: ignore[index]
        assert a.rpc.getrawmempool() == b.rpc.getrawmempool()
        assert a.rpc.getmempoolinfo()["size"] == BOUND

        # No room at all: the whole call is refused, retryably, and nothing changes.
        before = _state(a)
        with pytest.raises(JSONRPCError) as binary_error:
            clients[0].sendrawtransactions_binary(raws[room:])
        with pytest.raises(JSONRPCError) as json_error:
            clients[1].sendrawtransactions([r.hex() for r in raws[room:]])
        assert binary_error.value.http_status == 503
        assert binary_error.value.code == json_error.value.code == errors.MEMPOOL_OVERLOADED
        assert binary_error.value.message == json_error.value.message
        assert binary_error.value.message.startswith("mempool-overloaded: ")
        assert _state(a) == before

        # Every slot taken (two long waits): HTTP 503 SERVER_OVERLOADED at once, then served again.
        waits = []
        for _ in range(THREADS):
            conn = http.client.HTTPConnection("127.0.0.1", a.rpc_port, timeout=scaled(60))
            body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "waitfornewblock", "params": [0]})
            conn.request("POST", "/", body=body, headers={"Authorization": _auth(a)})
            waits.append(conn)
        try:
            status, reply = wait_until(
                lambda: (
                    (r := _post_raw(a, rawbatch.encode_batch(raws[room:])))[0] == 503
                    and _error(r[1])[0] == errors.SERVER_OVERLOADED
                    and r
                ),
                30,
                what="every slot taken",
            )
            assert "server overloaded" in _error(reply)[1]
        finally:
            for conn in waits:
                conn.close()
        wait_until(lambda: _answers(a), 30, what="the slots back")
        assert _state(a) == before
    finally:
        for client in clients:
            client.close()
