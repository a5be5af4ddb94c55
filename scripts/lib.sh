# Shared helpers for the make targets. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PG_PORT="${PG_PORT:-5432}"
PGHOST_URL="${PGHOST_URL:-postgres://postgres@127.0.0.1:$PG_PORT}"
# The local PostgreSQL is on loopback: no TLS (libpq would otherwise
# negotiate it, since Debian's server has ssl on, and encrypt every query:
# ~5 % of the CPU under `make bench`). A deployment sets sslmode in its
# DATABASE_URL (verify-full across a network).
export PGSSLMODE="${PGSSLMODE:-disable}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
TOPICS=(iam.user.v1 iam.user-role.v1 directory.membership.v1 directory.organization.v1 access.restriction.v1 oauth.revocation.v1 task.v1 accounting.transaction.v1 notification.v1)
# service name, port, database. Add a line as each service arrives.
PORT_OFFSET="${PORT_OFFSET:-0}"
DB_SUFFIX="${DB_SUFFIX:-}"
PROFILE="${PROFILE:-release}"
SERVICES=(
  "authenticator $((5000 + PORT_OFFSET)) authenticator$DB_SUFFIX"
  "safekeeper $((5001 + PORT_OFFSET)) safekeeper$DB_SUFFIX"
  "access-rule $((5005 + PORT_OFFSET)) access_rule$DB_SUFFIX"
  "user-directory $((5003 + PORT_OFFSET)) user_directory$DB_SUFFIX"
  "task $((5002 + PORT_OFFSET)) task$DB_SUFFIX"
  "accounting $((5006 + PORT_OFFSET)) accounting$DB_SUFFIX"
  "analytics $((5007 + PORT_OFFSET)) analytics$DB_SUFFIX"
  "notifier $((5008 + PORT_OFFSET)) notifier$DB_SUFFIX"
)
# The development SMTP sink the notifier sends to (`make up`; the mail it
# accepts is printed to .state/logs/smtp-sink.log).
SMTP_SINK_PORT="${SMTP_SINK_PORT:-$((2525 + PORT_OFFSET))}"
# service_port NAME: the port NAME listens on.
service_port() {
  local s n p
  for s in "${SERVICES[@]}"; do read -r n p _ <<<"$s"; [ "$n" = "$1" ] && echo "$p" && return 0; done
  return 1
}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The local broker, tansu, built with cargo once. Only what the platform
# uses: its sqlite storage (`--storage-engine sqlite://tansu.db`) is the
# `libsql` feature; no S3/memory (dynostore), PostgreSQL or lake engines.
# `ensure_tansu --background` starts the build and returns at once (log in
# .state/logs/tansu-install.log), so that it runs beside the services' build;
# a later `ensure_tansu` waits for it. The build has a target directory of its
# own (cargo's temporary one), so neither build waits for the other's lock.
ensure_tansu() {
  export PATH="$HOME/.cargo/bin:$PATH"
  command -v tansu >/dev/null 2>&1 && return 0
  local version="${TANSU_VERSION:-0.6.0}" features="${TANSU_FEATURES:-libsql}"
  local log="$STATE_DIR/logs/tansu-install.log" pidf="$STATE_DIR/pids/tansu-install.pid" pid=""
  # Optimisation level 1 (TANSU_OPT_LEVEL): the broker carries test and demo
  # traffic here, and level 1 builds it in about half the CPU time of 3.
  local install=(env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_OPT_LEVEL="${TANSU_OPT_LEVEL:-1}"
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_INCREMENTAL=false
    cargo install --locked tansu --version "$version" --no-default-features --features "$features")
  mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids"
  [ -f "$pidf" ] && pid="$(cat "$pidf")" && ! kill -0 "$pid" 2>/dev/null && pid="" && rm -f "$pidf"
  if [ "${1:-}" = --background ]; then
    if [ -z "$pid" ]; then
      say "building the tansu broker $version in the background (once; log: $log)"
      nohup "${install[@]}" >"$log" 2>&1 &
      echo $! >"$pidf"
    fi
    return 0
  fi
  if [ -n "$pid" ]; then
    say "waiting for the tansu broker's build (log: $log)"
    wait "$pid" 2>/dev/null || true # when this shell started it
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    rm -f "$pidf"
    command -v tansu >/dev/null 2>&1 || { tail -n 20 "$log" >&2; die "the tansu build failed; see $log"; }
    return 0
  fi
  say "building the tansu broker $version with cargo (once; 20 to 25 minutes on 2 cores)"
  "${install[@]}"
}

