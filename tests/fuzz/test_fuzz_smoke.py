"""The fuzz targets stay runnable and their corpora stay clean (docs/fuzzing.md).

* Every input of every atheris harness's corpus (tests/fuzz/corpus/<harness>/: the seeds and
  the ``regression-*`` inputs of fixed crashes) goes through the harness's ``check_input`` in
  this process: the decoders' contract holds on each (no atheris needed).
* Each atheris harness then fuzzes for a bounded number of runs as a subprocess, starting from
  its corpus; it must exit 0 (libFuzzer exits non-zero on a crash and writes the input to the
  test's temporary directory).
* Each cargo-fuzz target (native/fuzz/) fuzzes for a bounded time the same way, from
  native/fuzz/corpus/<target>/. It needs ``cargo fuzz`` (installed by .ci/run); without it the
  test is skipped, unless ``TIMECOIN_FUZZ_REQUIRE_NATIVE=1`` (CI) makes that a failure.

New inputs the runs find go to a temporary directory, never into the committed corpora.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FUZZ_CRATE = REPO / "native" / "fuzz"
HARNESSES = ["consensus_messages", "p2p_messages", "rpc_params"]
NATIVE_TARGETS = ["transaction", "block", "block_header", "items", "undo", "signatures", "noise_transport"]
ATHERIS_RUNS = {"consensus_messages": 20_000, "p2p_messages": 20_000, "rpc_params": 3_000}
"""Fuzzing runs per harness in the smoke run: a few seconds each."""
MAX_TOTAL_TIME = 10
"""Seconds each smoke run fuzzes at most (libFuzzer's ``-max_total_time``)."""
RUN_TIMEOUT = 600
"""Seconds before a smoke run counts as hung (a native one includes building the target)."""


def _load(name: str) -> ModuleType:
    path = HERE / f"fuzz_{name}.py"
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def _corpus(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.is_file())
    assert files, f"{directory} holds no inputs"
    return files


def _libfuzzer_flags(tmp_path: Path, runs: int) -> list[str]:
    return [
        f"-runs={runs}",
        f"-max_total_time={MAX_TOTAL_TIME}",
        "-timeout=60",
        f"-artifact_prefix={tmp_path}/",
    ]


def _check_exit(result: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert result.returncode == 0, (
        f"fuzzer exited {result.returncode}; inputs written: {crashes}\n{result.stderr[-6000:]}"
    )


@pytest.mark.parametrize("name", HARNESSES)
def test_corpus_replays_clean(name, tmp_path):
    module = _load(name)
    if name == "rpc_params":
        module.start(tmp_path)
    try:
        for path in _corpus(HERE / "corpus" / name):
            try:
                module.check_input(path.read_bytes())
            except Exception as e:
                raise AssertionError(f"{name}: corpus input {path.name} fails: {e!r}") from e
    finally:
        if name == "rpc_params":
            module.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="atheris ships Linux wheels only (docs/fuzzing.md)")
@pytest.mark.parametrize("name", HARNESSES)
def test_atheris_harness_fuzzes_clean(name, tmp_path):
    pytest.importorskip("atheris", reason="atheris is a dev dependency (pip install -e '.[dev]')")
    new_inputs = tmp_path / "new"
    new_inputs.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / f"fuzz_{name}.py"),
            *_libfuzzer_flags(tmp_path, ATHERIS_RUNS[name]),
            str(new_inputs),
            str(HERE / "corpus" / name),
        ],
        cwd=tmp_path,
        env=os.environ | {"TIMECOIN_FUZZ_DIR": str(tmp_path / "node")},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    _check_exit(result, tmp_path)
    assert "Done" in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("target", NATIVE_TARGETS)
def test_cargo_fuzz_target_fuzzes_clean(target, tmp_path):
    if shutil.which("cargo-fuzz") is None:
        if os.environ.get("TIMECOIN_FUZZ_REQUIRE_NATIVE") == "1":
            pytest.fail("cargo-fuzz is not installed, and TIMECOIN_FUZZ_REQUIRE_NATIVE=1")
        pytest.skip("cargo-fuzz is not installed (cargo install cargo-fuzz; docs/fuzzing.md)")
    new_inputs = tmp_path / "new"
    new_inputs.mkdir()
    result = subprocess.run(
        [
            "cargo",
            "fuzz",
            "run",
            "--sanitizer",
            "none",
            target,
            str(new_inputs),
            str(FUZZ_CRATE / "corpus" / target),
            "--",
            *_libfuzzer_flags(tmp_path, 100_000_000),
        ],
        cwd=FUZZ_CRATE,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    _check_exit(result, tmp_path)
    assert "Done" in result.stderr, result.stderr[-3000:]


def test_every_target_has_a_seed_corpus():
    declared = (FUZZ_CRATE / "Cargo.toml").read_text()
    for target in NATIVE_TARGETS:
        assert f'name = "{target}"' in declared, target
        assert _corpus(FUZZ_CRATE / "corpus" / target)
    for path in sorted((FUZZ_CRATE / "fuzz_targets").glob("*.rs")):
        assert path.stem in NATIVE_TARGETS, f"{path.name} is not smoke-run"
    for path in sorted(HERE.glob("fuzz_*.py")):
        assert path.stem.removeprefix("fuzz_") in HARNESSES, f"{path.name} is not smoke-run"
