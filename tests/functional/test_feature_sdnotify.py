"""``timecoind`` under a ``Type=notify`` service manager (contrib/systemd/timecoind.service).

The test plays systemd: it binds a datagram socket, starts a real daemon on a small devnet chain
with ``$NOTIFY_SOCKET`` naming it, and reads what arrives. ``READY=1`` (with ``MAINPID`` the
daemon's pid and a ``STATUS`` naming the height) must come once, and by then the JSON-RPC server
must answer without ``-28`` warming up; SIGTERM then brings ``STOPPING=1``.
"""

from __future__ import annotations

import signal
import socket

import pytest

from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, write_chain
from timecoin.testing.util import scaled

SEED = default_port_seed() + 231
BLOCKS = 2


def _fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n"))


@pytest.fixture
def node(tmp_path):
    chain = build_devnet_chain(tmp_path / "chain", BLOCKS, 2)
    n = TestNode(0, tmp_path, chain.genesis_file, port_seed=SEED)
    write_chain(n.datadir, chain, BLOCKS)
    yield n
    n.cleanup()


def test_ready_when_rpc_answers_and_stopping_on_sigterm(node, tmp_path):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(scaled(60))
        node.start(env={"NOTIFY_SOCKET": str(path)})
        ready = _fields(sock.recv(4096))
        assert ready["READY"] == "1"
        assert node.process is not None and ready["MAINPID"] == str(node.process.pid)
        assert ready["STATUS"].startswith(f"height {BLOCKS},")
        # Ready means ready: the first call answers, no -28 warming up.
        assert node.new_rpc().getblockchaininfo()["blocks"] == BLOCKS
        assert node.signal(signal.SIGTERM, timeout=scaled(60)) == 0
        assert _fields(sock.recv(4096)) == {"STOPPING": "1"}
