#!/usr/bin/env bash
# A local missive cluster: two (or more) nodes sharing one PostgreSQL database
# and one Redis, behind nginx (round robin, WebSocket upgrade, no stickiness).
#
#   deploy/cluster.sh                   start, print the URL, run until Ctrl-C, then stop everything
#   deploy/cluster.sh --background      start, wait until ready, return (state in --state-dir)
#   deploy/cluster.sh --stop            stop what a --background run started
#
# Options: --state-dir DIR (default ${TMPDIR:-/tmp}/missive-cluster), --no-build,
# --fresh-db (drop and recreate the database first), --clean-on-stop (drop the
# database and delete the Redis keys of REDIS_PREFIX when stopping).
#
# Environment (defaults in brackets): LB_PORT [8080], NODE_PORTS ["8081 8082"],
# CLUSTER_DB [missive_cluster], REDIS_PREFIX [missive-cluster], PGHOST
# [127.0.0.1], PGPORT [5432], PGUSER [postgres], REDIS_HOST [127.0.0.1],
# REDIS_PORT [6379], MISSIVE_BIN [$CARGO_TARGET_DIR/release/missive],
# READY_TIMEOUT [30] seconds. LOG_LEVEL, SEND_RATE_LIMIT, AUTH_RATE_LIMIT,
# DATABASE_POOL_SIZE… are passed to the nodes as they are.
#
# PostgreSQL and Redis are started when they do not answer on their local
# ports, and stopped again by the same run. Children run in their own
# sessions (setsid), so a terminal's Ctrl-C reaches only this script, which
# stops them in order (nginx first, then the nodes with SIGTERM). Nodes run with AUTH_MODE=required:
# behind a proxy on the same host every peer is loopback (see README).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE=foreground
STATE_DIR="${TMPDIR:-/tmp}/missive-cluster"
BUILD=1
FRESH_DB=0
CLEAN_ON_STOP=0

while (($#)); do
  case "$1" in
    --background) MODE=background ;;
    --stop) MODE=stop ;;
    --state-dir) STATE_DIR="${2:?--state-dir needs a directory}"; shift ;;
    --no-build) BUILD=0 ;;
    --fresh-db) FRESH_DB=1 ;;
    --clean-on-stop) CLEAN_ON_STOP=1 ;;
    -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

LB_PORT="${LB_PORT:-8080}"
NODE_PORTS="${NODE_PORTS:-8081 8082}"
CLUSTER_DB="${CLUSTER_DB:-missive_cluster}"
REDIS_PREFIX="${REDIS_PREFIX:-missive-cluster}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
REDIS_PORT="${REDIS_PORT:-6379}"
READY_TIMEOUT="${READY_TIMEOUT:-30}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
MISSIVE_BIN="${MISSIVE_BIN:-$TARGET_DIR/release/missive}"
export PGHOST PGPORT PGUSER

log() { echo "cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- stopping

# Is `pid` alive and running `name` (guards against a recycled pid)?
pid_is() {
  local pid="$1" name="$2" exe
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "$exe" == *"$name"* ]]
}

