#!/usr/bin/env bash
# `make cluster-test`: starts a two-node cluster (PostgreSQL + Redis + nginx)
# in the background on free ports with a fresh database and Redis prefix,
# runs `missive-bench cluster-check` through nginx (chat across both nodes,
# SIGKILL of the recipient's node, resume with since=), and stops everything
# it started — on success, failure or Ctrl-C.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
STATE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/missive-cluster-test.XXXXXX")"

# A port nobody listens on (checked, then used at once by cluster.sh, which
# refuses a port taken in between).
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 20000))
    if ! (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "cluster-test: no free port found" >&2
  return 1
}

LB_PORT="$(free_port)"
NODE_PORTS="$(free_port) $(free_port)"
export LB_PORT NODE_PORTS
export CLUSTER_DB="missive_cluster_test_$$"
export REDIS_PREFIX="missive-cluster-test-$$"
export LOG_LEVEL="${LOG_LEVEL:-INFO}"

passed=0
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ "$passed" != 1 ]]; then
    for log in "$STATE_DIR"/node-*.log "$STATE_DIR"/nginx-error.log; do
      [[ -s "$log" ]] || continue
      echo "---- last lines of $(basename "$log")" >&2
      tail -n 30 "$log" >&2
    done
  fi
  "$ROOT/deploy/cluster.sh" --stop --state-dir "$STATE_DIR" || status=1
  rm -rf "$STATE_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "cluster-test: building the release binaries"
(cd "$ROOT" && cargo build --release -p missive-server -p missive-bench)

"$ROOT/deploy/cluster.sh" --background --no-build --fresh-db --clean-on-stop --state-dir "$STATE_DIR"

"$TARGET_DIR/release/missive-bench" --max-seconds 120 cluster-check \
  --url "http://127.0.0.1:$LB_PORT" --state-dir "$STATE_DIR" --messages 50
passed=1
echo "cluster-test: passed"
