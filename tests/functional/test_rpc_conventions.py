"""The RPC conventions an operator of Bitcoin Core expects, on a live ``timecoind`` (issue 16,
"RPC" and "CLI"; docs/operator.md):

* JSON-RPC 1.0 requests (``"jsonrpc": "1.0"``, or none, as Bitcoin-derived clients send) are
  answered in 1.0's shape (``result``, ``error``, ``id``), never refused;
* ``rpcauth`` users (the salted HMAC-SHA256 of ``timecoin rpcauth USER``) authenticate, with
  their password only; ``rpcallowip`` lets non-loopback clients in, others get HTTP 403;
* ``getmempoolinfo`` carries Core's fields that mean something here; ``masternodelist`` names
  its unit (``collateral_sat``) and the CLI draws it as a compact table unless ``-json``;
* ``timecoin-cli`` with Bitcoin-style options (``-rpcport=``, ``-datadir=``, ``-rpcconnect=``,
  ``-named``, ``-getinfo``, ``-stdinrpcpass``) against the node.

One node on loopback (the devnet genesis, one block), driven over raw HTTP, the RPC client and
the ``timecoin-cli`` process. The ``rpcallowip`` test needs a non-loopback address of this host
and is skipped without one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import secrets
import socket
import subprocess
import sys

import orjson
import pytest

from timecoin.rpc.client import RPCClient
from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, write_chain

SEED_OFFSET = 213
PASSWORD = secrets.token_urlsafe(32)
_SALT = secrets.token_hex(16)
RPCAUTH = f"carol:{_SALT}${hmac.new(_SALT.encode(), PASSWORD.encode(), hashlib.sha256).hexdigest()}"
"""An rpcauth entry made as Bitcoin Core's share/rpcauth/rpcauth.py makes one."""


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("rpc_conventions"), 1, 2)


@pytest.fixture(scope="module")
def node(chain):
    n = TestNode(
        0,
        chain.genesis_file.parent,
        chain.genesis_file,
        port_seed=default_port_seed() + SEED_OFFSET,
        extra_args=["--rpcbind", "0.0.0.0", "--rpcauth", RPCAUTH],
    )
    write_chain(n.datadir, chain, 1)
    n.start_and_wait()
    yield n
    if n.running:
        n.stop()
    n.cleanup()


def post(host: str, port: int, body: object, auth: str) -> tuple[int, bytes]:
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(auth.encode()).decode(),
    }
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", "/", body=orjson.dumps(body), headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def cookie(node: TestNode) -> str:
    return (node.datadir / ".cookie").read_text()


def cli(node: TestNode, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``timecoin-cli`` with Bitcoin-style options only."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "timecoin.cli.client",
            f"-datadir={node.datadir}",
            f"-rpcport={node.rpc_port}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        env=TestNode.environment(),
    )


def test_jsonrpc_1_0_requests_get_1_0_replies(node):
    for request in (
        {"jsonrpc": "1.0", "id": "curltest", "method": "getblockcount", "params": []},
        {"id": "curltest", "method": "getblockcount", "params": []},
        {"version": "1.1", "id": "curltest", "method": "getblockcount", "params": []},  # python-bitcoinrpc
    ):
        status, body = post("127.0.0.1", node.rpc_port, request, cookie(node))
        assert status == 200, request
        assert orjson.loads(body) == {"result": 1, "error": None, "id": "curltest"}, request
    status, body = post(
        "127.0.0.1",
        node.rpc_port,
        {"jsonrpc": "1.0", "id": 7, "method": "getblockhash", "params": [-1]},
        cookie(node),
    )
    reply = orjson.loads(body)
    assert status == 200 and reply["result"] is None and reply["id"] == 7 and reply["error"]["code"] == -8
    assert "jsonrpc" not in reply
    # 1.0 has no notifications: a request without id is answered (id null).
    status, body = post(
        "127.0.0.1", node.rpc_port, {"jsonrpc": "1.0", "method": "getblockcount"}, cookie(node)
    )
    assert status == 200 and orjson.loads(body) == {"result": 1, "error": None, "id": None}
    # 2.0 is unchanged.
    status, body = post(
        "127.0.0.1", node.rpc_port, {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}, cookie(node)
    )
    assert orjson.loads(body) == {"jsonrpc": "2.0", "result": 1, "id": 1}


