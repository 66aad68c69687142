#!/usr/bin/env bash
# Installs what phimask needs, idempotently: the stable Rust of
# rust-toolchain.toml with its wasm32 target, the wasm-bindgen CLI matching
# Cargo.lock, the npm packages of package-lock.json, and with --browser
# what only the tests need: Debian's Chromium, the Python SDK (in .venv),
# the wheel's build and test packages with Spark's Java (in .venv-backfill),
# and the pinned nightly Rust with cargo-fuzz (the fuzzer only). With
# --wheel, what make wheel needs: maturin (in .venv-backfill); with
# --backfill, the wheel's packages and Java alone (make bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf 'setup: %s\n' "$*" >&2; }

# Every build uses the release pinned in rust-toolchain.toml (its
# components and the wasm32 target with it).
toolchain=$(awk -F'"' '/^channel/ { print $2 }' rust-toolchain.toml)
if ! rustup target list --toolchain "$toolchain" --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || ! rustup component list --toolchain "$toolchain" --installed 2>/dev/null | grep -q '^clippy'; then
  say "installing Rust $toolchain with clippy, rustfmt and wasm32 (rust-toolchain.toml)"
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy --target wasm32-unknown-unknown
fi

# The wasm packages' tools; make wheel (--wheel) needs neither.
if [ "${1:-}" != "--wheel" ]; then
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
  if [ "$have" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (a few minutes, once)"
    # No --locked: its lock file names a crate version this registry lacks.
    cargo install wasm-bindgen-cli --version "$want"
  fi

  stamp=node_modules/.phimask-lock
  if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    say "installing npm packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
  fi
fi

# The Python SDK the tests drive (pinned, in a project venv).
pystamp=.venv/.phimask-requirements
if [ "${1:-}" = "--browser" ] && { [ ! -f "$pystamp" ] || ! cmp -s tests/sdk/requirements.txt "$pystamp"; }; then
  say "installing segment-analytics-python into .venv (pip)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$pystamp"
fi

# The wheel's build (maturin) and its tests (pyarrow, pyspark, duckdb,
# polars, pytest), pinned, in a venv of their own (the SDK's pins differ).
# make wheel alone installs maturin only.
wheelstamp=.venv-backfill/.phimask-requirements
maturin_pin=$(grep '^maturin==' tests/python/requirements.txt)
backfill=""
case "${1:-}" in --browser|--backfill) backfill=1 ;; esac
if [ -n "$backfill" ] && { [ ! -f "$wheelstamp" ] || ! cmp -s tests/python/requirements.txt "$wheelstamp"; }; then
  say "installing the wheel's build and test packages into .venv-backfill (pip, about a minute, once)"
  python3 -m venv .venv-backfill
  .venv-backfill/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  cp tests/python/requirements.txt "$wheelstamp"
elif [ "${1:-}" = "--wheel" ] && [ "$(.venv-backfill/bin/maturin --version 2>/dev/null | awk '{ print "maturin==" $2 }')" != "$maturin_pin" ]; then
  say "installing $maturin_pin into .venv-backfill (pip)"
  python3 -m venv .venv-backfill
  .venv-backfill/bin/pip install --quiet --disable-pip-version-check "$maturin_pin"
fi

# Spark (the backfill recipes' test) runs on Java: Debian's JRE 17.
if [ -n "$backfill" ] && ! command -v java >/dev/null 2>&1; then
  say "installing Debian's openjdk-17-jre-headless (for Spark in the wheel's tests)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

# The fuzzer (scripts/fuzz.sh), run by the pinned nightly: cargo-fuzz
# needs its sanitizer flags; no build that ships uses it.
nightly=$(cat scripts/nightly)
if [ "${1:-}" = "--browser" ] && ! rustup run "$nightly" rustc --print sysroot >/dev/null 2>&1; then
  say "installing Rust $nightly (for cargo-fuzz only)"
  rustup toolchain install "$nightly" --profile minimal
fi
fuzz_version=0.13.2
if [ "${1:-}" = "--browser" ] && [ "$(cargo fuzz --version 2>/dev/null | awk '{ print $2 }')" != "$fuzz_version" ]; then
  say "installing cargo-fuzz $fuzz_version (about a minute, once)"
  cargo install cargo-fuzz --version "$fuzz_version" --locked
fi

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  say "installing Debian's chromium (for the browser tests)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
