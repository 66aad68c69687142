# phimask: `make run` starts it locally, `make test` runs every test.
# Both install what they need first (scripts/setup.sh, idempotent).
.PHONY: run examples test build package wheel bench bench-builds load size fmt lint setup fuzz

run:
	scripts/run.sh

examples: build
	node www/dev/examples.mjs

test:
	scripts/test.sh

build:
	scripts/setup.sh
	scripts/build.sh

# The npm package "phimask" (pkg/ with its package.json), as a tarball in
# dist/: npm install dist/phimask-VERSION.tgz in any project.
package: build
	mkdir -p dist
	npm pack ./pkg --pack-destination dist

# The Python wheel (maturin, abi3: every CPython from 3.9) in dist/:
# pip install dist/phimask-*.whl, then import phimask (docs/backfill.md).
wheel:
	scripts/wheel.sh

# The wheel's figures (benches/wheel.py) are of the wheel as make wheel
# builds it, installed into .venv-backfill with pyarrow and pyspark.
bench: build
	node benches/bench.mjs
	scripts/setup.sh --backfill
	scripts/wheel.sh
	.venv-backfill/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps dist/phimask-*.whl
	.venv-backfill/bin/python benches/wheel.py

# The Worker engine as shipped (opt-level 3, wasm-opt -O3, SIMD128, SHA-256
# unrolled) and with each choice undone: size and speed side by side, in
# benches/builds.md.
bench-builds: build
	node benches/builds.mjs

# Concurrent clients against the Worker under wrangler dev while a
# destination fails for part of the run, then one write key flooding at
# 20x the rate of the others against the rate limits; figures in
# benches/load.md.
load: build
	RESULTS=benches/load.md node scripts/load.mjs

# Each fuzz target for FUZZ_SECONDS (10 minutes unless set); figures in
# fuzz/RESULTS.md.
fuzz:
	scripts/setup.sh --browser
	RESULTS=fuzz/RESULTS.md scripts/fuzz.sh $${FUZZ_SECONDS:-600}

size: build
	@for p in pkg pkg-worker; do printf '%s/phimask_bg.wasm: %s bytes, %s gzipped\n' \
	  "$$p" "$$(wc -c < $$p/phimask_bg.wasm)" "$$(gzip -9c $$p/phimask_bg.wasm | wc -c)"; done

fmt:
	cargo fmt --all
	cargo fmt --manifest-path fuzz/Cargo.toml

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib --no-default-features -- -D warnings
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
	cargo clippy --lib --no-default-features --features python -- -D warnings

setup:
	scripts/setup.sh --browser
