"""What every Python test shares: the repository, the masking key the tests
use, and the phimask command and wasm engine the wheel is compared with.

The tests run against the installed wheel (`import phimask`): scripts/test.sh
builds it (make wheel) and installs it into .venv-backfill first."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A test key: 32 bytes, as the Worker's PHI_MASKING_KEY must be at least.
KEY = "python-tests-masking-key-0123456789abcdef"


def phimask_bin() -> str:
    """The phimask command: PHIMASK_BIN (scripts/test.sh installs the
    packaged crate and sets it), else a build in target/."""
    given = os.environ.get("PHIMASK_BIN")
    if given:
        return given
    for profile in ("release", "test-release", "debug"):
        built = ROOT / "target" / profile / "phimask"
        if built.exists():
            return str(built)
    found = shutil.which("phimask")
    if found:
        return found
    pytest.fail("no phimask command: set PHIMASK_BIN or cargo build --release")


def run_sanitize(policy: Path, destination: str, data: bytes, *options: str, key: str = KEY) -> subprocess.CompletedProcess:
    """`phimask sanitize --policy POLICY -d DESTINATION [OPTIONS]` run on
    `data`, with `key` as PHI_MASKING_KEY."""
    return subprocess.run(
        [phimask_bin(), "sanitize", "--policy", str(policy), "-d", destination, "--quiet", *options],
        input=data,
        capture_output=True,
        env={**os.environ, "PHI_MASKING_KEY": key},
        check=False,
    )


def cli_sanitize(policy: Path, destination: str, data: bytes, *options: str, key: str = KEY) -> bytes:
    """What `phimask sanitize` writes for `data`."""
    done = run_sanitize(policy, destination, data, *options, key=key)
    # 0: every line sanitized; 1: some refused (left out, as the wheel does).
    assert done.returncode in (0, 1), done.stderr.decode("utf-8", "replace")
    return done.stdout
