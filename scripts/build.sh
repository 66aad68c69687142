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
# A third argument adds wasm-opt features (SIMD128, see .cargo/config.toml).
package() {
  wasm-bindgen --target web --out-dir "$2" --out-name phimask "$1"
  node scripts/glue.mjs "$2/phimask.js"
  node_modules/.bin/wasm-opt ${WASM_OPT_LEVEL:--O3} --converge --low-memory-unused \
    --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-reference-types --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue ${3:-} \
    "$2/phimask_bg.wasm" -o "$2/phimask_bg.wasm"
}

# For benches/builds.mjs: WORKER_ONLY=1 builds only the Worker's engine,
# WORKER_OPT_LEVEL (3 unless set) is its opt-level, WORKER_OUT (pkg-worker
# unless set) where it goes; WASM_OPT_LEVEL (-O3) is wasm-opt's level;
# WORKER_SIMD=0 leaves out SIMD128, WORKER_SHA=compact uses SHA-256's
# rolled compression.
# Up to date: the same sources and settings as the last build whose
# packages are still there, so nothing is rebuilt (wasm-opt alone takes
# most of half a minute; wrangler runs this before every dev and deploy).
# Outside a git checkout it always builds.
settings="${WORKER_ONLY:-}|${WORKER_OPT_LEVEL:-}|${WASM_OPT_LEVEL:-}|${WORKER_SIMD:-}|${WORKER_SHA:-}|${WORKER_OUT:-}"
stamp="target/phimask-build-$(printf '%s' "$settings" | sha256sum | cut -c1-16).stamp"
sum=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  sum="$({ printf '%s\n' "$settings"
    git ls-files -z --cached --others --exclude-standard -- src Cargo.toml Cargo.lock scripts/build.sh scripts/glue.mjs rust-toolchain.toml .cargo/config.toml npm \
      | sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)"
fi
fresh=$([ -n "$sum" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ] && echo 1 || echo 0)
[ -f "${WORKER_OUT:-pkg-worker}/phimask_bg.wasm" ] || fresh=0
[ -n "${WORKER_ONLY:-}" ] || [ -f pkg/phimask_bg.wasm ] || fresh=0
if [ "$fresh" = 1 ]; then
  echo "build: the wasm packages are up to date" >&2
  exit 0
fi
rm -f "$stamp"

if [ -z "${WORKER_ONLY:-}" ]; then
  cargo build --release --lib --target wasm32-unknown-unknown --quiet
  package target/wasm32-unknown-unknown/release/phimask.wasm pkg --enable-simd
  # pkg/ is also the npm package "phimask" (make package packs it).
  cp npm/package.json npm/README.md npm/index.d.ts npm/node.js npm/workerd.js npm/browser.js LICENSE pkg/
fi
level=()
if [ -n "${WORKER_OPT_LEVEL:-}" ]; then
  value=$WORKER_OPT_LEVEL
  [[ $value =~ ^[0-9]$ ]] || value="\"$value\""
  level=(--config "profile.worker.opt-level=$value")
fi
# The Worker's: the release profile (opt-level 3) on the pinned stable
# toolchain, without the policy validator (--no-default-features), in a
# target directory of its own so neither build invalidates the other.
# SIMD128 comes from .cargo/config.toml; WORKER_SIMD=0 overrides it.
dir="target/worker${WORKER_OPT_LEVEL:+-$WORKER_OPT_LEVEL}"
features=(--no-default-features)
simd=(--enable-simd)
if [ "${WORKER_SHA:-}" = compact ]; then features+=(--features compact-sha); dir+="-compact"; fi
if [ "${WORKER_SIMD:-1}" = 1 ]; then
  cargo build --profile worker --lib --target wasm32-unknown-unknown --quiet "${features[@]}" --target-dir "$dir" "${level[@]}"
else
  dir+="-nosimd"; simd=()
  RUSTFLAGS="" cargo build --profile worker --lib --target wasm32-unknown-unknown --quiet "${features[@]}" --target-dir "$dir" "${level[@]}"
fi
package "$dir/wasm32-unknown-unknown/worker/phimask.wasm" "${WORKER_OUT:-pkg-worker}" "${simd[@]}"
if [ -n "$sum" ]; then mkdir -p target && printf '%s' "$sum" > "$stamp"; fi
