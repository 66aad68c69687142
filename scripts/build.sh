#!/usr/bin/env bash
# Builds the wasm packages:
#   pkg/         the whole engine (Node, browsers, the policy checker)
#   pkg-worker/  the edge Worker's: no policy validator; it loads policies
#                that www/check-policy.mjs validated and prepared
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

# wasm-bindgen, then wasm-opt (npm binaryen only: Debian's wasm-opt breaks
# externref tables; the features are the ones rustc's wasm32 target emits).
# --low-memory-unused: Rust's wasm32 keeps its stack and data above 1 MiB,
# so the first 1 KiB of memory is never used.
package() {
  wasm-bindgen --target web --out-dir "$2" --out-name phimask "$1"
  node scripts/glue.mjs "$2/phimask.js"
  node_modules/.bin/wasm-opt ${WASM_OPT_LEVEL:--Oz} --converge --low-memory-unused \
    --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-reference-types --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue \
    "$2/phimask_bg.wasm" -o "$2/phimask_bg.wasm"
}

# For benches/builds.mjs: WORKER_ONLY=1 builds only the Worker's engine,
# WORKER_OPT_LEVEL (z unless set) is its opt-level, WORKER_OUT (pkg-worker
# unless set) where it goes; WASM_OPT_LEVEL (-Oz) is wasm-opt's level.
if [ -z "${WORKER_ONLY:-}" ]; then
  cargo build --release --target wasm32-unknown-unknown --quiet
  package target/wasm32-unknown-unknown/release/phimask.wasm pkg
fi
level=()
if [ -n "${WORKER_OPT_LEVEL:-}" ]; then
  value=$WORKER_OPT_LEVEL
  [[ $value =~ ^[0-9]$ ]] || value="\"$value\""
  level=(--config "profile.worker.opt-level=$value" --config "profile.worker.package.sha2.opt-level=$value")
fi
# The Worker's: built for size (profile worker), with the standard
# library rebuilt to abort on a panic without formatting a message (the
# same behaviour as panic = "abort", less code), without source locations
# or Debug text (nothing in the Worker prints them), by the pinned nightly.
# Its own target directory, so neither build invalidates the other.
RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none" \
  cargo "+$(cat scripts/nightly)" build --profile worker --target wasm32-unknown-unknown \
  --quiet --no-default-features --target-dir "target/worker${WORKER_OPT_LEVEL:+-$WORKER_OPT_LEVEL}" \
  -Zbuild-std=std,panic_abort "${level[@]}"
package "target/worker${WORKER_OPT_LEVEL:+-$WORKER_OPT_LEVEL}/wasm32-unknown-unknown/worker/phimask.wasm" "${WORKER_OUT:-pkg-worker}"
