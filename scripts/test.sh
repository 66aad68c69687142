#!/usr/bin/env bash
# Every test of phimask: lint, Rust tests (unit, vectors, properties, docs),
# the JavaScript tests against the built wasm, type checks, and the browser.
# Steps that only compile and never time anything run side by side (two
# cores are rarely both busy in one cargo run); the JavaScript tests run in
# two lanes (docs/testing.md, "How the tests run").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

logs=target/test-logs
rm -rf "$logs"
mkdir -p "$logs"

# Each step's elapsed seconds, printed as it ends and again as a table at
# the end, so a slow step is found without a profiler.
steps=()
current=""
begun=$SECONDS
started=$SECONDS
finish() {
  [ -n "$current" ] || return 0
  local took=$((SECONDS - begun))
  printf '== %s: %ds\n' "$current" "$took"
  steps+=("$(printf '%5ds  %s' "$took" "$current")")
  current=""
}
step() { finish; current="$*"; begun=$SECONDS; printf '\n== %s\n' "$*"; }
# Jobs started in the background, stopped if the run ends early.
jobs_started=()
installed=""
summary() {
  local status=$?
  for pid in "${jobs_started[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -z "$installed" ] || rm -rf "$installed"
  finish
  printf '\n== time per step\n'
  printf '%s\n' "${steps[@]}"
  printf '%5ds  total%s\n' "$((SECONDS - started))" "$([ "$status" = 0 ] || echo " (failed: exit $status)")"
}
trap summary EXIT

# Runs a command in the background with its output in $logs/NAME.log;
# `joined NAME` waits for it, prints its output and fails if it failed.
declare -A pid_of
background() {
  local name=$1; shift
  ( t=$SECONDS; status=0; "$@" || status=$?
    echo "$((SECONDS - t))" >"$logs/$name.seconds"
    echo "($name: $([ "$status" = 0 ] && echo ok || echo "exit $status") in $((SECONDS - t))s)"
    exit "$status" ) >"$logs/$name.log" 2>&1 &
  pid_of[$name]=$!
  jobs_started+=($!)
}
joined() {
  local status=0
  wait "${pid_of[$1]}" || status=$?
  sed "s/^/[$1] /" "$logs/$1.log"
  steps+=("$(printf '%5ds  (%s, in the background)' "$(cat "$logs/$1.seconds" 2>/dev/null || echo 0)" "$1")")
  return "$status"
}
# The wasm files' change times, to show nothing rebuilt them later.
wasm_times() { stat -c '%n %Y' pkg/phimask_bg.wasm pkg-worker/phimask_bg.wasm; }

step "setup"
scripts/setup.sh --browser

# Compiling and linting, on every core: the wasm packages and the fuzz
# targets build in the background (their longest parts, wasm-opt and
# linking, keep one core busy) while the steps below run; the first
# JavaScript step waits for them. Nothing that runs beside them is timed.
# The wasm packages are built once per run: every later build (wrangler's
# [build] command, make run) finds them up to date; checked after the
# JavaScript tests.
background wasm scripts/build.sh
# The fuzz targets: linted on the pinned stable Rust, built on the pinned
# nightly in fuzz/target; fuzzing itself runs alone below, so each target
# has a whole core for its time. (&&: a function run as `f || …` ignores
# set -e.)
fuzz_build() {
  cargo fmt --manifest-path fuzz/Cargo.toml -- --check \
    && cargo clippy --quiet --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings \
    && (cd fuzz && cargo "+$(cat ../scripts/nightly)" fuzz build >/dev/null)
}
background fuzz-build fuzz_build

step "cargo fmt --check and clippy (native and wasm32)"
cargo fmt --all -- --check
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --target wasm32-unknown-unknown --lib -- -D warnings
cargo clippy --quiet --target wasm32-unknown-unknown --lib --no-default-features -- -D warnings

step "cargo test"
# The release profile's code and checks without its whole-program LTO
# (Cargo.toml, [profile.test-release]): linking seventeen test binaries with
# it was most of the run.
cargo test --profile test-release

