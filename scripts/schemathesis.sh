#!/usr/bin/env bash
# Checks the running server against its own OpenAPI document with
# schemathesis: starts a debug server on a free port with its own SQLite file
# (rate limits off), registers a user whose bearer token the run uses, and
# runs `schemathesis run` with every check on `/openapi.json`. Any failure
# fails the script; the server is stopped on exit. Installs schemathesis
# (PyPI) when missing.
#
# Usage: scripts/schemathesis.sh [missive-binary]
# Environment: MAX_EXAMPLES (default 20), SCHEMATHESIS_SEED (default 1),
# SCHEMATHESIS_ARGS (extra arguments for `schemathesis run`).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/missive}"
[[ -x "$bin" ]] || { echo "no missive binary at $bin (cargo build -p missive-server)" >&2; exit 1; }
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "installing schemathesis (PyPI)"
  python3 -m pip install --quiet schemathesis
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATABASE_URL="sqlite://$work/schemathesis.db" BIND=127.0.0.1 PORT="$port" \
  SEND_RATE_LIMIT=0 AUTH_RATE_LIMIT=0 LOOKUP_RATE_LIMIT=0 LOG_LEVEL=WARN \
  "$bin" >"$work/server.log" 2>&1 &
server=$!
cleanup() {
  status=$?
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [[ $status -ne 0 && -s "$work/server.log" ]]; then
    echo "--- server log (last 50 lines) ---" >&2
    tail -n 50 "$work/server.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# A user for the bearer token, and a second one so that 1:1 sends can succeed.
token="$(curl -fsS -X POST "$base/register" -H 'Content-Type: application/json' \
  -d '{"phoneNumber": "+1234567890", "displayName": "Ada"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
curl -fsS -X POST "$base/register" -H 'Content-Type: application/json' \
  -d '{"phoneNumber": "+0987654321"}' >/dev/null

# Word splitting of SCHEMATHESIS_ARGS is wanted.
# shellcheck disable=SC2086
schemathesis --config-file scripts/schemathesis.toml run "$base/openapi.json" \
  --checks all \
  --max-examples "${MAX_EXAMPLES:-20}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 \
  --header "Authorization: Bearer $token" \
  ${SCHEMATHESIS_ARGS:-}
