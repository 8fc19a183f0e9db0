"""``timecoin-cli``'s command line as ``bitcoin-cli``'s (issue 16, "CLI"), without a node:
Bitcoin-style ``-key=value`` options, flags, ``-named``, ``-version``/``-help``, unknown options
as errors (never the method), the data directory's ``timecoin.conf`` choosing network and port,
the client's parameter table against the method declarations, the compact ``masternodelist``
rows, ``rpcauth`` entries, and a start-up that imports no aiohttp and no node code (checked in a
fresh interpreter).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys

import orjson
import pytest

from timecoin.cli import client as cli
from timecoin.config import ConfigError, load_config
from timecoin.masternode.weights import WEIGHT_UNIT
from timecoin.params import DEVNET, MAINNET
from timecoin.rpc.clientparams import PARAMS, VARIADIC, table_from_methods
from timecoin.rpc.cookie import RPCAuth, rpcauth_line


def run_cli(*argv: str, cwd=None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd) if cwd else "/nonexistent"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-m", "timecoin.cli.client", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def test_bitcoin_style_options_parse():
    args = cli.parse_args(
        [
            "-datadir=/srv/node",
            "-rpcport=1234",
            "-rpcconnect=10.0.0.1",
            "-rpcuser=alice",
            "-rpcpassword=pw=with=equals",
            "-rpccookiefile=other.cookie",
            "-conf=/etc/t.conf",
            "-rpcwait",
            "-rpcwaittimeout=5",
            "-rpcclienttimeout=7",
            "getblockhash",
            "-1",
        ]
    )
    assert (args.datadir, args.rpcport, args.rpcconnect, args.rpcuser) == (
        "/srv/node",
        "1234",
        "10.0.0.1",
        "alice",
    )
    assert args.rpcpassword == "pw=with=equals" and args.rpccookiefile == "other.cookie"
    assert args.conf == "/etc/t.conf" and args.rpcwait and args.rpcwaittimeout == 5 and args.timeout == 7
    # The first word without a dash is the method; everything after it is a parameter.
    assert args.method == "getblockhash" and args.params == ["-1"]


def test_double_dash_and_separate_values_still_work():
    args = cli.parse_args(["--network", "devnet", "--datadir", "/d", "--format", "json", "-named", "help"])
    assert (args.network, args.datadir, args.fmt, args.named, args.method) == (
        "devnet",
        "/d",
        "json",
        True,
        "help",
    )
    assert cli.parse_args(["--rpcport=9", "uptime"]).rpcport == "9"


def test_network_flags_and_negated_flags():
    assert cli.parse_args(["-testnet", "x"]).network == "testnet"
    assert cli.parse_args(["-devnet", "x"]).network == "devnet"
    assert cli.parse_args(["-chain=devnet", "x"]).network == "devnet"
    assert cli.parse_args(["-testnet=1", "x"]).network == "testnet"
    assert cli.parse_args(["-testnet=0", "x"]).network is None
    assert cli.parse_args(["-rpcwait", "-norpcwait", "x"]).rpcwait is False
    assert cli.parse_args(["-rpcwait=0", "x"]).rpcwait is False
    assert cli.parse_args(["-rpcwait=1", "x"]).rpcwait is True
    assert cli.parse_args(["-json", "x"]).fmt == "json"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["-datadri=/x", "getblockcount"], "unknown option -datadri"),
        (["--bogus", "getblockcount"], "unknown option --bogus"),
        (["-", "getblockcount"], "unknown option -"),
        (["-rpcwait=maybe", "x"], "is a flag"),
        (["-testnet=maybe", "x"], "is a flag"),
        (["-rpcport"], "needs a value"),
        (["-rpcclienttimeout=0", "x"], "positive"),
        (["-rpcwaittimeout=-1", "x"], "non-negative"),
        (["-format=xml", "x"], "one of"),
        (["-nodatadir", "x"], "unknown option"),
    ],
)
def test_bad_options_are_errors(argv, fragment):
    with pytest.raises(cli.UsageError, match=fragment):
        cli.parse_args(argv)


def test_unknown_option_exits_nonzero_and_is_never_the_method(tmp_path):
    result = run_cli("-datadri=/x", "getblockcount", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown option -datadri") and result.stdout == ""


def test_version_and_help_are_answered_locally(tmp_path):
    version = run_cli("-version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("TIME Coin RPC client version ")
    for flag in ("-h", "-help", "--help", "-?"):
        helped = run_cli(flag, cwd=tmp_path)
        assert helped.returncode == 0, flag
        assert "-named" in helped.stdout and "-getinfo" in helped.stdout and "-datadir=<dir>" in helped.stdout
    nothing = run_cli(cwd=tmp_path)
    assert nothing.returncode == 1 and "too few parameters" in nothing.stderr


def test_getinfo_takes_no_command(tmp_path):
    result = run_cli("-getinfo", "getblockcount", cwd=tmp_path)
    assert result.returncode == 1 and "-getinfo takes no command" in result.stderr


def test_datadir_conf_sets_network_and_port(tmp_path):
    (tmp_path / "timecoin.conf").write_text('network = "devnet"\n[devnet]\nrpcport = 31999\n')
    config = cli._load_config(None, None, str(tmp_path), None, None, None)
    assert config.network == DEVNET.name and config.rpcport == 31999
    assert cli._endpoint(None, config, False) == ("127.0.0.1", 31999)
    # Without a conf the network's default port; -rpcconnect may carry a port, -rpcport wins.
    bare = load_config({"datadir": str(tmp_path / "none")}, env={})
    assert bare.rpcport == MAINNET.rpc_port
    assert cli._endpoint("10.1.2.3:4444", config, False) == ("10.1.2.3", 4444)
    assert cli._endpoint("10.1.2.3:4444", config, True) == ("10.1.2.3", 31999)
    assert cli._endpoint("[::1]:5", config, False) == ("::1", 5)
    assert cli._endpoint("[::1]", config, False) == ("::1", 31999)
    with pytest.raises(cli.UsageError, match="rpcconnect"):
        cli._endpoint("host:notaport", config, False)


def test_target_uses_the_cookie_of_the_datadir(tmp_path):
    (tmp_path / "timecoin.conf").write_text('network = "devnet"\n')
    target = cli._target(cli.parse_args([f"-datadir={tmp_path}", "getblockcount"]))
    assert target.port == DEVNET.rpc_port and target.cookie == tmp_path / ".cookie"
    custom = cli._target(cli.parse_args([f"-datadir={tmp_path}", "-rpccookiefile=c/k", "x"]))
    assert custom.cookie == tmp_path / "c" / "k"
    with pytest.raises(cli.UsageError, match="together"):
        cli._target(cli.parse_args([f"-datadir={tmp_path}", "-rpcuser=alice", "x"]))


def test_cli_connection_error_names_the_port_from_the_conf(tmp_path):
    (tmp_path / "timecoin.conf").write_text('network = "devnet"\n[devnet]\nrpcport = 1\n')
    (tmp_path / ".cookie").write_text("__cookie__:" + "ab" * 32)
    result = run_cli(f"-datadir={tmp_path}", "getblockcount", cwd=tmp_path)
    assert result.returncode == 1 and "127.0.0.1:1 " in result.stderr


def test_named_parameters_convert_by_kind():
    assert cli.convert_named("getblock", ["blockhash=1234", "verbosity=2"]) == {
        "blockhash": "1234",
        "verbosity": 2,
    }
    assert cli.convert_named("waittransactionfinality", ["txid=ab", "timeout_ms=5"]) == {
        "txid": "ab",
        "timeout_ms": 5,
    }
    assert cli.convert_named("newmethod", ["a=5", "b=text"]) == {"a": 5, "b": "text"}
    with pytest.raises(cli.UsageError, match="NAME=VALUE"):
        cli.convert_named("getblock", ["1234"])
    with pytest.raises(cli.UsageError, match="twice"):
        cli.convert_named("getblock", ["verbosity=1", "verbosity=2"])
    with pytest.raises(cli.UsageError, match="must be JSON"):
        cli.convert_named("getblockhash", ["height=zero"])


def test_positional_parameters_convert_by_kind():
    assert cli.convert_params("getblockhash", ["0"]) == [0]
    assert cli.convert_params("getblock", ["1234", "2"]) == ["1234", 2]
    assert cli.convert_params("getbalance", ["123", "456"]) == ["123", "456"]  # variadic strings
    assert cli.convert_params("futuremethod", ["5", "text"]) == [5, "text"]


def test_client_table_matches_the_method_declarations():
    params, variadic = table_from_methods()
    assert PARAMS == params, "regenerate timecoin/rpc/clientparams.py: python -m timecoin.rpc.clientparams"
    assert VARIADIC == variadic


def test_cli_start_imports_no_server_code():
    code = (
        "import sys, timecoin.cli.client; "
        "bad = sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('aiohttp', 'rich', 'click', 'timecoin_native')"
        " or m.startswith(('timecoin.node', 'timecoin.p2p', 'timecoin.consensus', 'timecoin.rpc.server'))); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_compact_masternode_rows():
    now = 1_800_000_100.0
    rows = cli.masternode_rows(
        [
            {
                "public_key": "ab" * 32,
                "tier": "gold",
                "weight": 8 * WEIGHT_UNIT,
                "last_seen": 1_800_000_090,
                "online": True,
                "eligible": True,
            },
            {
                "public_key": "cd" * 32,
                "tier": "free",
                "weight": 1,
                "last_seen": None,
                "online": False,
                "eligible": False,
            },
        ],
        now,
    )
    assert rows == [
        ("ab" * 8, "gold", "online", "8.00", "10 s ago"),
        ("cd" * 8, "free", "ineligible", "0.00", "-"),
    ]


def test_rpcauth_entries_are_cores_format():
    line, password = rpcauth_line("alice")
    user, _, rest = line.partition(":")
    salt, _, digest = rest.partition("$")
    assert user == "alice" and len(salt) == 32 and len(password) >= 32
    assert digest == hmac.new(salt.encode(), password.encode(), hashlib.sha256).hexdigest()
    entry = RPCAuth.parse(line)
    assert entry.matches("alice", password) and not entry.matches("alice", password + "x")
    assert not entry.matches("bob", password) and str(entry) == line
    for bad in ("alice", "alice:salt", "alice:salt$abcd", "alice:salt$" + "zz" * 32, ":s$" + "00" * 32):
        with pytest.raises(ValueError):
            RPCAuth.parse(bad)
    with pytest.raises(ValueError):
        rpcauth_line("a:b")


def test_getinfo_text_for_a_terminal():
    info = {
        "version": "0.1.0",
        "chain": "devnet",
        "blocks": 5,
        "headers": 5,
        "bestblockhash": "ab" * 32,
        "verificationprogress": 1.0,
        "connections": {"in": 1, "out": 2, "total": 3},
        "mempool": {"size": 4, "bytes": 900},
        "masternode": True,
        "production_gate": {"open": False, "online": 1, "required": 2, "reason": "1 masternode online"},
        "warnings": "",
    }
    text = cli.getinfo_text(info)
    for line in (
        "Chain: devnet",
        "Blocks: 5",
        "Verification progress: 100.0000%",
        "Network: in 1, out 2, total 3",
        "Production gate: closed: 1 masternode online",
        "Mempool: 4 transactions, 900 bytes",
        "Warnings: (none)",
    ):
        assert line in text.splitlines(), line


def test_timecoin_rpcauth_command_prints_a_usable_entry():
    from click.testing import CliRunner

    from timecoin.cli.main import main

    result = CliRunner().invoke(main, ["rpcauth", "alice", "s3cret", "--json"])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.output)
    assert doc["username"] == "alice" and doc["password"] == "s3cret"
    assert RPCAuth.parse(doc["rpcauth"]).matches("alice", "s3cret")
    text = CliRunner().invoke(main, ["rpcauth", "bob"])
    assert text.exit_code == 0 and 'rpcauth = ["bob:' in text.output and "Your password:" in text.output
    assert CliRunner().invoke(main, ["rpcauth", "a:b"]).exit_code != 0


def test_rpcauth_and_rpcallowip_settings_refuse_bad_values():
    line, _ = rpcauth_line("alice")
    config = load_config({"rpcauth": (line,), "rpcallowip": ("10.0.0.0/8", "192.168.1.7", "::1")}, env={})
    assert [str(e) for e in config.rpcauth] == [line]
    assert [str(n) for n in config.rpcallowip] == ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]
    assert dict((k, v) for k, v, _ in config.describe())["rpcauth"] == "****"
    with pytest.raises(ConfigError, match="rpcauth: must be USER:SALT"):
        load_config({"rpcauth": ("alice",)}, env={})
    with pytest.raises(ConfigError, match="rpcallowip: must be IP addresses"):
        load_config({"rpcallowip": ("10.0.0.300",)}, env={})
    env = {"TIMECOIN_RPCALLOWIP": "10.1.0.0/16,10.2.0.0/16"}
    assert len(load_config({}, env=env).rpcallowip) == 2


def test_a_devnet_load_fails_on_lost_transactions_or_disagreeing_nodes():
    """``timecoin devnet --load`` exits 1 for a network failure (lost transactions, nodes that do
    not agree), never for its speed or overload refusals (docs/devnet.md)."""
    from timecoin.cli.devnet import load_failure

    assert load_failure({"lost": 0, "nodes_agree": True, "overloaded": 900, "finalized_tps": 10.0}) is None
    assert load_failure({"lost": 3, "nodes_agree": True}) == "load test failed: 3 transactions lost"
    assert load_failure({"lost": 0, "nodes_agree": False}) == (
        "load test failed: the nodes do not agree on the chain"
    )