step "the crate packs, and the phimask command installs from the package"
# Installing the packaged crate is the package's verification build too,
# so `cargo package` skips its own. With the tests' profile in target/, it
# reuses their compiled dependencies (a release build of them all took
# two minutes).
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
cargo package --allow-dirty --no-verify --quiet
rm -rf "target/package/phimask-$version"
tar -xzf "target/package/phimask-$version.crate" -C target/package
installed="$(mktemp -d)"
cargo install --path "target/package/phimask-$version" --root "$installed" --locked --quiet \
  --profile test-release --target-dir target
"$installed/bin/phimask" check policies/production.json policies/development.json
# tests/js/api.test.mjs compares the JavaScript data map with this command's.
export PHIMASK_BIN="$installed/bin/phimask"

step "the wasm packages and the fuzz targets, built in the background"
joined wasm
joined fuzz-build
built=$(wasm_times)

step "TypeScript types"
npx --no-install tsc -p tests/types

step "fuzzing: saved crashes replayed, each target for 10 s (make fuzz runs them for 10 min)"
scripts/fuzz.sh 10

step "JavaScript tests (Node and headless Chromium) and the load test, in two lanes, and the Python wheel's"
# Every test file listens on ports the system picks, but run.test.mjs
# (make run's own 8787, 8788 and 8080). The second lane holds what must
# not overlap: headless Chromium (one browser at a time), wrangler in the
# repository (deploy and make run write build/ and .wrangler/), wrangler dev
# (its registry of local Workers), and the load test. The first lane holds
# Worker tests run by Miniflare alone. Lane times are in docs/testing.md.
first=(queue-truth ingest-truth worker replay destination-limits worker-fail-closed engine-truth consent-matrix worker-consent packs delivery formats evidence-attacks)
lane_one=()
lane_two=()
for file in tests/js/*.test.mjs; do
  name=$(basename "$file" .test.mjs)
  if [[ " ${first[*]} " == *" $name "* ]]; then lane_one+=("$file"); else lane_two+=("$file"); fi
done
# Runs each file with node --test, then the commands after "--"; keeps
# going after a failure, prints each file's seconds, fails if any failed.
lane() {
  local failed=() file t
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    file=$1; shift; t=$SECONDS
    node --test --test-reporter=spec "$file" || failed+=("$file")
    printf '(%s: %ds)\n' "$file" "$((SECONDS - t))"
  done
  [ $# -eq 0 ] || shift
  if [ $# -gt 0 ]; then
    t=$SECONDS
    "$@" || failed+=("$*")
    printf '(%s: %ds)\n' "$*" "$((SECONDS - t))"
  fi
  [ ${#failed[@]} -eq 0 ] || { printf 'failed: %s\n' "${failed[@]}"; return 1; }
}
# The Python wheel beside them (the lanes leave a core mostly idle while
# they wait on workerd and the browser): linted, built as shipped (make
# wheel), installed into .venv-backfill and tested there (tests/python:
# the API, the same bytes as the command and the wasm engine, the backfill
# recipes on Spark, DuckDB and Polars).
python_tests() {
  cargo clippy --quiet --lib --no-default-features --features python -- -D warnings \
    && scripts/wheel.sh >/dev/null \
    && .venv-backfill/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps dist/phimask-*.whl \
    && PHIMASK_WHEEL="$(ls dist/phimask-*.whl)" .venv-backfill/bin/python -m pytest -q -p no:cacheprovider tests/python
}
background python python_tests
background js-1 lane "${lane_one[@]}"
# The load test: no event lost while a destination fails, and a key
# flooding at 20x the others' rate refused with 429 while they lose
# nothing (make load writes its figures to benches/load.md).
background js-2 lane "${lane_two[@]}" -- node scripts/load.mjs
status=0
joined js-1 || status=1
joined js-2 || status=1
joined python || status=1
grep -h '^(.*: [0-9]*s)$' "$logs/js-1.log" "$logs/js-2.log" | sed 's/^/  /'
[ "$status" = 0 ] || { echo "JavaScript or Python tests failed: see above ([js-1], [js-2], [python])" >&2; exit 1; }
if [ "$(wasm_times)" != "$built" ]; then
  echo "the wasm packages were rebuilt during the tests: every test must use the ones built first" >&2
  exit 1
fi
