#!/usr/bin/env bash
# Installs what phimask needs, idempotently: the stable Rust of
# rust-toolchain.toml with its wasm32 target, the wasm-bindgen CLI matching
# Cargo.lock, the npm packages of package-lock.json, and with --browser
# what only the tests need: Debian's Chromium, the Python SDK (in .venv),
# and the pinned nightly Rust with cargo-fuzz (the fuzzer only).
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
