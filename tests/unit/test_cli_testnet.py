"""``timecoin testnet init`` (timecoin/cli/testnet.py) run through click: the files a network of
several machines starts from, and the refusals that keep a bad or half-written set from being
deployed. The four-host run of these files is tests/functional/test_feature_testnet_netns.py."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from timecoin import crypto
from timecoin.cli.main import main
from timecoin.cli.testnet import parse_hosts
from timecoin.config import load_config
from timecoin.ledger.genesis import GenesisConfig, build_genesis
from timecoin.node import read_secret_key
from timecoin.params import TESTNET

HOSTS = ["10.1.0.1", "10.1.0.2", "fd00::3"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["testnet", "init", *args])
    return result.exit_code, result.output


def test_init_writes_a_ready_directory_per_host(tmp_path: Path) -> None:
    out = tmp_path / "net"
    code, output = run(
        "--hosts", ",".join(HOSTS), "-o", str(out), "--accounts", "3", "--rpc-allow", "10.1.0.0/24"
    )
    assert code == 0, output
    manifest = orjson.loads((out / "testnet.json").read_bytes())
    genesis = GenesisConfig.from_json((out / "genesis.json").read_bytes())
    assert genesis.params is TESTNET and len(genesis.allocations) == 3 + 1  # + the faucet
    assert manifest["genesis_hash"] == build_genesis(genesis).hash.hex()
    assert len(orjson.loads((out / "keys" / "accounts.json").read_bytes())) == 3
    for key_file in (out / "keys" / "accounts.json", out / "keys" / "faucet.key"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    for index, host in enumerate(HOSTS):
        node = out / f"node{index}"
        entry = manifest["nodes"][index]
        assert entry["host"] == host and entry["directory"] == f"node{index}"
        assert stat.S_IMODE(node.stat().st_mode) == 0o700
        for name in ("nodekey", "masternode.key"):
            assert stat.S_IMODE((node / name).stat().st_mode) == 0o600
        mn_public = crypto.public_key(read_secret_key(node / "masternode.key", "masternode_key"))
        assert genesis.masternodes[index].public_key == mn_public
        assert entry["masternode_key"] == mn_public.hex()
        assert entry["node_key"] == crypto.public_key(read_secret_key(node / "nodekey", "nodekey")).hex()
        assert (node / "genesis.json").read_bytes() == (out / "genesis.json").read_bytes()

        # The node reads this directory as timecoind --datadir does (conf found in the datadir).
        config = load_config({"datadir": str(node)}, env={})
        v6 = ":" in host
        assert config.network == "testnet" and config.datadir == node
        assert config.masternode_key == node / "masternode.key"
        assert config.listen == ("::" if v6 else "0.0.0.0") and config.port == TESTNET.p2p_port
        others = [h for h in HOSTS if h != host]
        assert [h for h, _ in config.connect] == others
        assert {p for _, p in config.connect} == {TESTNET.p2p_port}
        assert config.seeds == ()
        assert config.rpcbind == ("::" if v6 else "0.0.0.0") and config.rpcport == TESTNET.rpc_port
        assert [str(n) for n in config.rpcallowip] == ["10.1.0.0/24"]
        assert config.metrics is True and config.metrics_bind == "127.0.0.1"
        readme = (node / "README.md").read_text()
        assert f"timecoind --datadir {node}" in readme and manifest["genesis_hash"] in readme
        assert ("-rpcconnect=[::1]" in readme) == v6
    assert "[fd00::3]:24200" in (out / "node0" / "timecoin.conf").read_text()


def test_without_rpc_allow_rpc_stays_on_loopback_and_datadir_is_the_hosts(tmp_path: Path) -> None:
    out = tmp_path / "net"
    code, output = run(
        "--hosts",
        "10.1.0.1,10.1.0.2",
        "-o",
        str(out),
        "--network",
        "devnet",
        "--datadir",
        "/var/lib/timecoind",
    )
    assert code == 0, output
    config = load_config({"conf": str(out / "node1" / "timecoin.conf")}, env={})
    assert config.network == "devnet" and config.rpcbind == "127.0.0.1" and config.rpcallowip == ()
    assert config.datadir == Path("/var/lib/timecoind")
    assert config.masternode_key == Path("/var/lib/timecoind/masternode.key")
    assert config.connect == (("10.1.0.1", 24300),)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hosts", "10.1.0.1,10.1.0.1"], "given twice"),
        (["--hosts", "node1.example"], "not an IP address"),
        (["--hosts", "10.1.0.1", "--rpc-port", "24200"], "must differ"),
        (["--hosts", "10.1.0.1", "--rpc-allow", "10.1.0.0/33"], "--rpc-allow"),
        (["--hosts", "10.1.0.1", "--metrics-bind", "localhost"], "--metrics-bind"),
        (["--hosts", "10.1.0.1", "--datadir", "relative/dir"], "absolute"),
        (["--hosts", "10.1.0.1", "--network", "mainnet"], "mainnet"),
    ],
)
def test_bad_options_are_refused_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = run(*args, "-o", str(tmp_path / "net"))
    assert code == 2 and message in output, output
    assert list(tmp_path.iterdir()) == []


def test_an_output_with_files_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "net"
    out.mkdir()
    (out / "masternode.key").write_text("old key\n")
    code, output = run("--hosts", "10.1.0.1", "-o", str(out))
    assert code == 2 and "not empty" in output
    assert [p.name for p in out.iterdir()] == ["masternode.key"]
    assert [p.name for p in tmp_path.iterdir()] == ["net"]  # no temporary sibling left


def test_same_seed_same_keys_random_otherwise(tmp_path: Path) -> None:
    keys = []
    for name, extra in (("a", ["--seed", "s"]), ("b", ["--seed", "s"]), ("c", [])):
        code, output = run("--hosts", "10.1.0.1", "-o", str(tmp_path / name), *extra)
        assert code == 0, output
        keys.append((tmp_path / name / "node0" / "masternode.key").read_text())
    assert keys[0] == keys[1] != keys[2]


def test_parse_hosts_normalises_and_bounds() -> None:
    assert parse_hosts(" 10.1.0.1 , [FD00::0003] ") == ["10.1.0.1", "fd00::3"]
    with pytest.raises(ValueError, match="at least one"):
        parse_hosts(" , ")
    with pytest.raises(ValueError, match="at most"):
        parse_hosts(",".join(f"10.2.{i // 256}.{i % 256}" for i in range(101)))
