"""The dashboard's pure parts (issue 16 item 7; docs/operator.md, "Dashboard"): which ``Host``
headers count as this machine (the DNS-rebinding rule), the ``dashboard`` setting (off unless
set, a bad value named), and the static files the node serves: every one is in the package, the
page loads nothing inline, and the vendored files are the ones their README records (sha256).
The node-facing behaviour runs on a real devnet in tests/functional/test_feature_dashboard.py.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest

from timecoin.config import ConfigError, load_config
from timecoin.dashboard.web import CSP, STATIC_FILES, loopback_host

STATIC = resources.files("timecoin.dashboard") / "static"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "localhost:24301",
        "127.0.0.1",
        "127.0.0.1:24301",
        "127.8.9.10:1",
        "[::1]",
        "[::1]:24301",
    ],
)
def test_loopback_hosts_are_served(host):
    assert loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "attacker.example",
        "attacker.example:24301",
        "localhost.attacker.example",
        "127.0.0.1.attacker.example",
        "10.0.0.1",
        "0.0.0.0:24301",
        "[::2]:24301",
        "[::1]x",
        "[::1]:port",
        "127.0.0.1:port",
        "[::1",
        "::1",
    ],
)
def test_other_hosts_are_refused(host):
    # "::1" without brackets reads as host ":" and port "1": not a loopback name.
    assert not loopback_host(host)


def test_dashboard_setting_is_off_unless_set(tmp_path):
    home = tmp_path / "home"
    assert load_config({}, env={}, home=home).dashboard is False
    assert load_config({"dashboard": "true"}, env={}, home=home).dashboard is True
    assert load_config({}, env={"TIMECOIN_DASHBOARD": "1"}, home=home).dashboard is True
    with pytest.raises(ConfigError, match=r"^dashboard: .*TIMECOIN_DASHBOARD"):
        load_config({}, env={"TIMECOIN_DASHBOARD": "maybe"}, home=home)


def test_static_files_are_packaged_and_load_nothing_inline():
    for path, (name, _) in STATIC_FILES.items():
        assert (STATIC / name).read_bytes(), path
    page = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all('src="/ui/' in s for s in scripts)
    assert "<style" not in page and " style=" not in page and "javascript:" not in page
    for href in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert href in STATIC_FILES, f"the page loads {href}, which the node does not serve"
    script = (STATIC / "dashboard.js").read_text()
    assert "innerHTML" not in script and "eval(" not in script
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP


def test_vendored_files_match_their_readme():
    readme = (STATIC / "vendor" / "README.md").read_text()
    for name in ("uPlot.iife.js", "uPlot.min.css"):
        digest = hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest()
        assert f"`{name}`" in readme and digest in readme, name
    assert "uPlot (v1.6.16)" in (STATIC / "vendor" / "uPlot.iife.js").read_text()[:400]
