#!/usr/bin/env bash
# Builds the wasm package: pkg/phimask.js, pkg/phimask_bg.wasm, pkg/phimask.d.ts.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

cargo build --release --target wasm32-unknown-unknown --quiet
wasm-bindgen --target web --out-dir pkg --out-name phimask \
  target/wasm32-unknown-unknown/release/phimask.wasm
# npm binaryen only (Debian's wasm-opt breaks externref tables); the
# features are the ones rustc's wasm32 target emits.
node_modules/.bin/wasm-opt ${WASM_OPT_LEVEL:--Oz} \
  --enable-bulk-memory --enable-reference-types --enable-sign-ext \
  --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue \
  pkg/phimask_bg.wasm -o pkg/phimask_bg.wasm
