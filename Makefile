# missive — common tasks. `make help` lists them.

CARGO ?= cargo

.PHONY: help run run-debug build test lint fmt fmt-check ci clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## Run the server on :8080 with data in data/missive.db (release build)
	$(CARGO) run --release

run-debug: ## Run a debug build with DEBUG logs
	LOG_LEVEL=DEBUG $(CARGO) run

build: ## Build everything (release)
	$(CARGO) build --release --workspace

test: ## Run the whole test suite (unit + integration, real SQLite files and sockets)
	$(CARGO) test --workspace --all-targets

lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

ci: lint test ## What CI runs

clean: ## Remove build output and the local database
	$(CARGO) clean
	rm -rf data
