"""The interpreted twin of a Cython-compiled hot module (setup.py ``HOT_MODULES``, DESIGN §2).

A hot module is written in Cython's pure Python mode, so its ``.py`` source is valid Python and
the reference the compiled build must match. :func:`load_pure` executes that source as a module
of its own, whatever the installed build is, for the equivalence tests and the benchmarks
(``benches/bench_cython.py``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PURE_SUFFIX = "__pure"
"""Appended to the module's name: the twin never replaces the installed module in
``sys.modules``."""


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from an extension (``.so``/``.pyd``), not from source."""
    origin = module.__file__ or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def source_path(module: ModuleType) -> Path:
    """The ``.py`` beside ``module``'s file (``FileNotFoundError`` if there is none)."""
    origin = Path(module.__file__ or "")
    path = origin.parent / (module.__name__.rpartition(".")[2] + ".py")
    if not path.is_file():
        raise FileNotFoundError(f"{module.__name__} has no source at {path}")
    return path


def load_pure(module: ModuleType) -> ModuleType:
    """``module`` executed from its ``.py`` source, as ``<name>__pure`` (cached in
    ``sys.modules`` under that name, so one twin per process)."""
    name = module.__name__ + PURE_SUFFIX
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, source_path(module))
    assert spec is not None and spec.loader is not None
    twin = importlib.util.module_from_spec(spec)
    sys.modules[name] = twin  # dataclasses and pickling look classes up by module name
    try:
        spec.loader.exec_module(twin)
    except BaseException:
        del sys.modules[name]
        raise
    return twin
