"""Cythonizes the hot pure-Python modules listed below (DESIGN §2); everything else is in
pyproject.toml.

The listed modules are Cython "pure Python mode": they stay valid Python, so the ``.py`` source is
always the reference and tests can load it directly. A module is listed only when a benchmark in
``benches/`` shows the compiled build faster on the message path. ``TIMECOIN_PURE_PYTHON=1``
builds none of them.
"""

import os

from setuptools import setup

HOT_MODULES: list[str] = [
    # None yet: the first candidates are the P2P frame dispatch, the vote tally and mempool
    # bookkeeping; each joins with the benchmark that justifies it.
]


def extensions() -> list:
    if os.environ.get("TIMECOIN_PURE_PYTHON") == "1" or not HOT_MODULES:
        return []
    from Cython.Build import cythonize

    return cythonize(HOT_MODULES, language_level=3, compiler_directives={"binding": True})


setup(ext_modules=extensions())