# Sends SIGTERM to the process recorded in pid file `$1` (expected binary `$2`),
# waits up to 20 s for it to go, then SIGKILLs it.
stop_pidfile() {
  local file="$1" name="$2" pid deadline
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if pid_is "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while pid_is "$pid" "$name" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if pid_is "$pid" "$name"; then
      log "$(basename "$file" .pid) (pid $pid) ignored SIGTERM for 20 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    # Reap it when it is our child (foreground mode); harmless otherwise.
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Stops everything recorded in the state directory, in reverse start order.
stop_all() {
  [[ -d "$STATE_DIR" ]] || return 0
  local settings="$STATE_DIR/settings"
  if [[ -f "$settings" ]]; then
    # shellcheck source=/dev/null
    source "$settings"
  fi
  stop_pidfile "$STATE_DIR/nginx.pid" nginx
  local file
  for file in "$STATE_DIR"/node-*.pid; do
    if [[ -e "$file" ]]; then stop_pidfile "$file" missive; fi
  done
  if [[ "${CLEAN_ON_STOP:-0}" == 1 ]]; then
    log "dropping database $CLUSTER_DB and Redis keys $REDIS_PREFIX:*"
    psql -d postgres -qAtc "DROP DATABASE IF EXISTS \"$CLUSTER_DB\" WITH (FORCE)" >/dev/null 2>&1 \
      || log "warning: could not drop database $CLUSTER_DB"
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "$REDIS_PREFIX:*" 2>/dev/null \
      | while read -r key; do redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL "$key" >/dev/null; done \
      || log "warning: could not delete the Redis keys $REDIS_PREFIX:*"
  fi
  stop_pidfile "$STATE_DIR/redis.pid" redis-server
  if [[ -f "$STATE_DIR/postgres-started" ]]; then
    log "stopping the PostgreSQL cluster this script started"
    pg_ctlcluster --skip-systemctl-redirect "$(cat "$STATE_DIR/postgres-started")" main stop \
      || log "warning: could not stop PostgreSQL"
    rm -f "$STATE_DIR/postgres-started"
  fi
  rm -f "$settings"
}

if [[ "$MODE" == stop ]]; then
  stop_all
  log "stopped"
  exit 0
fi

# ---------------------------------------------------------------- checks

[[ "$CLUSTER_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "CLUSTER_DB must match [a-z_][a-z0-9_]* (got $CLUSTER_DB)"
[[ "$REDIS_PREFIX" =~ ^[A-Za-z0-9_.-]+$ ]] || die "REDIS_PREFIX must match [A-Za-z0-9_.-]+ (got $REDIS_PREFIX)"
read -r -a PORTS <<<"$NODE_PORTS"
((${#PORTS[@]} >= 1)) || die "NODE_PORTS is empty"
for port in "$LB_PORT" "${PORTS[@]}"; do
  [[ "$port" =~ ^[0-9]+$ ]] || die "not a port: $port"
  if (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    die "port $port is already in use (set LB_PORT / NODE_PORTS, or stop the other cluster: $0 --stop)"
  fi
done
for tool in curl psql redis-cli; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
if [[ -f "$STATE_DIR/settings" ]]; then
  die "$STATE_DIR holds a running cluster (stop it first: $0 --stop --state-dir $STATE_DIR)"
fi
mkdir -p "$STATE_DIR/nginx-tmp"

# From here on, a failure stops whatever was started; a successful
# --background start disarms this.
on_exit() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Remember how to stop (sourced by --stop).
cat >"$STATE_DIR/settings" <<EOF
CLUSTER_DB=$CLUSTER_DB
REDIS_PREFIX=$REDIS_PREFIX
REDIS_HOST=$REDIS_HOST
REDIS_PORT=$REDIS_PORT
CLEAN_ON_STOP=$CLEAN_ON_STOP
EOF

# ---------------------------------------------------------------- services

if ! command -v nginx >/dev/null && ! [[ -x /usr/sbin/nginx ]]; then
  log "installing nginx (Debian's nginx-light)"
  command -v apt-get >/dev/null || die "nginx is missing and apt-get is not available"
  apt-get install -y --no-install-recommends nginx-light >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends nginx-light >/dev/null 2>&1; } \
    || die "could not install nginx"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

if ! pg_isready -h "$PGHOST" -p "$PGPORT" -q; then
  [[ "$PGHOST" == 127.0.0.1 || "$PGHOST" == localhost ]] || die "PostgreSQL at $PGHOST:$PGPORT does not answer"
  version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -1)"
  [[ -n "$version" ]] || die "PostgreSQL does not answer and no local cluster is installed"
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || die "could not start PostgreSQL"
  echo "$version" >"$STATE_DIR/postgres-started"
  deadline=$((SECONDS + READY_TIMEOUT))
  until pg_isready -h "$PGHOST" -p "$PGPORT" -q; do
    ((SECONDS < deadline)) || die "PostgreSQL did not become ready within ${READY_TIMEOUT}s"
    sleep 0.2
  done
fi

if ! redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  [[ "$REDIS_HOST" == 127.0.0.1 || "$REDIS_HOST" == localhost ]] || die "Redis at $REDIS_HOST:$REDIS_PORT does not answer"
  command -v redis-server >/dev/null || die "Redis does not answer and redis-server is not installed"
  log "starting Redis on $REDIS_HOST:$REDIS_PORT (no persistence; stopped with the cluster)"
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --logfile "$STATE_DIR/redis.log" </dev/null &
  echo $! >"$STATE_DIR/redis.pid"
  deadline=$((SECONDS + READY_TIMEOUT))
  until redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "Redis did not become ready within ${READY_TIMEOUT}s"
    sleep 0.2
  done
fi

if [[ "$FRESH_DB" == 1 ]]; then
  psql -d postgres -qAtc "DROP DATABASE IF EXISTS \"$CLUSTER_DB\" WITH (FORCE)" >/dev/null
fi
if [[ "$(psql -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname = '$CLUSTER_DB'")" != 1 ]]; then
  log "creating database $CLUSTER_DB"
  psql -d postgres -qAtc "CREATE DATABASE \"$CLUSTER_DB\"" >/dev/null
fi

# ---------------------------------------------------------------- nodes

if [[ "$BUILD" == 1 ]]; then
  # The same package set as `make bench` and cluster-test: one feature
  # resolution, so switching between them rebuilds nothing.
  log "building the release binaries (cargo build --release -p missive-server -p missive-bench)"
  (cd "$ROOT" && cargo build --release -p missive-server -p missive-bench)
fi
[[ -x "$MISSIVE_BIN" ]] || die "no server binary at $MISSIVE_BIN (build it, or set MISSIVE_BIN)"

DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$CLUSTER_DB"
REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT"
for port in "${PORTS[@]}"; do
  log "starting node on 127.0.0.1:$port (log: $STATE_DIR/node-$port.log)"
  # nginx on this host forwards the client's address in X-Forwarded-For.
  PORT="$port" BIND=127.0.0.1 AUTH_MODE=required TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1}" \
    DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" REDIS_PREFIX="$REDIS_PREFIX" \
    setsid "$MISSIVE_BIN" </dev/null >"$STATE_DIR/node-$port.log" 2>&1 &
  echo $! >"$STATE_DIR/node-$port.pid"
done

# Polls `url` until it answers 200, failing early when process `pid` is gone.
wait_ready() {
  local url="$1" pid="$2" name="$3" deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$STATE_DIR/$name.log" >&2 || true
      die "$name exited during startup"
    fi
    ((SECONDS < deadline)) || die "$url was not ready within ${READY_TIMEOUT}s"
    sleep 0.1
  done
}
for port in "${PORTS[@]}"; do
  wait_ready "http://127.0.0.1:$port/readyz" "$(cat "$STATE_DIR/node-$port.pid")" "node-$port"
done

# ---------------------------------------------------------------- load balancer

upstreams=""
for port in "${PORTS[@]}"; do
  upstreams+="        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
done
template="$ROOT/deploy/nginx-cluster.conf.template"
conf="$STATE_DIR/nginx.conf"
awk -v state="$STATE_DIR" -v lb="$LB_PORT" -v ups="${upstreams%$'\n'}" '
  { gsub(/@STATE_DIR@/, state); gsub(/@LB_PORT@/, lb) }
  /^@UPSTREAM_SERVERS@$/ { print ups; next }
  { print }' "$template" >"$conf"
"$NGINX" -t -q -p "$STATE_DIR" -c "$conf" -e "$STATE_DIR/nginx-error.log" \
  || die "nginx refused $conf"
log "starting nginx on 127.0.0.1:$LB_PORT"
# nginx writes its own pid file (the master's pid) to $STATE_DIR/nginx.pid.
setsid "$NGINX" -p "$STATE_DIR" -c "$conf" -e "$STATE_DIR/nginx-error.log" -g 'daemon off;' \
  </dev/null >"$STATE_DIR/nginx.log" 2>&1 &
nginx_pid=$!
deadline=$((SECONDS + READY_TIMEOUT))
until [[ -s "$STATE_DIR/nginx.pid" ]]; do
  kill -0 "$nginx_pid" 2>/dev/null || { cat "$STATE_DIR/nginx-error.log" >&2 || true; die "nginx exited"; }
  ((SECONDS < deadline)) || die "nginx did not start within ${READY_TIMEOUT}s"
  sleep 0.1
done
wait_ready "http://127.0.0.1:$LB_PORT/readyz" "$nginx_pid" nginx

URL="http://127.0.0.1:$LB_PORT"
log "ready: $URL (nodes on ${PORTS[*]}, database $CLUSTER_DB, Redis prefix $REDIS_PREFIX, AUTH_MODE=required)"
echo "$URL"

if [[ "$MODE" == background ]]; then
  # Leave everything running; `--stop` finds it in the state directory.
  trap - EXIT INT TERM
  log "running in the background; stop with: $0 --stop --state-dir $STATE_DIR"
  exit 0
fi

log "Ctrl-C stops the cluster; logs are in $STATE_DIR"
# Wait for a signal; report nodes that die meanwhile (the cluster keeps serving).
declare -A reported=()
while true; do
  for port in "${PORTS[@]}"; do
    pid="$(cat "$STATE_DIR/node-$port.pid" 2>/dev/null || true)"
    if [[ -z "${reported[$port]:-}" ]] && ! pid_is "$pid" missive; then
      log "node on port $port (pid $pid) is gone; the other nodes keep serving"
      reported[$port]=1
    fi
  done
  if ! kill -0 "$nginx_pid" 2>/dev/null; then
    die "nginx exited (see $STATE_DIR/nginx-error.log)"
  fi
  sleep 1 &
  wait $! || true
done
