"""systemd readiness (``sd_notify(3)``) and the unit file (contrib/systemd/timecoind.service).

:func:`timecoin.sdnotify.notify` is checked against real ``AF_UNIX`` datagram sockets bound by
the test, at a filesystem path and in the abstract namespace (``@name``), as systemd sets
``$NOTIFY_SOCKET``; without the variable nothing is sent. The unit file is verified with
``systemd-analyze verify`` (skipped where systemd is not installed), with ``ExecStart`` pointed
at this environment's ``timecoind``, and must declare ``Type=notify`` and the hardening of
Bitcoin Core's ``bitcoind.service``.
"""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from timecoin import sdnotify

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "timecoind.service"
BITCOIND_HARDENING = {
    "PrivateTmp": "true",
    "ProtectSystem": "full",
    "ProtectHome": "true",
    "NoNewPrivileges": "true",
    "PrivateDevices": "true",
    "MemoryDenyWriteExecute": "true",
    "SystemCallArchitectures": "native",
}
"""The hardening lines of Bitcoin Core's contrib/init/bitcoind.service."""


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_notify_sends_one_datagram_to_a_path_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    with _receiver(str(path)) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sdnotify.notify(READY=1, STATUS="height 7")
        assert sock.recv(4096) == b"READY=1\nSTATUS=height 7"


def test_notify_reaches_an_abstract_socket(monkeypatch):
    name = f"timecoin-test-{os.getpid()}"
    with _receiver(b"\0" + name.encode()) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify(STOPPING=1)
        assert sock.recv(4096) == b"STOPPING=1"


def test_no_socket_no_notification(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sdnotify.notify(READY=1)
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert not sdnotify.notify(READY=1)  # ignored, as sd_notify does
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not sdnotify.notify(READY=1)  # logged and dropped, never raised
    with pytest.raises(ValueError, match="newline"):
        sdnotify.notify(STATUS="two\nlines")


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_unit_is_type_notify_and_hardened():
    unit = _unit()
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].split()[0].endswith("/timecoind")
    assert service["User"] == "timecoin"
    for key, value in BITCOIND_HARDENING.items():
        assert service.get(key) == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    daemon = Path(sys.executable).parent / "timecoind"
    assert daemon.exists(), f"{daemon}: the editable install's console script"
    text = UNIT.read_text().replace("/opt/timecoin/bin/timecoind", str(daemon))
    unit = tmp_path / "timecoind.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # verify exits 0 on unknown keys and only warns: a warning about the unit is a failure too.
    problems = [line for line in done.stderr.splitlines() if "timecoind.service" in line]
    assert done.returncode == 0 and not problems, done.stderr
