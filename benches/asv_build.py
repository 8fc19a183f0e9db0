"""asv's build step for one commit (asv.conf.json ``build_command``): the wheels of the native
crate and of the package, into asv's build cache.

``python benches/asv_build.py BUILD_DIR BUILD_CACHE_DIR NATIVE_CACHE``

* the native wheel (maturin, release profile: what ships) is built once per content of the
  commit's ``native/`` tree (its git tree hash) into ``NATIVE_CACHE/<tree>/`` and reused by every
  commit with the same tree: most commits do not touch the crate, and a release build with fat
  LTO takes minutes on two cores. Cargo's target directory is ``NATIVE_CACHE/target``, shared
  by these builds (dependencies compile once);
* the wheel is copied to ``BUILD_CACHE_DIR/native/``; the package's own wheel (Cython hot modules
  compiled, setup.py) goes to ``BUILD_CACHE_DIR``, where asv's install step finds it.

Exits non-zero with pip's or git's error when a build fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def native_tree(build_dir: Path) -> str:
    """The git tree hash of ``native/`` at the checked-out commit."""
    return subprocess.run(
        ["git", "-C", str(build_dir), "rev-parse", "HEAD:native"], check=True, capture_output=True, text=True
    ).stdout.strip()


def main(build_dir: Path, cache_dir: Path, native_cache: Path) -> None:
    tree = native_tree(build_dir)
    wheels = native_cache / tree
    if not list(wheels.glob("*.whl")):
        partial = native_cache / f"{tree}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        env = {**os.environ, "CARGO_TARGET_DIR": str(native_cache / "target")}
        print(f"asv_build: native/ tree {tree[:12]}: building the native wheel", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-w",
                str(partial),
                str(build_dir / "native"),
            ],
            check=True,
            env=env,
        )
        partial.rename(wheels)
    else:
        print(f"asv_build: native/ tree {tree[:12]}: reusing {wheels}", flush=True)
    (cache_dir / "native").mkdir(parents=True, exist_ok=True)
    for wheel in wheels.glob("*.whl"):
        shutil.copy2(wheel, cache_dir / "native" / wheel.name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(cache_dir), str(build_dir)], check=True
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
