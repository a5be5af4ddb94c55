#!/usr/bin/env bash
# make bench: start a throwaway authenticator on :5900 and safekeeper on :5901
# against fresh databases, measure each, print a table per service and one
# combined table, and write target/bench/results.json (authenticator) and
# target/bench/safekeeper.json.
# `BENCH_ONLY=authenticator|safekeeper|user-directory make bench`
# runs one part (the safekeeper part still starts the authenticator it
# trusts). Extra arguments go to the bench binary, e.g. `--seconds 5 --concurrency 8`.
source "$(dirname "$0")/lib.sh"

ONLY="${BENCH_ONLY:-all}"
case "$ONLY" in
  all | authenticator | safekeeper | user-directory) ;;
  *) die "BENCH_ONLY must be authenticator, safekeeper or user-directory, not '$ONLY'" ;;
esac

AUTH_PORT=5900
SK_PORT=5901
AUTH_URL="http://127.0.0.1:$AUTH_PORT"
SK_URL="http://127.0.0.1:$SK_PORT"
AUTH_DB=authenticator_bench
SK_DB=safekeeper_bench
AUTH_PIDFILE="$STATE_DIR/pids/authenticator-bench.pid"
SK_PIDFILE="$STATE_DIR/pids/safekeeper-bench.pid"
AUTH_OUT="$ROOT/target/bench/results.json"
SK_OUT="$ROOT/target/bench/safekeeper.json"
BENCH="$CARGO_TARGET_DIR/release/bench"

recreate_database() {
  say "recreating the database $1"
  psql "$PGHOST_URL/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
  ensure_database "$1"
}

ensure_postgres
ensure_broker
recreate_database "$AUTH_DB"
[ "$ONLY" = authenticator ] || recreate_database "$SK_DB"

say "building the authenticator, the safekeeper and the bench (release)"
(cd "$ROOT" && cargo build --release --locked -p authenticator -p safekeeper -p bench -q)

mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids" "$STATE_DIR/bench"
stop_pidfile "$SK_PIDFILE"
stop_pidfile "$AUTH_PIDFILE"
trap 'stop_pidfile "$SK_PIDFILE"; stop_pidfile "$AUTH_PIDFILE"' EXIT

say "starting the authenticator on :$AUTH_PORT (bcrypt cost 12)"
(
  cd "$ROOT"
  PORT="$AUTH_PORT" DATABASE_URL="$PGHOST_URL/$AUTH_DB" KAFKA_BROKERS="$KAFKA_BROKERS" \
    BCRYPT_COST=12 AUTH_ISSUER="$AUTH_URL" SAFEKEEPER_URL="$SK_URL" \
    BOOTSTRAP_ADMIN_USERNAME=admin BOOTSTRAP_ADMIN_PASSWORD='Admin-Passw0rd!' \
    STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
    nohup "$CARGO_TARGET_DIR/release/authenticator" \
    >"$STATE_DIR/logs/authenticator-bench.log" 2>&1 &
  echo $! >"$AUTH_PIDFILE"
)
wait_ready authenticator-bench "$AUTH_URL/readyz" 90

OUTS=()
if [ "$ONLY" != safekeeper ]; then
  say "measuring the authenticator"
  "$BENCH" authenticator --url "$AUTH_URL" --out "$AUTH_OUT" "$@"
  say "results written to $AUTH_OUT"
  OUTS+=("$AUTH_OUT")
fi

if [ "$ONLY" != authenticator ]; then
  say "starting the safekeeper on :$SK_PORT"
  (
    cd "$ROOT"
    PORT="$SK_PORT" DATABASE_URL="$PGHOST_URL/$SK_DB" KAFKA_BROKERS="$KAFKA_BROKERS" \
      AUTHENTICATOR_URL="$AUTH_URL" AUTH_ISSUER="$AUTH_URL" SAFEKEEPER_ISSUER="$SK_URL" \
      CONSUMER_GROUP="safekeeper-bench-$(date +%s)-$RANDOM" \
      STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
      nohup "$CARGO_TARGET_DIR/release/safekeeper" \
      >"$STATE_DIR/logs/safekeeper-bench.log" 2>&1 &
    echo $! >"$SK_PIDFILE"
  )
  wait_ready safekeeper-bench "$SK_URL/readyz" 90

  say "measuring the safekeeper"
  "$BENCH" safekeeper --auth-url "$AUTH_URL" --sk-url "$SK_URL" --out "$SK_OUT" "$@"
  say "results written to $SK_OUT"
  OUTS+=("$SK_OUT")
fi

if [ "${#OUTS[@]}" -gt 0 ]; then
  say "all results"
  "$BENCH" table "${OUTS[@]}"
fi

if [ "$ONLY" = all ] || [ "$ONLY" = user-directory ]; then
  bash "$ROOT/services/user-directory/bench.sh"
fi
