#!/usr/bin/env bash
# Builds the wasm packages:
#   pkg/         the whole engine (Node, browsers, the policy checker)
#   pkg-worker/  the edge Worker's: no policy validator; it loads policies
#                that www/dev/check-policy.mjs validated and prepared
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

# wasm-bindgen, then wasm-opt (npm binaryen only: Debian's wasm-opt breaks
# externref tables; the features are the ones rustc's wasm32 target emits).
# --low-memory-unused: Rust's wasm32 keeps its stack and data above 1 MiB,
# so the first 1 KiB of memory is never used.
# A third argument adds wasm-opt features (the Worker's SIMD).
package() {
  wasm-bindgen --target web --out-dir "$2" --out-name phimask "$1"
  node scripts/glue.mjs "$2/phimask.js"
  node_modules/.bin/wasm-opt ${WASM_OPT_LEVEL:--Oz} --converge --low-memory-unused \
    --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-reference-types --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue ${3:-} \
    "$2/phimask_bg.wasm" -o "$2/phimask_bg.wasm"
}

# For benches/builds.mjs: WORKER_ONLY=1 builds only the Worker's engine,
# WORKER_OPT_LEVEL (z unless set) is its opt-level, WORKER_OUT (pkg-worker
# unless set) where it goes; WASM_OPT_LEVEL (-Oz) is wasm-opt's level;
# WORKER_SPEED=0 builds its hot paths for size too, WORKER_SIMD=0 leaves
# out SIMD128, WORKER_SHA=unrolled uses SHA-256's unrolled compression,
# WORKER_STD=z builds core, alloc and compiler_builtins at z too.
if [ -z "${WORKER_ONLY:-}" ]; then
  cargo build --release --lib --target wasm32-unknown-unknown --quiet
  package target/wasm32-unknown-unknown/release/phimask.wasm pkg
  # pkg/ is also the npm package "phimask" (make package packs it).
  cp npm/package.json npm/README.md npm/index.d.ts npm/node.js npm/workerd.js npm/browser.js pkg/
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
# Its hot paths (the JSON reader, the detectors) are built for speed
# (cfg phimask_speed: #[optimize(speed)]), which costs no size; SIMD128
# (workerd and Node have it) makes it smaller still, and so does SHA-256's
# rolled compression (feature compact-sha) at no cost measurable in a
# request. make bench-builds measures each both ways.
# Its own target directory, so neither build invalidates the other.
flags="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none"
dir="target/worker${WORKER_OPT_LEVEL:+-$WORKER_OPT_LEVEL}"
simd=()
features=(--no-default-features)
if [ "${WORKER_SHA:-compact}" = compact ]; then features+=(--features compact-sha); else dir+="-unrolled"; fi
if [ "${WORKER_SPEED:-1}" = 1 ]; then flags+=" --cfg phimask_speed"; else dir+="-nospeed"; fi
if [ "${WORKER_STD:-}" = z ]; then
  for crate in core alloc compiler_builtins; do level+=(--config "profile.worker.package.$crate.opt-level=\"z\""); done
  dir+="-stdz"
fi
if [ "${WORKER_SIMD:-1}" = 1 ]; then flags+=" -Ctarget-feature=+simd128"; simd=(--enable-simd); else dir+="-nosimd"; fi
RUSTFLAGS="$flags" \
  cargo "+$(cat scripts/nightly)" build --profile worker --lib --target wasm32-unknown-unknown \
  --quiet "${features[@]}" --target-dir "$dir" \
  -Zbuild-std=std,panic_abort "${level[@]}"
package "$dir/wasm32-unknown-unknown/worker/phimask.wasm" "${WORKER_OUT:-pkg-worker}" "${simd[@]}"
