"""``timecoin loadtest``'s inputs and verdicts, without a node (issue 15 items 1-3).

Targets: RPC URLs with credentials in the URL, a cookie file or a user and password; a node's
data directory or ``timecoin.conf`` (real files, parsed by the node's own config loader); bad
ones are refused with the reason. Funding: key files in both formats and a real encrypted wallet
keystore. Thresholds: each bound fails a report that misses it. Metadata: the fields a CI
compares. Progress: plain lines when the console is not a terminal. The Locust plan's coin
records round-trip and name no secret. And importing the command never imports Locust or gevent
(which monkey-patch the process): checked in a fresh interpreter.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pytest
from rich.console import Console

from timecoin import crypto
from timecoin.core.types import OutPoint
from timecoin.loadtest.generator import SpendableCoin
from timecoin.loadtest.metadata import run_metadata
from timecoin.loadtest.plan import (
    COIN_RECORD,
    MasterPlan,
    WorkerPlan,
    decode_coins,
    encode_coins,
    read_plan,
    write_plan,
)
from timecoin.loadtest.progress import LoadProgress
from timecoin.loadtest.submitter import Endpoint
from timecoin.loadtest.targets import (
    TargetError,
    endpoint_from_node,
    endpoint_from_url,
    read_key_file,
    wallet_keys,
)
from timecoin.loadtest.thresholds import Thresholds, check
from timecoin.params import DEVNET
from timecoin.wallet.keystore import INTERACTIVE, Keystore

SEEDS = [bytes(range(i * 40, i * 40 + 32)) for i in range(1, 4)]


def test_url_credentials_in_url_cookie_or_user(tmp_path):
    e = endpoint_from_url("http://alice:s%40cret@10.1.2.3:24301/")
    assert (e.host, e.port, e.user, e.password) == ("10.1.2.3", 24301, "alice", "s@cret")
    assert e.url == "http://10.1.2.3:24301"
    cookie = tmp_path / "node.cookie"
    cookie.write_text("__cookie__:abc123")
    e = endpoint_from_url("http://127.0.0.1:24301", cookie=cookie)
    assert (e.user, e.password, e.cookie_file) == ("__cookie__", "abc123", cookie)
    cookie.write_text("__cookie__:fresh")  # the node restarted and wrote a new cookie
    assert e.fresh_credentials() == ("__cookie__", "fresh")
    e = endpoint_from_url("http://[::1]:24301", user="u", password="p")
    assert (e.host, e.user, e.password, e.url) == ("::1", "u", "p", "http://[::1]:24301")
    assert e.fresh_credentials() is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://127.0.0.1:24301", "plain http"),
        ("http://127.0.0.1", "host and port"),
        ("http://127.0.0.1:24301/wallet", "served at /"),
        ("http://alice@127.0.0.1:24301", "without a password"),
        ("http://127.0.0.1:24301", "no credentials"),
        ("http://127.0.0.1:99999", "not an RPC URL"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url, message):
    with pytest.raises(TargetError, match=message):
        endpoint_from_url(url)


def test_unreadable_cookie_is_named(tmp_path):
    with pytest.raises(TargetError, match="cannot read the RPC cookie"):
        endpoint_from_url("http://127.0.0.1:24301", cookie=tmp_path / "missing")
    (tmp_path / "bad").write_text("no colon")
    with pytest.raises(TargetError, match="cannot read the RPC cookie"):
        endpoint_from_url("http://127.0.0.1:24301", cookie=tmp_path / "bad")


def test_node_conf_and_datadir(tmp_path):
    datadir = tmp_path / "node"
    datadir.mkdir()
    conf = datadir / "timecoin.conf"
    conf.write_text(
        f'network = "devnet"\ndatadir = "{datadir}"\n[devnet]\nrpcport = 31111\nrpcbind = "0.0.0.0"\n'
    )
    with pytest.raises(TargetError, match="no readable cookie"):
        endpoint_from_node(conf)
    (datadir / ".cookie").write_text("__cookie__:c00k1e")
    for given in (conf, datadir):
        e = endpoint_from_node(given)
        assert (e.host, e.port, e.user, e.password) == ("127.0.0.1", 31111, "__cookie__", "c00k1e")
        assert e.cookie_dir == datadir
    conf.write_text(
        f'network = "devnet"\ndatadir = "{datadir}"\n[devnet]\nrpcport = 31111\nrpcbind = "10.0.0.5"\n'
        'rpcuser = "ops"\nrpcpassword = "pw"\n'
    )
    e = endpoint_from_node(conf)
    assert (e.host, e.port, e.user, e.password) == ("10.0.0.5", 31111, "ops", "pw")
    conf.write_text("rpcport = 'not a port'\n")
    with pytest.raises(TargetError, match="rpcport"):
        endpoint_from_node(conf)
    with pytest.raises(TargetError, match="neither timecoin.conf nor .cookie"):
        endpoint_from_node(tmp_path)


def test_key_files_both_formats_and_errors(tmp_path):
    lines = tmp_path / "keys.txt"
    lines.write_text("# funding\n" + "\n".join(s.hex() for s in SEEDS[:2]) + "\n\n")
    assert read_key_file(lines) == SEEDS[:2]
    listed = tmp_path / "accounts.json"
    listed.write_text("[" + ",".join(f'"{s.hex()}"' for s in SEEDS) + "]")
    assert read_key_file(listed) == SEEDS
    for text, message in (
        ("", "no secret seed"),
        ("zz" * 32, "line 1: not hex"),
        ("ab" * 31, "32 bytes, got 31"),
        ('["00", 1]', "not a JSON list"),
        ("[1", "not a JSON list"),
    ):
        bad = tmp_path / "bad.key"
        bad.write_text(text)
        with pytest.raises(TargetError, match=message) as info:
            read_key_file(bad)
        assert "zz" * 32 not in str(info.value)  # never the content


def test_wallet_keys_unlock_a_real_keystore(tmp_path):
    store = Keystore.create(DEVNET, keys=3, limits=INTERACTIVE)
    path = tmp_path / "wallet.json"
    store.save(path, "correct horse")
    (tmp_path / "pass").write_text("correct horse\n")
    assert wallet_keys(path, tmp_path / "pass") == [k.secret for k in store.keys]
    (tmp_path / "wrong").write_text("battery staple\n")
    with pytest.raises(TargetError, match="wrong passphrase"):
        wallet_keys(path, tmp_path / "wrong")
    (tmp_path / "empty").write_text("")
    with pytest.raises(TargetError, match="empty"):
        wallet_keys(path, tmp_path / "empty")


GOOD = {"finalized_tps": 2000.0, "finality_ms": {"p99": 400.0}, "nodes_agree": True, "lost": 0}


def test_thresholds_each_bound_fails_a_run_that_misses_it():
    strict = Thresholds(min_tps=1000, max_p99_ms=500, require_agree=True, max_lost=0)
    rows = check(GOOD, strict)
    assert [r["name"] for r in rows] == ["min_tps", "max_p99_ms", "require_agree", "max_lost"]
    assert all(r["passed"] for r in rows)
    for change, name in (
        ({"finalized_tps": 999.9}, "min_tps"),
        ({"finality_ms": {"p99": 500.1}}, "max_p99_ms"),
        ({"finality_ms": {"p99": None}}, "max_p99_ms"),  # nothing finalized
        ({"nodes_agree": False}, "require_agree"),
        ({"lost": 1}, "max_lost"),
    ):
        failed = [r["name"] for r in check({**GOOD, **change}, strict) if not r["passed"]]
        assert failed == [name], change
    # The defaults: agreement and nothing lost, nothing else.
    assert [r["name"] for r in check(GOOD, Thresholds())] == ["require_agree", "max_lost"]
    assert all(r["passed"] for r in check({**GOOD, "lost": 3}, Thresholds(max_lost=3)))
    assert check({**GOOD, "nodes_agree": False}, Thresholds(require_agree=False, max_lost=None)) == []


def test_metadata_names_commit_versions_host_parameters_start():
    meta = run_metadata({"rate": 100.0})
    assert meta["parameters"] == {"rate": 100.0}
    assert meta["started_at"].endswith("+00:00")
    assert meta["versions"]["timecoin"] and meta["versions"]["python"] and meta["versions"]["timecoin-native"]
    assert meta["versions"]["native_build"] in ("release", "debug")
    host = meta["host"]
    assert host["cpu_count"] >= 1 and host["cpu_model"] and host["name"]
    git = meta["git"]
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))


def test_plain_progress_lines_off_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with LoadProgress(console, interval=0.01) as progress:
        progress.add("submitted", 10)
        progress.add("finalized", 10)
        for _ in range(3):
            time.sleep(0.02)
            progress.advance("submitted", 3)
            progress.advance("finalized", 2)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("loadtest:")]
    assert len(lines) >= 3, out.getvalue()
    assert lines[-1].endswith("submitted 9/10, finalized 6/10")


def test_plan_coins_round_trip_without_secrets(tmp_path):
    coins = [SpendableCoin(OutPoint(bytes([i]) * 32, i), 10_000 + i, SEEDS[i % 2]) for i in range(5)]
    data = encode_coins(coins)
    assert len(data) == 5 * COIN_RECORD.size
    assert all(seed not in data for seed in SEEDS)
    assert decode_coins(data, SEEDS[:2]) == coins
    with pytest.raises(ValueError, match="no funding key owns"):
        decode_coins(data, SEEDS[:1])
    with pytest.raises(ValueError, match="records of"):
        decode_coins(data[:-1], SEEDS)
    worker = WorkerPlan([Endpoint("127.0.0.1", 1, "u", "p", cookie_file=tmp_path / "c")], SEEDS)
    write_plan(tmp_path / "w.json", worker)
    assert (tmp_path / "w.json").stat().st_mode & 0o077 == 0  # credentials and seeds
    assert read_plan(tmp_path / "w.json") == worker
    master = MasterPlan(tmp_path / "coins", 10.0, 2.0, 5.0, "devnet", "ab" * 32, 64, tmp_path / "r.json", 2)
    write_plan(tmp_path / "m.json", master)
    assert read_plan(tmp_path / "m.json") == master
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a load-test plan"):
        read_plan(tmp_path / "bad.json")
    assert crypto.public_key(SEEDS[0])  # the seeds are real Ed25519 seeds


def test_the_command_never_imports_locust_or_gevent():
    code = (
        "import sys, timecoin.cli.main, timecoin.loadtest.distributed, timecoin.loadtest.cli;"
        "from timecoin.loadtest.distributed import locustfile_path; p = locustfile_path();"
        "assert p.name == 'locustfile.py' and p.exists(), p;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'));"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _worker_result(txids, start):
    return {
        "final": [[t, 0.05, start + 1.0] for t in txids],
        "submitted": len(txids) + 1,
        "accepted": len(txids),
        "reject_reasons": {"mempool-overloaded": 1},
        "overloaded": 1,
        "finality_rejected": 0,
        "first_send": start,
        "last_send": start + 2.0,
        "sent_per_second": {str(int(start)): len(txids) + 1},
        "errors": [],
        "feed_missed": 0,
        "feed_restarts": 0,
        "generator": {"transactions": len(txids), "seconds": 0.5},
        "presign_s": 0.6,
    }


def test_merged_worker_results_count_each_once_and_skip_malformed():
    from timecoin.loadtest.distributed import merge_results

    a, b = _worker_result(["aa", "bb"], 1000.0), _worker_result(["cc"], 1001.0)
    bad = {**_worker_result(["dd"], 1000.0), "submitted": "many"}
    merged = merge_results([a, None, b, bad, ["not", "a", "dict"]])
    assert merged["missing"] == 3
    assert sorted(merged["final"]) == ["aa", "bb", "cc"]
    assert (merged["submitted"], merged["accepted"], merged["overloaded"]) == (5, 3, 2)
    assert merged["reject_reasons"] == {"mempool-overloaded": 2}
    assert merged["sent_per_second"] == {1000: 3, 1001: 2}
    assert (merged["first_send"], merged["last_send"]) == (1000.0, 1003.0)
    assert merged["generator"] == {"transactions": 3, "seconds": 0.5}
