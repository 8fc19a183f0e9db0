"""The parameters of every RPC method as ``timecoin-cli`` converts them: which command-line words
are passed as strings and which are parsed as JSON, and the names ``-named`` accepts.

Bitcoin Core keeps this table by hand beside its client (``vRPCConvertParams`` in
``src/rpc/client.cpp``) so that ``bitcoin-cli`` starts without the server's code; so does this
module, for the same reason (``timecoin-cli`` imports neither aiohttp nor the node). The method
declarations (:mod:`timecoin.rpc.methods`) stay the source: ``tests/unit/test_cli_args.py``
fails when this table differs from them, and ``python -m timecoin.rpc.clientparams`` prints the
table they imply, to paste here.

A method missing here (a newer node) still works: each word is JSON if it parses, else a string.
"""

from __future__ import annotations

PARAMS: dict[str, tuple[tuple[str, bool], ...]] = {
    "decoderawtransaction": (("hexstring", True),),
    "getbalance": (("address", True),),
    "getbestblockhash": (),
    "getblock": (("blockhash", True), ("verbosity", False)),
    "getblockchaininfo": (),
    "getblockcount": (),
    "getblockhash": (("height", False),),
    "getblockheader": (("blockhash", True), ("verbose", False)),
    "getconnectioncount": (),
    "getconsensusinfo": (),
    "getfinalityfeed": (("cursor", False), ("timeout_ms", False), ("max_count", False)),
    "getmempoolinfo": (),
    "getnetworkinfo": (),
    "getpeerinfo": (),
    "getrawmempool": (("verbose", False),),
    "getrawtransaction": (("txid", True), ("verbose", False), ("blockhash", True)),
    "getruntimeinfo": (("window", False),),
    "gettransactionfinality": (("txid", True),),
    "gettxout": (("txid", True), ("n", False), ("include_mempool", False)),
    "gettxoutsetinfo": (),
    "help": (("command", True),),
    "listunspent": (("minconf", False), ("addresses", False), ("include_locked", False)),
    "masternodelist": (),
    "masternodestatus": (("public_key", True),),
    "sendrawtransaction": (("hexstring", True),),
    "sendrawtransactions": (("hexstrings", False),),
    "stop": (),
    "submitblock": (("hexdata", True), ("certificate", True)),
    "uptime": (),
    "validateaddress": (("address", True),),
    "waitforblockheight": (("height", False), ("timeout", False)),
    "waitfornewblock": (("timeout", False),),
    "waittransactionfinality": (("txid", True), ("timeout_ms", False)),
}
"""method → its parameters in order: (name, passed as a string). A parameter not passed as a
string is parsed as JSON."""
VARIADIC: frozenset[str] = frozenset({"getbalance"})
"""Methods whose last parameter takes every remaining word (``getbalance address [address...]``)."""


def table_from_methods() -> tuple[dict[str, tuple[tuple[str, bool], ...]], frozenset[str]]:
    """(:data:`PARAMS`, :data:`VARIADIC`) as the method declarations imply them (imports the
    server's method table)."""
    from timecoin.rpc.methods import STRING_KINDS, load_methods

    methods = load_methods()
    params = {
        name: tuple((p.name, p.kind in STRING_KINDS) for p in m.params) for name, m in sorted(methods.items())
    }
    variadic = frozenset(n for n, m in methods.items() if m.params and m.params[-1].variadic)
    return params, variadic


if __name__ == "__main__":
    table, variadic = table_from_methods()
    print("PARAMS = {")
    for name, items in table.items():
        print(f"    {name!r}: {items!r},".replace("'", '"'))
    print("}")
    print(f"VARIADIC = frozenset({sorted(variadic)!r})".replace("'", '"'))
