# phimask: `make run` starts it locally, `make test` runs every test.
# Both install what they need first (scripts/setup.sh, idempotent).
.PHONY: run examples test build bench size fmt lint setup

run:
	scripts/run.sh

examples: build
	node www/examples.mjs

test:
	scripts/test.sh

build:
	scripts/setup.sh
	scripts/build.sh

bench: build
	node benches/bench.mjs

size: build
	@printf 'pkg/phimask_bg.wasm: %s bytes, %s gzipped\n' \
	  "$$(wc -c < pkg/phimask_bg.wasm)" "$$(gzip -9c pkg/phimask_bg.wasm | wc -c)"

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings

setup:
	scripts/setup.sh --browser
