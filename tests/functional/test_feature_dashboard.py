"""The web dashboard at ``/ui`` (issue 16 item 7; docs/operator.md, "Dashboard"), on a real devnet
in a real browser.

Two ``timecoind`` masternodes started by the devnet command's own code
(:class:`timecoin.cli.devnet.Devnet`: its genesis, keys, ports and flags, which turn the dashboard
on), except that node 1 runs without the ``--dashboard`` flag, to show the dashboard is off by
default. Over plain HTTP: node 0 serves the page, its static files and the event stream with the
strict Content-Security-Policy and no inline script or style; requests naming another host (DNS
rebinding), sent cross-site or cross-origin are refused with 403; at most ``MAX_STREAMS`` event
streams are open at once (503 beyond); node 1 answers 404 at ``/ui/``.

In Debian's Chromium driven by Playwright (executable_path: Playwright's own browser download is
never used): the page loads with no console error (a CSP violation would be one), both charts
draw on their canvases, and during a short load (signed transfers sent by RPC for a few seconds)
the page updates live: the tip height rises, the finalized tx/s and latency series get values,
the canvases change, and the finalized total the page shows reaches what the node's
``getconsensusinfo`` counts. Skipped, with the reason, only when Chromium or Playwright is
missing and ``CI`` is not set; under ``CI=true`` their absence fails the test.
"""

from __future__ import annotations

import http.client
import os
import shutil
import time
from typing import Any

import orjson
import pytest

from timecoin.cli.devnet import Devnet, DevnetNode
from timecoin.dashboard.web import CSP, MAX_STREAMS
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.testing.chaingen import Wallet
from timecoin.testing.node import default_port_seed, p2p_port, wait_until
from timecoin.testing.util import scaled

SEED_OFFSET = 241
ACCOUNTS = 400
"""Genesis accounts: each load transfer spends one, so none waits on an earlier one's output."""
LOAD_STEPS = 16
LOAD_BATCH = 20
LOAD_STEP_MS = 500
"""The load: LOAD_BATCH transfers every LOAD_STEP_MS ms, LOAD_STEPS times (40 tx/s for 8 s)."""
CHART_IDS = ("chart-tps", "chart-latency")
CHROMIUM_ENV = "CHROMIUM"
"""Path of the Chromium binary, if not ``chromium`` on the PATH."""


class DashboardDevnet(Devnet):
    """The devnet as ``timecoin devnet`` runs it, but node 1 without ``--dashboard``."""

    def args(self, node: DevnetNode) -> list[str]:
        args = super().args(node)
        if node.index == 1:
            at = args.index("--dashboard")
            assert args[at + 1] == "true"
            del args[at : at + 2]
        return args


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboard")
    devnet = DashboardDevnet(
        workdir, 2, p2p_port(0, default_port_seed() + SEED_OFFSET), accounts=ACCOUNTS, seed=b"timecoin-dev"
    )
    config = devnet.create()
    try:
        devnet.start()
        yield devnet, config
    finally:
        assert devnet.stop() == [0, 0]


def http_request(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(10))
    conn.request(method, path, headers=headers or {})
    return conn, conn.getresponse()


