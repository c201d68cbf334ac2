# missive — common tasks. `make help` lists them.

CARGO ?= cargo

.PHONY: help run run-debug build test lint fmt fmt-check ci fuzz bench e2e clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## Run the server on :8080 with data in data/missive.db (release build)
	$(CARGO) run --release

run-debug: ## Run a debug build with DEBUG logs
	LOG_LEVEL=DEBUG $(CARGO) run

build: ## Build everything (release)
	$(CARGO) build --release --workspace

test: ## Run the whole test suite on SQLite, then the API suite on PostgreSQL (skipped if unreachable)
	$(CARGO) test --workspace --all-targets
	MISSIVE_TEST_STORE=postgres $(CARGO) test -p missive-server --test api

lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

ci: lint test fuzz ## What CI runs

FUZZ_SECONDS ?= 30

fuzz: ## Fuzz the parsers and validators, FUZZ_SECONDS (30) per target (installs cargo-fuzz if missing)
	bash fuzz/run.sh $(FUZZ_SECONDS)

# Where cargo puts the release binaries (CI keeps its target dir outside the clone).
BENCH_DIR ?= $(or $(CARGO_TARGET_DIR),target)/release
BENCH = $(BENCH_DIR)/missive-bench --server-bin $(BENCH_DIR)/missive

bench: ## Load-test a release build: idle sockets, WebSocket (full speed, 1,000 msg/s), HTTP (see docs/benchmarks.md)
	$(CARGO) build --release -p missive-server -p missive-bench
	$(BENCH) idle --connections 5000
	$(BENCH) ws --pairs 50 --messages-per-sender 1000 --window 8
	$(BENCH) ws --pairs 50 --messages-per-sender 200 --rate 1000
	$(BENCH) http --pairs 64 --requests 50000 --concurrency 64

e2e: ## Browser test of the web client: two people chat in headless Chromium (needs /usr/bin/chromium, Node.js 20, npm)
	$(CARGO) build -p missive-server
	cd web/e2e && npm ci && MISSIVE_BIN=$(abspath $(or $(CARGO_TARGET_DIR),target))/debug/missive node chat.test.mjs

clean: ## Remove build output and the local database
	$(CARGO) clean
	rm -rf data
