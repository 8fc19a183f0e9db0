"""Node configuration: precedence (defaults < file < file section < environment < flags), the
data directory and configuration file rules, and errors naming the key and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from timecoin.config import ConfigError, load_config, parse_host_port
from timecoin.params import DEVNET, MAINNET


def _conf(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "timecoin.conf"
    path.write_text(text)
    return path


def test_defaults_follow_the_network(tmp_path):
    config = load_config({}, env={}, home=tmp_path)
    assert config.network == "mainnet" and config.params is MAINNET
    assert config.datadir == tmp_path / ".timecoin" / "mainnet"
    assert (config.port, config.rpcport) == (MAINNET.p2p_port, MAINNET.rpc_port)
    assert config.rpcbind == "127.0.0.1" and config.rpcuser is None and config.conf is None
    assert config.genesis is None and config.connect == ()
    assert set(config.sources.values()) == {"default"}
    devnet = load_config({"network": "devnet"}, env={}, home=tmp_path)
    assert devnet.datadir == tmp_path / ".timecoin" / "devnet" and devnet.rpcport == DEVNET.rpc_port
    assert devnet.sources["network"] == "command line --network"


def test_precedence(tmp_path):
    conf = _conf(
        tmp_path,
        'network = "devnet"\nrpcport = 1000\nrpcthreads = 3\nlog_level = "warning"\n'
        "[devnet]\nrpcport = 2000\nrpcthreads = 5\n[mainnet]\nrpcport = 9\n",
    )
    config = load_config({"conf": str(conf)}, env={}, home=tmp_path)
    assert config.network == "devnet" and config.conf == conf
    assert config.rpcport == 2000 and config.sources["rpcport"] == f"{conf} [devnet]"
    assert config.rpcthreads == 5 and config.log_level == "warning"
    assert config.sources["log_level"] == str(conf)
    env = {"TIMECOIN_RPCPORT": "3000", "TIMECOIN_RPCTHREADS": "7"}
    config = load_config({"conf": str(conf)}, env=env, home=tmp_path)
    assert config.rpcport == 3000 and config.sources["rpcport"] == "environment TIMECOIN_RPCPORT"
    config = load_config({"conf": str(conf), "rpcport": "4000"}, env=env, home=tmp_path)
    assert config.rpcport == 4000 and config.sources["rpcport"] == "command line --rpcport"
    assert config.rpcthreads == 7
    # The network itself follows the same order, and picks the section.
    config = load_config({"conf": str(conf)}, env={"TIMECOIN_NETWORK": "mainnet"}, home=tmp_path)
    assert config.network == "mainnet" and config.rpcport == 9


def test_conf_file_location(tmp_path):
    base = tmp_path / ".timecoin"
    base.mkdir()
    (base / "timecoin.conf").write_text("rpcthreads = 2\n")
    assert load_config({}, env={}, home=tmp_path).rpcthreads == 2
    datadir = tmp_path / "node"
    datadir.mkdir()
    (datadir / "timecoin.conf").write_text("rpcthreads = 9\n")
    # A data directory given by flag or environment brings its own file.
    assert load_config({"datadir": str(datadir)}, env={}, home=tmp_path).rpcthreads == 9
    assert load_config({}, env={"TIMECOIN_DATADIR": str(datadir)}, home=tmp_path).rpcthreads == 9
    assert load_config({}, env={"TIMECOIN_CONF": str(base / "timecoin.conf")}, home=tmp_path).rpcthreads == 2
    # A datadir without a file: defaults, no error; an explicit missing file is an error.
    assert load_config({"datadir": str(tmp_path / "empty")}, env={}, home=tmp_path).conf is None
    with pytest.raises(ConfigError, match="conf: cannot read"):
        load_config({"conf": str(tmp_path / "missing.conf")}, env={}, home=tmp_path)


def test_lists_from_every_source(tmp_path):
    conf = _conf(tmp_path, 'connect = ["10.0.0.1:1", "[::1]:2"]\nseeds = ["seed.example:24100"]\n')
    config = load_config({"conf": str(conf)}, env={}, home=tmp_path)
    assert config.connect == (("10.0.0.1", 1), ("::1", 2)) and config.seeds == (("seed.example", 24100),)
    config = load_config({"conf": str(conf)}, env={"TIMECOIN_CONNECT": "a:1, b:2"}, home=tmp_path)
    assert config.connect == (("a", 1), ("b", 2))
    config = load_config({"conf": str(conf), "connect": ("c:3", "d:4")}, env={}, home=tmp_path)
    assert config.connect == (("c", 3), ("d", 4))
    assert parse_host_port("[2001:db8::1]:80") == ("2001:db8::1", 80)


@pytest.mark.parametrize(
    "flags,env,conf_text,fragments",
    [
        ({"rpcport": "0"}, {}, None, ["rpcport:", "1..65535", "command line --rpcport"]),
        ({}, {"TIMECOIN_RPCPORT": "http"}, None, ["rpcport:", "'http'", "environment TIMECOIN_RPCPORT"]),
        ({}, {"TIMECOIN_NETWORK": "moonnet"}, None, ["network:", "moonnet", "known: mainnet"]),
        ({}, {"TIMECOIN_LOG_JSON": "maybe"}, None, ["log_json:", "true or false"]),
        ({}, {}, "rpcthreads = true\n", ["rpcthreads:", "boolean", "timecoin.conf"]),
        ({}, {}, '[devnet]\nrpcport = "x"\n', ["rpcport:", "timecoin.conf [devnet]"]),
        ({}, {}, "rpcprot = 5\n", ["rpcprot: unknown key", "timecoin.conf"]),
        ({}, {}, '[devnet]\nnetwork = "mainnet"\n', ["network: may not be set inside the [devnet]"]),
        ({}, {}, "rpcport = \n", ["conf:", "not valid TOML"]),
        ({}, {}, 'connect = ["hostonly"]\n', ["connect:", "host:port"]),
        ({}, {}, 'log_level = "loud"\n', ["log_level:", "debug, info"]),
        (
            {"rpcuser": "alice"},
            {},
            None,
            ["rpcuser: set rpcuser and rpcpassword together", "command line --rpcuser"],
        ),
        ({"block_slot": "30"}, {}, None, ["block_slot: only a devnet's", "mainnet's", "command line"]),
        ({}, {}, "block_slot = 0\n", ["block_slot:", "1..86400"]),
    ],
)
def test_bad_values_name_the_key_and_source(tmp_path, flags, env, conf_text, fragments):
    if conf_text is not None:
        flags = {**flags, "conf": str(_conf(tmp_path, conf_text)), "network": "devnet"}
    with pytest.raises(ConfigError) as info:
        load_config(flags, env=env, home=tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_a_devnet_block_slot_changes_the_parameters(tmp_path):
    config = load_config({"network": "devnet", "block_slot": "45"}, env={}, home=tmp_path)
    assert config.params.block_slot == 45.0 and config.params.leader_timeout == DEVNET.leader_timeout
    assert load_config({"network": "devnet"}, env={}, home=tmp_path).params is DEVNET


def test_describe_masks_secrets(tmp_path):
    config = load_config({"rpcuser": "alice", "rpcpassword": "s3cret"}, env={}, home=tmp_path)
    rows = {key: (value, source) for key, value, source in config.describe()}
    assert rows["rpcpassword"] == ("****", "command line --rpcpassword")
    assert rows["rpcuser"] == ("alice", "command line --rpcuser")
    assert "s3cret" not in repr(config.describe())


def test_unrelated_environment_is_ignored(tmp_path):
    config = load_config({}, env={"TIMECOIN_FAILPOINT": "x:1", "TIMECOIN_PURE_PYTHON": "1"}, home=tmp_path)
    assert config.network == "mainnet"


def test_operator_guide_documents_every_key():
    guide = (Path(__file__).parents[2] / "docs" / "operator.md").read_text()
    from timecoin.config import SETTINGS

    for s in SETTINGS:
        assert f"`{s.key}`" in guide, s.key


def test_block_work_thread_is_on_unless_turned_off_and_the_devnet_turns_it_off_without_a_core_each(tmp_path):
    """``block_work_thread`` (docs/operator.md) defaults on and is turned off like any bool;
    ``timecoin devnet`` passes it off when its nodes outnumber the cores it may run on."""
    from timecoin.cli.devnet import Devnet, block_work_thread

    assert load_config({}, env={}, home=tmp_path).block_work_thread is True
    assert load_config({"block_work_thread": "false"}, env={}, home=tmp_path).block_work_thread is False
    assert load_config({}, env={"TIMECOIN_BLOCK_WORK_THREAD": "0"}, home=tmp_path).block_work_thread is False
    assert (block_work_thread(4, 2), block_work_thread(2, 2), block_work_thread(1, 8)) == (False, True, True)
    net = Devnet(tmp_path / "devnet", 4, 20000, 4, b"seed")
    args = net.args(net.nodes[0])
    flag = args[args.index("--block-work-thread") + 1]
    assert flag == ("true" if block_work_thread(4) else "false")
