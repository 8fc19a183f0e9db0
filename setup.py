"""Cythonizes the hot pure-Python modules listed below (DESIGN §2); everything else is in
pyproject.toml.

The listed modules are Cython "pure Python mode": they stay valid Python, so the ``.py`` source is
always the reference and tests can load it directly. A module is listed only when a benchmark in
``benches/`` shows the compiled build faster on the message path, or (``txstate``) for what
compiling gives its classes: ``cython.no_gc``, untracked by the cyclic collector, measured in
docs/benchmarks.md ("less for the collector to scan"). ``TIMECOIN_PURE_PYTHON=1`` builds none
of them.
"""

import os

from setuptools import setup

HOT_MODULES: list[str] = [
    "timecoin/p2p/framing.py",
    "timecoin/p2p/items.py",
    "timecoin/p2p/seen.py",
    "timecoin/consensus/settle.py",
    "timecoin/consensus/tally.py",
    "timecoin/consensus/txstate.py",
]


def extensions() -> list:
    if os.environ.get("TIMECOIN_PURE_PYTHON") == "1" or not HOT_MODULES:
        return []
    from Cython.Build import cythonize

    # annotation_typing off: a hot module's annotations are Python types (for mypy); its C types
    # come from the .pxd beside it and its cython.declare constants.
    return cythonize(
        HOT_MODULES,
        language_level=3,
        compiler_directives={"binding": True, "annotation_typing": False},
    )


setup(ext_modules=extensions())
