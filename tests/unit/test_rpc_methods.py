"""The RPC method table, parameter binding, the warm-up answer and the CLI's parameter
conversion, without a running node (the server's JSON-RPC processing is called directly)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from timecoin.cli.client import convert_params
from timecoin.config import load_config
from timecoin.node import Node
from timecoin.rpc import errors
from timecoin.rpc.errors import RPCError
from timecoin.rpc.methods import load_methods, parse_hash, parse_hex
from timecoin.rpc.server import RPCServer

EXPECTED = {
    "getblockchaininfo",
    "getblockcount",
    "getbestblockhash",
    "getblockhash",
    "getblock",
    "getblockheader",
    "getrawtransaction",
    "decoderawtransaction",
    "sendrawtransaction",
    "sendrawtransactions",
    "gettxout",
    "gettxoutsetinfo",
    "getmempoolinfo",
    "getrawmempool",
    "getpeerinfo",
    "getnetworkinfo",
    "getconnectioncount",
    "validateaddress",
    "getbalance",
    "listunspent",
    "stop",
    "help",
    "getconsensusinfo",
    "gettransactionfinality",
    "getfinalityfeed",
    "waittransactionfinality",
    "uptime",
    "getruntimeinfo",
    "submitblock",
    "waitfornewblock",
    "waitforblockheight",
    "masternodelist",
    "masternodestatus",
}


def test_every_method_is_registered_and_documented():
    methods = load_methods()
    assert set(methods) == EXPECTED
    for method in methods.values():
        assert method.summary, method.name
        assert all(p.help for p in method.params), method.name
        required = [p.required for p in method.params]
        assert required == sorted(required, reverse=True), f"{method.name}: optional before required"


def test_bind():
    getblock = load_methods()["getblock"]
    assert getblock.bind(["ab"]) == ["ab", 1]
    assert getblock.bind({"blockhash": "ab", "verbosity": 2}) == ["ab", 2]
    assert getblock.bind(["ab", None]) == ["ab", 1]
    assert getblock.bind(["ab", True]) == ["ab", True]
    for params, fragment in [
        ([], "missing parameter blockhash"),
        (None, "missing parameter blockhash"),
        (["ab", 1, 2], "at most 2"),
        ([1], "must be a hex string, got number"),
        (["ab", "1"], "must be an integer or a boolean, got string"),
        ({"hash": "ab"}, "unknown parameter 'hash'"),
    ]:
        with pytest.raises(RPCError) as info:
            getblock.bind(params)
        assert info.value.code == errors.INVALID_PARAMS and fragment in info.value.message
    with pytest.raises(RPCError) as info:
        load_methods()["getblockhash"].bind([True])
    assert info.value.code == errors.INVALID_PARAMS and "got boolean" in info.value.message


def test_bind_variadic():
    getbalance = load_methods()["getbalance"]
    assert getbalance.usage() == "getbalance address [address...]"
    assert getbalance.bind(["a"]) == [["a"]]
    assert getbalance.bind(["a", "b", "c"]) == [["a", "b", "c"]]
    assert getbalance.bind({"address": "a"}) == [["a"]]
    assert getbalance.bind({"address": ["a", "b"]}) == [["a", "b"]]
    for params, fragment in [
        ([], "missing parameter address"),
        ({"address": []}, "missing parameter address"),
        (["a", 5], "must be a string, got number"),
    ]:
        with pytest.raises(RPCError) as info:
            getbalance.bind(params)
        assert info.value.code == errors.INVALID_PARAMS and fragment in info.value.message


def test_parse_hash():
    assert parse_hash("txid", "ab" * 32) == b"\xab" * 32
    for bad, fragment in [("ab", "of length 64"), ("zz" * 32, "hexadecimal")]:
        with pytest.raises(RPCError) as info:
            parse_hash("txid", bad)
        assert info.value.code == errors.INVALID_PARAMETER and fragment in info.value.message


def test_hex_with_whitespace_is_refused():
    # Found by tests/fuzz/fuzz_rpc_params.py: bytes.fromhex skips whitespace, so 64 characters
    # made a 31-byte "hash" and gettxout failed with INTERNAL_ERROR building its outpoint.
    for bad in ["00" * 31 + "  ", "00 " * 16 + "00" * 8, "ab\ncd" + "00" * 29 + " "]:
        assert len(bad) == 64
        with pytest.raises(RPCError) as info:
            parse_hash("txid", bad)
        assert info.value.code == errors.INVALID_PARAMETER and "hexadecimal" in info.value.message
    for bad in ["ab cd", " abcd", "abcd\t"]:
        with pytest.raises(RPCError) as info:
            parse_hex("hexstring", bad)
        assert info.value.code == errors.INVALID_PARAMETER
    assert parse_hex("hexstring", "ABcd") == b"\xab\xcd"


def test_a_warming_node_answers_minus_28_but_helps(tmp_path):
    node = Node(load_config({"network": "devnet", "datadir": str(tmp_path)}, env={}, home=tmp_path))
    assert node.warmup is not None

    async def scenario() -> tuple[dict, dict]:
        server = RPCServer.from_config(node, node.config)
        count = await server.process(b'{"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}')
        helped = await server.process(
            b'{"jsonrpc": "2.0", "id": 2, "method": "help", "params": ["getblock"]}'
        )
        return orjson.loads(count), orjson.loads(helped)

    count, helped = asyncio.run(scenario())
    assert count["error"]["code"] == errors.IN_WARMUP and "warming up: starting" in count["error"]["message"]
    assert helped["result"].startswith("getblock blockhash ( verbosity )")


def test_cli_converts_by_declared_kind():
    assert convert_params("getblockhash", ("0",)) == [0]
    assert convert_params("getblock", ("1234", "2")) == ["1234", 2]  # a hash of digits stays a string
    assert convert_params("getblock", ("ab", "true")) == ["ab", True]
    assert convert_params("sendrawtransactions", ('["00", "01"]',)) == [["00", "01"]]
    assert convert_params("validateaddress", ("123",)) == ["123"]
    assert convert_params("futuremethod", ("5", "text", '{"a": 1}')) == [5, "text", {"a": 1}]
    with pytest.raises(Exception, match="must be JSON"):
        convert_params("getblockhash", ("zero",))


def test_operator_guide_lists_every_method():
    guide = (Path(__file__).parents[2] / "docs" / "operator.md").read_text()
    for name in load_methods():
        assert f"`{name}`" in guide or f"`{name} " in guide, name
