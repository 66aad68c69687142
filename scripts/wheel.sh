#!/usr/bin/env bash
# The Python wheel (make wheel): dist/phimask-VERSION-cp39-abi3-PLATFORM.whl,
# one wheel for every CPython from 3.9, built by maturin from this crate
# with its `python` feature (pyproject.toml) in the release profile.
# pip install dist/phimask-*.whl installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --wheel
mkdir -p dist
rm -f dist/phimask-*.whl
.venv-backfill/bin/maturin build --release --out dist --quiet
ls dist/phimask-*.whl