# Debian's headless Chromium and its driver, for the safekeeper's browser
# test: installed when missing and this is a Debian machine we may install
# on (root). True when both are there afterwards.
ensure_browser() {
  have_browser() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
  have_browser && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium and chromium-driver for the browser test (once)"
    mkdir -p "$STATE_DIR/logs"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
      >"$STATE_DIR/logs/browser-install.log" 2>&1 || true
  fi
  have_browser
}

ensure_postgres() {
  if ! pg_isready -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; then
    say "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null 2>&1; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    else
      die "PostgreSQL is not running on 127.0.0.1:$PG_PORT and pg_ctlcluster is not here to start it"
    fi
    for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p "$PG_PORT" -q && break; sleep 0.2; done
  fi
  pg_isready -h 127.0.0.1 -p "$PG_PORT" -q || die "PostgreSQL did not come up"
}

ensure_database() {
  local db="$1"
  if ! psql "$PGHOST_URL/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
    psql "$PGHOST_URL/postgres" -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
}

# Starts the local broker (tansu, durable sqlite storage) unless something
# already listens on the Kafka port, then creates the platform's topics.
# BROKER_NAME names its data folder, log and pid file (`tansu` for the
# platform of `make up`, `tansu-test-<port>` for the tests' own broker).
ensure_broker() {
  local name="${BROKER_NAME:-tansu}"
  if ! port_open "$KAFKA_PORT"; then
    ensure_tansu
    say "starting the tansu broker on $KAFKA_BROKERS"
    mkdir -p "$STATE_DIR/$name" "$STATE_DIR/logs" "$STATE_DIR/pids"
    (
      cd "$STATE_DIR/$name"
      # A relative sqlite path: tansu mangles absolute ones.
      nohup tansu broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine sqlite://tansu.db >"$STATE_DIR/logs/$name.log" 2>&1 &
      echo $! >"$STATE_DIR/pids/$name.pid"
    )
    for _ in $(seq 1 100); do port_open "$KAFKA_PORT" && break; sleep 0.1; done
    port_open "$KAFKA_PORT" || die "tansu did not start; see $STATE_DIR/logs/$name.log"
  fi
  if command -v tansu >/dev/null 2>&1; then
    for t in "${TOPICS[@]}"; do
      tansu topic create "$t" --broker "tcp://$KAFKA_BROKERS" --partitions 3 >/dev/null 2>&1 || true
    done
  fi
}

# wait_ready NAME URL SECONDS
wait_ready() {
  local name="$1" url="$2" secs="${3:-60}"
  for _ in $(seq 1 $((secs * 5))); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "$name did not become ready at $url; see $STATE_DIR/logs/$name.log"
}

# json_field FIELD: reads JSON on stdin, prints one top-level field.
# session_token AUTH_URL USERNAME PASSWORD: a session token from the
# authenticator's login. A 503 (its password hashing at capacity, as on a
# machine busy with builds) is tried again a second later, as its
# Retry-After asks, for up to a minute.
session_token() {
  local out code
  for _ in $(seq 1 60); do
    out=$(curl -sS -w '\n%{http_code}' -X POST "$1/v1/login" -H 'Content-Type: application/json' \
      -d "{\"username\":\"$2\",\"password\":\"$3\"}") || { sleep 1; continue; }
    code="${out##*$'\n'}"
    case "$code" in
      200) printf '%s' "${out%$'\n'*}" | json_field session_token; return 0 ;;
      503) sleep 1 ;;
      *) printf 'logging in %s answered %s: %s\n' "$2" "$code" "${out%$'\n'*}" >&2; return 1 ;;
    esac
  done
  printf 'logging in %s: the authenticator stayed unavailable\n' "$2" >&2
  return 1
}
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[sys.argv[1]] if isinstance(v, dict) else v[0][sys.argv[1]])' "$1"; }

# stop_pidfile FILE...: SIGTERM to each process named, all at once, then
# waits for them: a service drains for SHUTDOWN_DRAIN_SECONDS (5) and gives
# requests in flight 10 s more; SIGKILL after 20 s.
stop_pidfile() {
  local f pid pids=()
  for f in "$@"; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$@"
}
