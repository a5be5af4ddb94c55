#!/usr/bin/env bash
# make bench: start a throwaway authenticator on :5900 against a fresh
# database, measure it, print a table and write target/bench/results.json.
# Extra arguments go to the bench binary, e.g. `--seconds 5 --concurrency 8`.
source "$(dirname "$0")/lib.sh"

PORT_BENCH=5900
URL="http://127.0.0.1:$PORT_BENCH"
DB=authenticator_bench
PIDFILE="$STATE_DIR/pids/authenticator-bench.pid"
OUT="$ROOT/target/bench/results.json"

ensure_postgres
ensure_broker
say "recreating the database $DB"
psql "$PGHOST_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
ensure_database "$DB"

say "building the authenticator and the bench (release)"
(cd "$ROOT" && cargo build --release --locked -p authenticator -p bench -q)

mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids" "$STATE_DIR/bench"
stop_pidfile "$PIDFILE"
trap 'stop_pidfile "$PIDFILE"' EXIT
say "starting the authenticator on :$PORT_BENCH (bcrypt cost 12)"
(
  cd "$ROOT"
  PORT="$PORT_BENCH" DATABASE_URL="$PGHOST_URL/$DB" KAFKA_BROKERS="$KAFKA_BROKERS" \
    BCRYPT_COST=12 STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
    nohup "$CARGO_TARGET_DIR/release/authenticator" \
    >"$STATE_DIR/logs/authenticator-bench.log" 2>&1 &
  echo $! >"$PIDFILE"
)
wait_ready authenticator-bench "$URL/readyz" 90

say "measuring"
"$CARGO_TARGET_DIR/release/bench" authenticator --url "$URL" --out "$OUT" "$@"
say "results written to $OUT"