def fetch(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
    conn, response = http_request(port, path, headers, method)
    try:
        return response, response.read()
    finally:
        conn.close()


def first_event(response: http.client.HTTPResponse) -> tuple[str, Any]:
    """(event name, decoded data) of the next server-sent event."""
    name, data = "message", b""
    while True:
        line = response.readline()
        assert line, "the event stream ended"
        line = line.rstrip(b"\r\n")
        if not line:
            return name, orjson.loads(data)
        field, _, value = line.partition(b":")
        if field == b"event":
            name = value.strip().decode()
        elif field == b"data":
            data += value.strip()


def test_dashboard_http_rules(net):
    devnet, _ = net
    port = devnet.nodes[0].rpc_port

    response, body = fetch(port, "/ui/")
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/html")
    assert response.getheader("Content-Security-Policy") == CSP
    assert "'unsafe-inline'" not in CSP and "default-src 'self'" in CSP and "'unsafe-eval'" not in CSP
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    page = body.decode()
    # No inline script or style: every script is a file, no <style> element, no style attribute.
    assert page.count("<script") == page.count('<script src="/ui/') == 2
    assert "<style" not in page and "style=" not in page
    for path, kind in (
        ("/ui/dashboard.js", "text/javascript"),
        ("/ui/dashboard.css", "text/css"),
        ("/ui/vendor/uPlot.iife.js", "text/javascript"),
        ("/ui/vendor/uPlot.min.css", "text/css"),
    ):
        response, body = fetch(port, path)
        assert response.status == 200 and response.getheader("Content-Type").startswith(kind), path
        assert response.getheader("Content-Security-Policy") == CSP and body, path

    # The event stream: the history first, then snapshots of the node's state.
    asked = time.time()
    conn, response = http_request(port, "/ui/events")
    try:
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        name, history = first_event(response)
        assert name == "history" and isinstance(history, list)
        for _ in range(10):  # a snapshot a second; the first may predate the devnet's full mesh
            name, snapshot = first_event(response)
            assert name == "snapshot"
            if snapshot["warmup"] is None and snapshot["point"]["t"] >= asked:
                break
        assert snapshot["warmup"] is None and snapshot["network"] == "devnet"
        assert snapshot["masternodes"]["count"] == 2 and snapshot["peers"]["count"] == 1
        assert snapshot["blocks"][0]["height"] == snapshot["tip"]["height"]
    finally:
        conn.close()

    # Refused: another host name (DNS rebinding), a cross-site or cross-origin request.
    for headers in (
        {"Host": "attacker.example"},
        {"Host": f"attacker.example:{port}"},
        {"Host": f"127.0.0.1.attacker.example:{port}"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://attacker.example"},
    ):
        for path in ("/ui/", "/ui/events"):
            response, body = fetch(port, path, headers)
            assert response.status == 403, (path, headers, response.status)
            assert b"dashboard" in body and response.getheader("Content-Security-Policy") == CSP
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.2"):
        assert fetch(port, "/ui/", {"Host": host})[0].status == 200, host
    # Read-only: nothing but GET, and HEAD (which opens no stream).
    assert fetch(port, "/ui/events", method="POST")[0].status == 405
    response, body = fetch(port, "/ui/events", method="HEAD")
    assert response.status == 200 and body == b""
    assert response.getheader("Content-Type").startswith("text/event-stream")

    # At most MAX_STREAMS event streams at once.
    streams = []
    try:
        for _ in range(MAX_STREAMS):
            conn, response = http_request(port, "/ui/events")
            streams.append(conn)
            assert response.status == 200
        response, body = fetch(port, "/ui/events")
        assert response.status == 503 and response.getheader("Retry-After")
    finally:
        for conn in streams:
            conn.close()

    def stream_free() -> bool:
        conn, response = http_request(port, "/ui/events")
        conn.close()
        return response.status == 200

    wait_until(stream_free, 30, interval=0.5, what="the closed streams' slots to be free again")

    # Off by default: node 1 runs without --dashboard.
    response, _ = fetch(devnet.nodes[1].rpc_port, "/ui/")
    assert response.status == 404


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _browser() -> tuple[Any, str]:
    """(``sync_playwright``, the Chromium path), or the test skipped (failed under CI) saying
    what is missing."""
    chromium = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright, missing = None, "Playwright is not installed (pip install -e '.[dev]')"
    if chromium is None:
        missing = f"Chromium is not installed (apt-get install chromium, or set {CHROMIUM_ENV})"
    if missing is not None:
        if _ci():
            pytest.fail(f"{missing}: under CI the dashboard's browser test must run (.ci/run installs it)")
        pytest.skip(missing)
    return sync_playwright, chromium


CANVAS_INK = """(id) => {
    const canvas = document.querySelector('#' + id + ' canvas');
    if (!canvas) return null;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let ink = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) ink += 1;
    return {ink: ink, image: canvas.toDataURL()};
}"""


def load_transfers(devnet: Devnet, config: Any) -> list[str]:
    """Signed transfers of genesis coins, hex, one per genesis account."""
    keys = [bytes.fromhex(k) for k in orjson.loads((devnet.keys_dir / "accounts.json").read_bytes())]
    chain = ChainState.open(devnet.workdir / "wallet-chain", config.params, build_genesis(config))
    try:
        wallet = Wallet.from_genesis(chain, keys)
        return [tx.encode().hex() for tx in wallet.transfers(LOAD_STEPS * LOAD_BATCH, chain)]
    finally:
        chain.close()


def test_dashboard_in_browser_updates_under_load(request, tmp_path):
    sync_playwright, chromium = _browser()  # before the devnet starts: a skip costs nothing
    devnet, config = request.getfixturevalue("net")
    node = devnet.nodes[0]
    rpc = node.rpc()
    transfers = load_transfers(devnet, config)
    finalized_before = rpc.getconsensusinfo()["counters"].get("tx_finalized", 0)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            page.goto(f"http://127.0.0.1:{node.rpc_port}/ui/")
            page.wait_for_function(
                "() => Number(document.body.dataset.snapshots || 0) >= 2", timeout=scaled(30) * 1000
            )
            assert page.text_content("#network") == "devnet"
            # Both masternodes online once their heartbeats arrive; one peer each.
            page.wait_for_function(
                "() => document.getElementById('masternodes-online').textContent === '2 / 2'"
                " && document.getElementById('peer-count').textContent === '1'",
                timeout=scaled(60) * 1000,
            )
            before = {chart: page.evaluate(CANVAS_INK, chart) for chart in CHART_IDS}
            for chart, drawn in before.items():
                assert drawn is not None and drawn["ink"] > 0, f"{chart} draws nothing"
            height_before = int(page.text_content("#tip-height"))

            for step in range(LOAD_STEPS):
                batch = transfers[step * LOAD_BATCH : (step + 1) * LOAD_BATCH]
                results = rpc.sendrawtransactions(batch)
                assert all(r["accepted"] for r in results), results
                page.wait_for_timeout(LOAD_STEP_MS)

            expected = finalized_before + len(transfers)
            page.wait_for_function(
                "(n) => Number(document.getElementById('finality-total').textContent) >= n",
                arg=expected,
                timeout=scaled(60) * 1000,
            )
            page.wait_for_timeout(2 * 1000)  # two more snapshots after the last finality
            points = page.evaluate("() => window.timecoinDashboard.points")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            assert max(v for v in points["tps"] if v is not None) > 0
            p99 = [v for v in points["p99"] if v is not None]
            assert p99 and max(p99) > 0
            assert int(page.text_content("#tip-height")) > height_before
            for chart in CHART_IDS:
                after = page.evaluate(CANVAS_INK, chart)
                assert after["ink"] > 0, f"{chart} draws nothing"
                assert after["image"] != before[chart]["image"], f"{chart} did not change"
            counted = rpc.getconsensusinfo()["counters"]["tx_finalized"]
            assert int(page.text_content("#finality-total")) == counted == expected
            assert float(page.text_content("#finality-p99")) > 0
            blocks = page.locator("#blocks tbody tr")
            assert blocks.count() >= 1
            assert page.locator("#peers tbody tr").count() == 1
            assert page.locator("#masternodes tbody tr").count() == 2
            assert page.get_attribute("#status", "class") == "status live"
            assert errors == [], errors
        finally:
            browser.close()