def test_rpcauth_user_authenticates_with_its_password_only(node):
    assert RPCClient("127.0.0.1", node.rpc_port, "carol", PASSWORD).getblockcount() == 1
    salted_hash = RPCAUTH.partition("$")[2]
    for user, password in (("carol", PASSWORD + "x"), ("carol", salted_hash), ("dave", PASSWORD)):
        status, _ = post("127.0.0.1", node.rpc_port, {"method": "getblockcount"}, f"{user}:{password}")
        assert status == 401, (user, password)
    assert cli(node, "-rpcuser=carol", f"-rpcpassword={PASSWORD}", "getblockcount").stdout.strip() == "1"
    piped = cli(node, "-rpcuser=carol", "-stdinrpcpass", "getblockcount", stdin=PASSWORD + "\n")
    assert piped.returncode == 0 and piped.stdout.strip() == "1", piped.stderr
    refused = cli(node, "-rpcuser=carol", "-rpcpassword=wrong", "getblockcount")
    assert refused.returncode == 1 and "refused the credentials (HTTP 401)" in refused.stderr


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))  # no packet is sent: only picks the outgoing address
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_rpcallowip(node):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this host")
    request = {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}
    status, body = post(address, node.rpc_port, request, cookie(node))
    assert status == 403 and b"rpcallowip" in body
    refused = cli(node, f"-rpcconnect={address}", "getblockcount")
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    assert post("127.0.0.1", node.rpc_port, request, cookie(node))[0] == 200  # loopback always

    node.stop()
    node.start_and_wait(extra_args=["--rpcallowip", f"{address}/32"])
    status, body = post(address, node.rpc_port, request, cookie(node))
    assert status == 200 and orjson.loads(body)["result"] == 1
    node.stop()
    node.start_and_wait()
    assert post(address, node.rpc_port, request, cookie(node))[0] == 403


def test_getmempoolinfo_has_cores_fields(node):
    info = node.rpc.getmempoolinfo()
    for field in ("loaded", "size", "bytes", "total_fee", "total_fee_sat", "maxmempool"):
        assert field in info, field
    assert info["loaded"] is True and info["size"] == 0 and info["total_fee_sat"] == 0


def test_masternodelist_names_its_units_and_prints_compact(node):
    rows = node.rpc.masternodelist()
    assert rows and all("collateral_sat" in r and "collateral_amount" not in r for r in rows)
    assert all(r["last_seen"] is None or type(r["last_seen"]) is int for r in rows)
    table = cli(node, "-format=table", "masternodelist")
    assert table.returncode == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if "tier" in line)
    for column in ("id", "tier", "status", "weight", "last seen"):
        assert column in header, column
    assert "collateral" not in table.stdout and rows[0]["public_key"][:16] in table.stdout
    full = orjson.loads(cli(node, "-json", "masternodelist").stdout)
    assert full == rows


def test_cli_bitcoin_style_options(node):
    assert cli(node, "getblockcount").stdout.strip() == "1"
    assert cli(node, f"-rpcconnect=127.0.0.1:{node.rpc_port}", "getblockcount").stdout.strip() == "1"
    genesis = node.rpc.getblockhash(0)
    named = cli(node, "-named", "getblockhash", "height=0")
    assert named.returncode == 0 and named.stdout.strip() == genesis, named.stderr
    header = orjson.loads(
        cli(node, "-named", "getblockheader", f"blockhash={genesis}", "verbose=true").stdout
    )
    assert header["height"] == 0
    info = orjson.loads(cli(node, "-getinfo").stdout)
    assert (
        info["chain"] == "devnet"
        and info["blocks"] == 1
        and info["bestblockhash"] == node.rpc.getbestblockhash()
    )
    assert set(info["connections"]) == {"in", "out", "total"} and info["mempool"]["size"] == 0
    negative = cli(node, "getblockhash", "-1")
    assert negative.returncode == 1 and negative.stderr.startswith("error code: -8")
    unknown = cli(node, "-rpcprot=1", "getblockcount")
    assert unknown.returncode == 1 and "unknown option -rpcprot" in unknown.stderr
    stdin = cli(node, "-stdin", "getblockhash", stdin="0\n")
    assert stdin.stdout.strip() == genesis
