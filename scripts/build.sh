#!/usr/bin/env bash
# Builds the wasm packages:
#   pkg/         the whole engine (Node, browsers, the policy checker)
#   pkg-worker/  the edge Worker's: no policy validator; it loads policies
#                that www/check-policy.mjs validated and prepared
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

# wasm-bindgen, then wasm-opt (npm binaryen only: Debian's wasm-opt breaks
# externref tables; the features are the ones rustc's wasm32 target emits).
package() {
  wasm-bindgen --target web --out-dir "$2" --out-name phimask "$1"
  node_modules/.bin/wasm-opt ${WASM_OPT_LEVEL:--Oz} --converge \
    --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-reference-types --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue \
    "$2/phimask_bg.wasm" -o "$2/phimask_bg.wasm"
}

cargo build --release --target wasm32-unknown-unknown --quiet
package target/wasm32-unknown-unknown/release/phimask.wasm pkg
# Its own target directory, so neither build invalidates the other.
cargo build --release --target wasm32-unknown-unknown --quiet \
  --no-default-features --target-dir target/worker
package target/worker/wasm32-unknown-unknown/release/phimask.wasm pkg-worker
