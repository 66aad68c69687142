#!/usr/bin/env bash
# Installs what phimask needs, idempotently: the wasm32 target, a pinned
# nightly Rust for the Worker's build, the
# wasm-bindgen CLI matching Cargo.lock, the npm packages of package-lock.json,
# and with --browser what only the tests need: Debian's Chromium, the
# Python SDK (in .venv) and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf 'setup: %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# The Worker's engine is built with a pinned nightly (scripts/build.sh): it
# rebuilds the standard library without panic messages, to fit the edge.
nightly=$(cat scripts/nightly)
if ! rustup run "$nightly" rustc --print sysroot >/dev/null 2>&1 \
  || ! rustup component list --toolchain "$nightly" --installed | grep -q '^rust-src' \
  || ! rustup target list --toolchain "$nightly" --installed | grep -qx wasm32-unknown-unknown; then
  say "installing Rust $nightly with rust-src and wasm32 (for the Worker's build)"
  rustup toolchain install "$nightly" --profile minimal --component rust-src --target wasm32-unknown-unknown
fi

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

# The Python SDK the tests drive (pinned, in a project venv).
pystamp=.venv/.phimask-requirements
if [ "${1:-}" = "--browser" ] && { [ ! -f "$pystamp" ] || ! cmp -s tests/sdk/requirements.txt "$pystamp"; }; then
  say "installing segment-analytics-python into .venv (pip)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$pystamp"
fi

# The fuzzer (scripts/fuzz.sh), run by the pinned nightly.
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
