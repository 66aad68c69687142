#!/usr/bin/env bash
# Every test of phimask: lint, Rust tests (unit, vectors, properties, docs),
# the JavaScript tests against the built wasm, type checks, and the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "setup"
scripts/setup.sh --browser
step "build the wasm packages"
scripts/build.sh
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (native and wasm32)"
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --target wasm32-unknown-unknown --lib -- -D warnings
cargo clippy --quiet --target wasm32-unknown-unknown --lib --no-default-features -- -D warnings
step "cargo test"
cargo test --release
step "the crate packs, and the phimask command installs from it"
cargo package --allow-dirty --quiet
root="$(mktemp -d)"
cargo install --path . --root "$root" --locked --quiet
"$root/bin/phimask" check policies/production.json policies/development.json
rm -rf "$root"
step "TypeScript types"
npx --no-install tsc -p tests/types
step "fuzzing: saved crashes replayed, each target for 10 s (make fuzz runs them for 10 min)"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --quiet --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
scripts/fuzz.sh 10
step "JavaScript tests (Node and headless Chromium)"
node --test --test-concurrency=1 tests/js/*.test.mjs
step "load test: no event lost while a destination fails (make load writes the figures)"
node scripts/load.mjs
