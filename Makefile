# missive — common tasks. `make help` lists them.

CARGO ?= cargo

.PHONY: help run run-debug build test lint fmt fmt-check ci fuzz bench bench-postgres bench-cluster e2e sdk cluster cluster-test soak soak-cluster soak-ci bruno workflows changelog openapi asyncapi schemathesis clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

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
	$(CARGO) clippy -p missive-client --features rustls -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

ci: lint test fuzz ## What CI runs

FUZZ_SECONDS ?= 30

fuzz: ## Fuzz the parsers and validators, FUZZ_SECONDS (30) per target (installs cargo-fuzz if missing)
	bash fuzz/run.sh $(FUZZ_SECONDS)

# Where cargo puts the release binaries (CI keeps its target dir outside the clone).
BENCH_DIR ?= $(or $(CARGO_TARGET_DIR),target)/release
BENCH = $(BENCH_DIR)/missive-bench --server-bin $(BENCH_DIR)/missive

bench: ## Load-test a release build: idle sockets, WebSocket (full speed with windows 8 and 16, 1,000 msg/s smooth and in phase), HTTP (reqwest and wrk; see docs/benchmarks.md)
	$(CARGO) build --release -p missive-server -p missive-bench
	scripts/bench/ensure-wrk.sh
	$(BENCH) idle --connections 5000
	$(BENCH) ws --pairs 50 --messages-per-sender 1000 --window 8
	$(BENCH) --max-seconds 120 ws --pairs 50 --messages-per-sender 20000 --window 16
	$(BENCH) ws --pairs 50 --messages-per-sender 200 --rate 1000
	$(BENCH) ws --pairs 50 --messages-per-sender 200 --rate 1000 --phase aligned
	$(BENCH) http --pairs 64 --requests 50000 --concurrency 64
	$(BENCH) wrk --pairs 64 --connections 64 --wrk-threads 2 --duration 20

bench-postgres: ## The WebSocket scenario on one node on PostgreSQL (needs PostgreSQL on 127.0.0.1:5432)
	$(CARGO) build --release -p missive-server -p missive-bench
	$(BENCH) --store postgres ws --pairs 50 --messages-per-sender 1000 --window 8

bench-cluster: ## Cross-node WebSocket: senders on node A, recipients on node B, PostgreSQL + Redis
	$(CARGO) build --release -p missive-server -p missive-bench
	$(BENCH) --cluster ws --pairs 50 --messages-per-sender 1000 --window 8
	$(BENCH) --cluster ws --pairs 50 --messages-per-sender 200 --rate 1000

cluster: ## Two nodes on PostgreSQL + Redis behind nginx on :8080 (Ctrl-C stops everything)
	deploy/cluster.sh

cluster-test: ## End-to-end check of a two-node cluster through nginx, killing a node (what CI runs)
	deploy/cluster-test.sh

e2e: ## Browser test of the web client: two people chat in headless Chromium (needs /usr/bin/chromium, Node.js 20, npm)
	$(CARGO) build -p missive-server
	cd web/e2e && npm ci && MISSIVE_BIN=$(abspath $(or $(CARGO_TARGET_DIR),target))/debug/missive node chat.test.mjs

sdk: ## The TypeScript SDK (clients/js): npm ci, dist/ rebuilt and compared with the committed one, then its tests against a debug server (needs Node.js 20, npm)
	$(CARGO) build -p missive-server
	cd clients/js && npm ci --no-audit --no-fund && npm run check && MISSIVE_BIN=$(abspath $(or $(CARGO_TARGET_DIR),target))/debug/missive npm test

soak: ## 30-minute soak with a SIGKILL every 5 minutes (release build; writes soak.svg; see docs/benchmarks.md)
	$(CARGO) build --release -p missive-server -p missive-bench
	$(BENCH) soak --minutes 30 --idle 2000 --pairs 100 --chaos --chart soak.svg

soak-cluster: ## 30-minute soak on two nodes (PostgreSQL + Redis), killing one node at a time every 5 minutes
	$(CARGO) build --release -p missive-server -p missive-bench
	$(BENCH) --cluster soak --minutes 30 --idle 2000 --pairs 100 --chaos --chart soak-cluster.svg

soak-ci: ## The soaks CI runs: 2 minutes on one node (a kill every 30 s), 1 minute on two nodes (a kill every 15 s); zero loss and zero duplicates required
	$(CARGO) build --release -p missive-server -p missive-bench
	$(BENCH) soak --minutes 2 --idle 300 --pairs 20 --rate 5 --chaos --chaos-every-minutes 0.5 --sample-seconds 10 --drain-seconds 30
	$(BENCH) --cluster soak --minutes 1 --idle 200 --pairs 20 --rate 5 --chaos --chaos-every-minutes 0.25 --sample-seconds 10 --drain-seconds 30

bruno: ## Run the Bruno collection (docs/bruno) against a fresh debug server (installs @usebruno/cli if missing)
	$(CARGO) build -p missive-server
	scripts/bruno.sh $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/missive

workflows: ## Validate .github/workflows against GitHub's schema (check-jsonschema from PyPI)
	command -v check-jsonschema >/dev/null || pip install -q check-jsonschema
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

changelog: ## Regenerate CHANGELOG.md from the conventional commits (git-cliff from PyPI)
	command -v git-cliff >/dev/null || pip install -q git-cliff
	git-cliff --config cliff.toml -o CHANGELOG.md

openapi: ## Regenerate web/openapi.json and web/asyncapi.json from the code (a test fails while either is stale)
	MISSIVE_UPDATE_OPENAPI=1 $(CARGO) test -p missive-server --test api served_document_matches_the_checked_in_copy

asyncapi: ## Validate web/asyncapi.json with the official AsyncAPI parser (npm: @asyncapi/parser)
	cd scripts/asyncapi && npm ci --ignore-scripts --no-audit --no-fund
	node scripts/asyncapi/validate.mjs web/asyncapi.json

schemathesis: ## Fuzz a debug server against its own /openapi.json with schemathesis (installs it from PyPI if missing)
	$(CARGO) build -p missive-server
	scripts/schemathesis.sh $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/missive

clean: ## Remove build output and the local database
	$(CARGO) clean
	rm -rf data
