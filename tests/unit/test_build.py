"""The installed build: native version and profile, the checked stub, the CLI."""

import subprocess
import sys

import timecoin_native
from click.testing import CliRunner

import timecoin
from timecoin.cli.main import main


def test_native_reports_version_and_release_profile():
    assert timecoin_native.__version__ == "0.1.0"
    # The documented install builds release; a debug build must never be benchmarked.
    assert timecoin_native.build_profile == "release"


def test_stub_matches_runtime():
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "timecoin_native"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert f"timecoin {timecoin.__version__}" in result.output
    assert "release build" in result.output
