"""The node's own code never imports the test harness (DESIGN §2: "Production code never imports
``timecoin.testing``"). The harness is for tests and for the tools that build throwaway networks
(``timecoin devnet`` and ``testnet`` genesis files, the load test, the e2e fault runner); the
crash points the node's code hits live in :mod:`timecoin.failpoints`."""

from __future__ import annotations

import ast
from pathlib import Path

import timecoin

PACKAGE = Path(timecoin.__file__).parent
TOOLS = ("testing", "cli", "e2e", "loadtest")
"""Subpackages that may import the harness: the harness itself and the tools above."""


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_node_code_never_imports_the_test_harness():
    node_code = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in TOOLS]
    assert len(node_code) > 50  # the walk found the package
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            n for n in _imports(p) if n.split(".")[:2] == ["timecoin", "testing"]
        )
        for p in node_code
    }
    assert {p: names for p, names in offenders.items() if names} == {}
