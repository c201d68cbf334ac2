#!/usr/bin/env bash
# Runs the Bruno collection (docs/bruno) against a fresh debug server on a
# free port with its own SQLite file. Installs Bruno's CLI (`bru`, npm
# package @usebruno/cli) when missing. Usage: scripts/bruno.sh [missive-binary]
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/missive}"
[[ -x "$bin" ]] || { echo "no missive binary at $bin (cargo build -p missive-server)" >&2; exit 1; }
if ! command -v bru >/dev/null 2>&1; then
  echo "installing Bruno's CLI (@usebruno/cli)"
  npm install -g --no-fund --no-audit @usebruno/cli >/dev/null
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATABASE_URL="sqlite://$work/bruno.db" BIND=127.0.0.1 PORT="$port" AUTH_RATE_LIMIT=0 LOOKUP_RATE_LIMIT=0 LOG_LEVEL=WARN \
  "$bin" >"$work/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
(cd docs/bruno && bru run --env local --env-var "baseUrl=http://127.0.0.1:$port")
