"""Makes ``asv publish``'s HTML work without the network (``.ci/bench``; docs/benchmarks.md).

asv's pages load jQuery, flot, stupidtable, blueimp-md5 and Bootstrap from public CDNs; on a
machine without Internet access (this one, CI) they show "Can not determine continental origin
of swallow" instead of the graphs. This copies Debian's packaged copies of those libraries
(:data:`LIBRARIES`; ``apt-get install`` :data:`DEBIAN_PACKAGES`) into ``HTML_DIR/vendor/`` and
points every page's ``<script>``/``<link>`` at them (the CDN's ``integrity`` attributes go: the
files are Debian's builds). flot is 0.8.3, the version asv asks for (Haskell's js-flot bundle);
jQuery 3.6 and Bootstrap 3.4 stand in for 3.3 and 3.1. ``flot-orderbars`` has no Debian package:
its tag is dropped (asv uses it only for the bar charts of parameterized benchmarks, which these
suites do not have).

``python benches/asv_offline.py HTML_DIR`` (``--packages``: print the Debian packages) exits 1
naming a library file that is missing or a CDN reference it does not know (a newer asv), so the
pages are never left half-rewritten.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

DEBIAN_PACKAGES = (
    "libjs-jquery",
    "libghc-js-flot-data",
    "libjs-jquery-stupidtable",
    "node-blueimp-md5",
    "libjs-bootstrap",
)
LIBRARIES: dict[str, Path | None] = {
    "jquery-3.3.1.min.js": Path("/usr/share/javascript/jquery/jquery.min.js"),
    "jquery.flot.min.js": Path("/usr/share/haskell-js-flot/jquery.flot.min.js"),
    "jquery.flot.time.min.js": Path("/usr/share/haskell-js-flot/jquery.flot.time.min.js"),
    "jquery.flot.selection.min.js": Path("/usr/share/haskell-js-flot/jquery.flot.selection.min.js"),
    "jquery.flot.categories.min.js": Path("/usr/share/haskell-js-flot/jquery.flot.categories.min.js"),
    "jquery.flot.orderBars.js": None,
    "stupidtable.min.js": Path("/usr/share/javascript/jquery-stupidtable/stupidtable.min.js"),
    "md5.min.js": Path("/usr/share/javascript/blueimp-md5/md5.min.js"),
    "bootstrap.min.js": Path("/usr/share/javascript/bootstrap/js/bootstrap.min.js"),
    "bootstrap.min.css": Path("/usr/share/javascript/bootstrap/css/bootstrap.min.css"),
}
"""The file name a CDN URL ends with → Debian's copy (None: dropped, see the module docstring)."""
VENDOR = "vendor"
_TAG = re.compile(r"<(script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"[^>]*>(?:\s*</script>)?")


def rewrite(page: str) -> str:
    """``page`` with every CDN ``<script>``/``<link>`` pointing at ``vendor/``; ``ValueError``
    for a CDN file not in :data:`LIBRARIES`."""

    def local(match: re.Match[str]) -> str:
        kind, url = match.group(1), match.group(2)
        name = url.rsplit("/", 1)[-1]
        if name not in LIBRARIES:
            raise ValueError(f"asv's page loads {url}, which has no local copy here (benches/asv_offline.py)")
        if LIBRARIES[name] is None:
            return ""
        if kind == "script":
            return f'<script src="{VENDOR}/{name}"></script>'
        return f'<link rel="stylesheet" href="{VENDOR}/{name}">'

    return _TAG.sub(local, page)


def main(html: Path) -> None:
    missing = [str(p) for p in LIBRARIES.values() if p is not None and not p.exists()]
    if missing:
        sys.exit(f"asv_offline: missing {missing}: apt-get install {' '.join(DEBIAN_PACKAGES)}")
    pages = {page: rewrite(page.read_text()) for page in html.glob("*.html")}
    (html / VENDOR).mkdir(exist_ok=True)
    for name, source in LIBRARIES.items():
        if source is not None:
            shutil.copyfile(source, html / VENDOR / name)
    for page, text in pages.items():
        page.write_text(text)
    print(f"asv_offline: {len(pages)} pages of {html} use {html / VENDOR}/")


if __name__ == "__main__":
    if sys.argv[1:] == ["--packages"]:  # for .ci/bench's apt-get line
        print(" ".join(DEBIAN_PACKAGES))
        sys.exit(0)
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        main(Path(sys.argv[1]))
    except ValueError as e:
        sys.exit(f"asv_offline: {e}")
