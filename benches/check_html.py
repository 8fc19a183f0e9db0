"""Checks that ``asv publish``'s HTML renders in headless Chromium with its history graphs
(``.ci/bench``; docs/benchmarks.md "History and the regression gate").

``python benches/check_html.py HTML_DIR [--screenshots DIR]``

The directory is served over HTTP on loopback (the pages load their data with XHR, which
Chromium refuses on ``file://``) and opened in Debian's Chromium through Playwright
(``executable_path``: Playwright's own browser download is not used). Checked:

* the summary page lists every benchmark of ``index.json``;
* for every benchmark with results, its page draws the graph: the flot canvas exists and has
  drawn pixels, and the graph's data (``graphs/.../NAME.json``) holds a value per commit run;
* no page logged a JavaScript error.

Screenshots of the summary and of each graph go to ``--screenshots`` (default
``HTML_DIR/../html-check``). Exits 1 naming what failed; 2 when Chromium or Playwright is missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHROMIUM_ENV = "TIMECOIN_CHROMIUM"
"""Path of the Chromium binary, if not ``chromium`` on the PATH."""
PAGE_TIMEOUT_MS = 30_000
MIN_DRAWN_PIXELS = 500
"""Non-transparent pixels a graph's canvas must have: axes, labels and the plotted line."""

_DRAWN_PIXELS = """
() => {
  let drawn = 0;
  for (const c of document.querySelectorAll('#main-graph canvas.flot-base')) {
    if (!c.width || !c.height) continue;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) drawn++;
  }
  return drawn;
}
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _graph_files(html: Path, name: str) -> list[Path]:
    return [p for p in (html / "graphs").rglob(f"{name}.json")]


def _values(path: Path) -> list[Any]:
    """The non-null values of one graph file (``[[revision, value], ...]``)."""
    return [v for _, v in json.loads(path.read_text()) if v is not None]


def check(html: Path, shots: Path) -> list[str]:
    """The failures (empty when every page renders with its graph)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("check_html: Playwright is not installed (pip install -e '.[dev]')", file=sys.stderr)
        sys.exit(2)
    chromium = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print(
            f"check_html: Chromium is not installed (apt-get install chromium, or set {CHROMIUM_ENV})",
            file=sys.stderr,
        )
        sys.exit(2)
    index = json.loads((html / "index.json").read_text())
    names = sorted(index["benchmarks"])
    with_results = [n for n in names if any(_values(p) for p in _graph_files(html, n))]
    failures: list[str] = []
    if not with_results:
        failures.append("no benchmark has results to draw")
    shots.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base, timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector(".benchmark-container, #summarygrid-display a", timeout=PAGE_TIMEOUT_MS)
            text = page.inner_text("body")
            page.screenshot(path=str(shots / "summary.png"), full_page=True)
            failures += [f"summary page does not list {n}" for n in names if n.split(".")[-1] not in text]
            for name in with_results:
                page.goto(f"{base}#{name}", timeout=PAGE_TIMEOUT_MS)
                try:
                    page.wait_for_function(
                        "n => (document.querySelector('#nav-li-graphdisplay') || {}).innerText === n",
                        arg=name,
                        timeout=PAGE_TIMEOUT_MS,
                    )
                    page.wait_for_selector("#main-graph canvas.flot-base", timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_timeout(500)  # flot draws after the data arrives
                except Exception as e:  # Playwright's TimeoutError
                    failures.append(f"{name}: no graph drawn ({type(e).__name__})")
                    continue
                drawn = page.evaluate(_DRAWN_PIXELS)
                page.screenshot(path=str(shots / f"{name}.png"))
                if drawn < MIN_DRAWN_PIXELS:
                    failures.append(f"{name}: the graph canvas is blank ({drawn} pixels drawn)")
                points = max(len(_values(p)) for p in _graph_files(html, name))
                print(f"check_html: {name}: graph drawn ({drawn} pixels), {points} commits with values")
            failures += [f"JavaScript error: {e}" for e in errors]
            browser.close()
    finally:
        server.shutdown()
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    shots = args.screenshots or args.html.resolve().parent / "html-check"
    failures = check(args.html, shots)
    for f in failures:
        print(f"check_html: FAILED: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"check_html: every page renders with its graph (screenshots in {shots})")


if __name__ == "__main__":
    main()
