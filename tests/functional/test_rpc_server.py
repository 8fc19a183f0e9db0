"""The JSON-RPC transport of a live node: authentication, JSON-RPC 2.0 framing, batches, size
limits and overload (DESIGN §10, §12 invariant 6).

Raw HTTP requests hit a running ``timecoind``; each bad request must get its HTTP status and
JSON-RPC error code, and the node must keep serving after every one of them.
"""

from __future__ import annotations

import base64
import http.client
import threading

import orjson
import pytest

from timecoin.rpc import errors
from timecoin.rpc.client import JSONRPCError, RPCClient
from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, wait_until, write_chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("rpc_server"), 1, 2)


@pytest.fixture(scope="module")
def node(chain):
    n = TestNode(
        0,
        chain.genesis_file.parent,
        chain.genesis_file,
        port_seed=default_port_seed() + 3,
        extra_args=["--rpcuser", "alice", "--rpcpassword", "s3cret", "--rpcmaxrequest", "65536"],
    )
    write_chain(n.datadir, chain, 1)
    n.start_and_wait()
    yield n
    if n.running:
        n.stop()
    n.cleanup()


def _post(node, body: bytes, auth: str | None = "cookie", method: str = "POST") -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if auth == "cookie":
        auth = (node.datadir / ".cookie").read_text()
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", node.rpc_port, timeout=30)
    try:
        conn.request(method, "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _rpc(node, payload: object, **kwargs) -> tuple[int, object]:
    status, body = _post(node, orjson.dumps(payload), **kwargs)
    return status, orjson.loads(body) if body else None


def _still_serving(node) -> None:
    assert node.running
    assert node.rpc.getblockcount() == 1


def test_authentication(node):
    assert _post(node, b'{"method": "getblockcount"}', auth=None)[0] == 401
    assert _post(node, b'{"method": "getblockcount"}', auth="__cookie__:wrong")[0] == 401
    assert _post(node, b'{"method": "getblockcount"}', auth="alice:wrong")[0] == 401
    status, body = _post(node, b"x" * 100, auth=None)
    assert status == 401  # authentication comes before parsing
    cookie = (node.datadir / ".cookie").read_text()
    assert cookie.startswith("__cookie__:") and len(cookie) == len("__cookie__:") + 64
    assert (node.datadir / ".cookie").stat().st_mode & 0o077 == 0
    assert RPCClient("127.0.0.1", node.rpc_port, "alice", "s3cret").getblockcount() == 1
    _still_serving(node)


def test_jsonrpc_framing_errors(node):
    status, body = _post(node, b'{"method": "getblockcount"')
    assert status == 200 and orjson.loads(body)["error"]["code"] == errors.PARSE_ERROR
    for payload, fragment in [
        (5, "JSON object"),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, "method must be a string"),
        ({"jsonrpc": "1.1", "id": 1, "method": "getblockcount"}, "version"),
        ({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": "x"}, "params"),
        ({"jsonrpc": "2.0", "id": [1], "method": "getblockcount"}, "id must be"),
        ([], "empty batch"),
    ]:
        status, reply = _rpc(node, payload)
        assert status == 200, payload
        assert reply["error"]["code"] == errors.INVALID_REQUEST, payload
        assert fragment in reply["error"]["message"], payload
    status, reply = _rpc(node, {"jsonrpc": "2.0", "id": "a", "method": "nosuchmethod"})
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": errors.METHOD_NOT_FOUND, "message": "Method not found: nosuchmethod"},
        "id": "a",
    }
    assert _post(node, b"", method="GET")[0] == 405
    _still_serving(node)


def test_batch_notifications_and_legacy_requests(node):
    status, reply = _rpc(
        node,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"},
            {"jsonrpc": "2.0", "method": "getblockcount"},  # notification: no response
            {"jsonrpc": "2.0", "id": 2, "method": "nosuchmethod"},
            {"jsonrpc": "2.0", "id": 3, "method": "getblockhash", "params": {"height": 0}},
            7,
        ],
    )
    assert status == 200
    assert [r["id"] for r in reply] == [1, 2, 3, None]
    assert reply[0]["result"] == 1
    assert reply[1]["error"]["code"] == errors.METHOD_NOT_FOUND
    assert len(reply[2]["result"]) == 64
    assert reply[3]["error"]["code"] == errors.INVALID_REQUEST
    assert _post(node, orjson.dumps({"jsonrpc": "2.0", "method": "getblockcount"}))[0] == 204
    status, reply = _rpc(node, {"id": 9, "method": "getblockcount", "params": []})
    assert reply == {"result": 1, "error": None, "id": 9}
    _still_serving(node)


def test_oversized_request_is_refused(node):
    big = orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "decoderawtransaction", "params": ["00" * 40_000]}
    )
    status, body = _post(node, big)
    assert status == 413
    assert orjson.loads(body)["error"]["code"] == errors.INVALID_REQUEST
    _still_serving(node)


def test_invalid_params_keep_the_node_serving(node):
    for method, params, code in [
        ("getblockhash", ["x"], errors.INVALID_PARAMS),
        ("getblock", [None], errors.INVALID_PARAMS),
        ("getblock", ["00" * 32, "x"], errors.INVALID_PARAMS),
        ("gettxout", [{}, 0], errors.INVALID_PARAMS),
        ("getblockcount", [1], errors.INVALID_PARAMS),
        ("sendrawtransaction", ["0" * 3], errors.INVALID_PARAMETER),
        ("getrawtransaction", ["g" * 64], errors.INVALID_PARAMETER),
        ("submitblock", ["00" * 10], errors.DESERIALIZATION_ERROR),
        ("validateaddress", [7], errors.INVALID_PARAMS),
    ]:
        status, reply = _rpc(node, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert status == 200 and reply["error"]["code"] == code, (method, params, reply)
    _still_serving(node)


def test_overload_answers_503(chain, tmp_path):
    n = TestNode(
        1,
        tmp_path,
        chain.genesis_file,
        port_seed=default_port_seed() + 3,
        extra_args=["--rpcthreads", "1", "--rpcworkqueue", "0"],
    )
    n.start_and_wait()
    try:
        slow = threading.Thread(target=lambda: n.new_rpc().waitforblockheight(100, 1000), daemon=True)
        slow.start()

        def overloaded() -> bool:
            try:
                n.new_rpc().getblockcount()
            except JSONRPCError as e:
                assert e.http_status == 503 and e.code == errors.SERVER_OVERLOADED, e
                assert "rpcthreads=1" in e.message
                return True
            return False

        wait_until(overloaded, 10, what="an overload answer")
        slow.join(10)
        assert n.new_rpc().getblockcount() == 0
        n.stop()
    finally:
        n.cleanup()


def test_timecoin_cli(node):
    assert node.cli("getblockcount").stdout.strip() == "1"
    assert node.cli("getblockhash", "0").stdout.strip() == node.rpc.getblockhash(0)
    assert orjson.loads(node.cli("getblock", node.rpc.getblockhash(1), "2").stdout)["height"] == 1
    failed = node.cli("getblockhash", "-1", check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error code: -8\nerror message:\nBlock height out of range")
    assert "== Blockchain ==" in node.cli("help").stdout
    assert node.cli("--rpcuser", "alice", "--rpcpassword", "s3cret", "uptime").returncode == 0
    refused = node.cli("--rpcuser", "alice", "--rpcpassword", "nope", "uptime", check=False)
    assert refused.returncode == 1 and "refused the credentials" in refused.stderr
    _still_serving(node)
