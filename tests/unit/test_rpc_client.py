"""The blocking JSON-RPC client (timecoin/rpc/client.py) against a real HTTP server on loopback:
a call that times out must not leave its connection waiting for the late answer, or every later
call on the same client fails (``http.client.CannotSendRequest``)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from timecoin.rpc.client import RPCClient


class _SlowOnce(http.server.BaseHTTPRequestHandler):
    """Answers JSON-RPC with the request's method name; the first request only after 1 s."""

    protocol_version = "HTTP/1.1"
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        if type(self).calls == 1:
            time.sleep(1.0)
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": request["method"], "error": None})
        data = body.encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowOnce)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_a_timed_out_call_leaves_the_client_usable(server):
    client = RPCClient("127.0.0.1", server, "user", "pass", timeout=0.2)
    with pytest.raises((TimeoutError, socket.timeout)):
        client.call("slow")
    assert client.call("getblockcount") == "getblockcount"
    client.close()
