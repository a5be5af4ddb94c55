#!/usr/bin/env bash
# make soak: the bench crate's mixed load (`bench soak`,
# crates/bench/src/soak.rs) across the five services for 10 minutes, on a
# platform of its own: fresh *_soak databases on the machine's PostgreSQL,
# its own broker (:9992), the five services on ports 6000-6005 (release
# build) with the demo data, and retention windows short enough to be seen
# pruning within the run. Prints a table per minute and the verdict, writes
# target/bench/soak.json, and fails when a criterion fails (README, "Soak").
# Everything it started is stopped at the end; the services' logs stay in
# .state/soak/logs.
#
#   SOAK_SECONDS=600      measured seconds, after SOAK_WARM_UP=120
#   SOAK_RATE_SCALE=1     multiplies every route's rate
#   SOAK_KAFKA_FETCH_WAIT_MS=500  the consumers' fetch wait (below)
#   SOAK_VACUUM_SECONDS=60  when the server runs without autovacuum, how often
#                         the soak's databases are vacuumed and analyzed in its
#                         stead (0: never)
#   SOAK_STATE_DIR, SOAK_PORT_OFFSET, SOAK_KAFKA_PORT: where the platform
#                         lives (.state/soak, ports 6000-6005, broker :9992)
# Extra arguments go to `bench soak`.
source "$(dirname "$0")/lib.sh"

# The broker's build, if one is running, belongs to the main state
# directory: wait for it there rather than start a second one.
ensure_tansu

export STATE_DIR="${SOAK_STATE_DIR:-$ROOT/.state/soak}"
export PORT_OFFSET="${SOAK_PORT_OFFSET:-1000}"
export DB_SUFFIX=_soak
export KAFKA_PORT="${SOAK_KAFKA_PORT:-9992}" BROKER_NAME=tansu-soak
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export PROFILE=release
# Again, for the services' ports and databases of this platform.
source "$ROOT/scripts/lib.sh"

# Retention, every 30 s, with windows of a minute or so (decimals of hours
# and days): every pruned table reaches its level within three minutes.
export RETENTION_INTERVAL_SECONDS=30
export OUTBOX_RETENTION_HOURS=0.02        # 72 s after publication
export EXPIRED_GRANT_RETENTION_HOURS=0.01 # 36 s after a code or refresh token expires
export EVENT_RETENTION_DAYS=0.001         # 86.4 s (access-rule's stored events)
export PROVIDER_EVENT_RETENTION_DAYS=0.001 IMPORT_JOB_RETENTION_DAYS=0.001 SAGA_RETENTION_DAYS=0.001
# Tokens of a minute, so that revocation-list entries expire (and are
# pruned) within the run; the soak fetches its tokens again every 20 s.
export ACCESS_TOKEN_TTL_SECONDS=60 REFRESH_TOKEN_TTL_SECONDS=60
# How long the services' consumers let a fetch wait. Their default, 50 ms,
# bounds an event's delay per hop on tansu, which answers a fetch only
# after half of that wait: the idle fetches of the five services then keep
# tansu busy, about 0.45 core of this 2-core machine (measured: tansu 57 %
# of a core at 50 ms, 12 % at 500 ms, the same load). On Apache Kafka a
# waiting fetch costs nothing. The soak measures the services, so it lets
# fetches wait 500 ms (SOAK_KAFKA_FETCH_WAIT_MS=50 soaks `make up`'s setting).
export KAFKA_FETCH_WAIT_MS="${SOAK_KAFKA_FETCH_WAIT_MS:-500}"
# Webhooks on: the soak sends signed ones into the directory's inbox.
export WORKOS_WEBHOOK_SECRET=whsec_soak
# The login throttle's counters, when they live in a shared Redis: this
# run's own.
export THROTTLE_KEY_PREFIX="authenticator-soak:$(date +%s):throttle:"
# The longest window (a code: 60 s to expire, then 36 s) plus two rounds:
# the first minute ending after it is where flatness is measured from.
SETTLE=$((96 + 2 * RETENTION_INTERVAL_SECONDS))

VACUUM_PID=""
stop_all() {
  [ -z "$VACUUM_PID" ] || kill "$VACUUM_PID" 2>/dev/null || true
  bash "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true
}
trap stop_all EXIT
trap "exit 130" INT TERM

stop_all
rm -rf "$STATE_DIR"
mkdir -p "$STATE_DIR/logs"
ensure_postgres
# Fresh databases: row counts and memory start from nothing.
for s in "${SERVICES[@]}"; do
  read -r _ _ db <<<"$s"
  psql "$PGHOST_URL/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done
say "starting the soak platform (ports $((5000 + PORT_OFFSET))-$((5008 + PORT_OFFSET)), broker :$KAFKA_PORT, release build)"
bash "$ROOT/scripts/up.sh" >"$STATE_DIR/logs/up.log" 2>&1 || {
  tail -n 30 "$STATE_DIR/logs/up.log"
  die "the soak platform did not come up; see $STATE_DIR/logs/"
}
# A production server vacuums and analyzes by itself. This machine's may
# not (CI images turn autovacuum off): then nothing reclaims the rows
# retention deletes, and tables that grow from empty keep the statistics of
# empty tables, so the planner picks plans for a handful of rows (the
# directory's member list becomes a nested loop, quadratic in the
# members). The soak then stands in for autovacuum on its own databases.
VACUUM_EVERY="${SOAK_VACUUM_SECONDS:-60}"
if [ "$(psql "$PGHOST_URL/postgres" -tAc 'SHOW autovacuum')" != on ] && [ "$VACUUM_EVERY" -gt 0 ]; then
  say "autovacuum is off on this server: vacuuming and analyzing the *_soak databases every $VACUUM_EVERY s"
  dbs=()
  for s in "${SERVICES[@]}"; do read -r _ _ db <<<"$s"; dbs+=("$db"); done
  (
    trap 'kill $! 2>/dev/null; exit 0' TERM
    while true; do
      sleep "$VACUUM_EVERY" & wait $!
      for db in "${dbs[@]}"; do vacuumdb -q --analyze --dbname="$PGHOST_URL/$db" || true; done
    done
  ) >"$STATE_DIR/logs/vacuum.log" 2>&1 &
  VACUUM_PID=$!
fi
say "building the bench (release)"
(cd "$ROOT" && cargo build --release --locked -q -p bench)

say "soaking for ${SOAK_SECONDS:-600} s after a ${SOAK_WARM_UP:-120} s warm-up"
RUST_LIB_BACKTRACE=0 "$CARGO_TARGET_DIR/release/bench" soak \
  --seconds "${SOAK_SECONDS:-600}" --warm-up "${SOAK_WARM_UP:-120}" --settle "$SETTLE" \
  --rate-scale "${SOAK_RATE_SCALE:-1}" \
  --auth-url "http://127.0.0.1:$(service_port authenticator)" \
  --sk-url "http://127.0.0.1:$(service_port safekeeper)" \
  --task-url "http://127.0.0.1:$(service_port task)" \
  --ud-url "http://127.0.0.1:$(service_port user-directory)" \
  --ar-url "http://127.0.0.1:$(service_port access-rule)" \
  --state-dir "$STATE_DIR" --pg "$PGHOST_URL" --db-suffix "$DB_SUFFIX" \
  --webhook-secret "$WORKOS_WEBHOOK_SECRET" \
  --out "$ROOT/target/bench/soak.json" "$@"
