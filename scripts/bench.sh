#!/usr/bin/env bash
# make bench: start a throwaway authenticator on :5900 and safekeeper on :5901
# against fresh databases, measure each, print a table per service and one
# combined table, and write target/bench/results.json (authenticator) and
# target/bench/safekeeper.json. The task part starts a task service on :5902
# against a fresh task_bench and writes target/bench/task.json. The
# analytics part loads 1,000,000 ledger rows into analytics_bench and loads
# an analytics service on :5907 over HTTP (target/bench/analytics.json); the
# accounting part writes task events on the broker, then starts accounting
# on :5906 on that backlog and measures how fast it applies them
# (target/bench/accounting.json).
# `BENCH_ONLY=authenticator|safekeeper|user-directory|task|access-rule|accounting|analytics make bench`
# runs one part (the safekeeper part still starts the authenticator it
# trusts; the access-rule part starts both, for its producer's token). Extra arguments go to the bench binary, e.g. `--seconds 5 --concurrency 8`.
source "$(dirname "$0")/lib.sh"

ONLY="${BENCH_ONLY:-all}"
case "$ONLY" in
  all | access-rule | authenticator | safekeeper | user-directory | task | accounting | analytics) ;;
  *) die "BENCH_ONLY must be access-rule, authenticator, safekeeper, user-directory, task, accounting or analytics, not '$ONLY'" ;;
esac

# BENCH_PORT_OFFSET moves the services' ports (59xx) and BENCH_DB_SUFFIX
# renames their databases, so that two benches can run on one machine.
PORT_BASE=$((5900 + ${BENCH_PORT_OFFSET:-0}))
DBS="${BENCH_DB_SUFFIX:-}"
AUTH_PORT=$PORT_BASE
SK_PORT=$((PORT_BASE + 1))
AUTH_URL="http://127.0.0.1:$AUTH_PORT"
SK_URL="http://127.0.0.1:$SK_PORT"
AUTH_DB=authenticator_bench$DBS
SK_DB=safekeeper_bench$DBS
AUTH_PIDFILE="$STATE_DIR/pids/authenticator-bench.pid"
SK_PIDFILE="$STATE_DIR/pids/safekeeper-bench.pid"
AUTH_OUT="$ROOT/target/bench/results.json"
SK_OUT="$ROOT/target/bench/safekeeper.json"
BENCH="$CARGO_TARGET_DIR/release/bench"
AR_PORT=$((PORT_BASE + 5))
AR_URL="http://127.0.0.1:$AR_PORT"
AR_DB=access_rule_bench$DBS
AR_PIDFILE="$STATE_DIR/pids/access-rule-bench.pid"
AR_OUT="$ROOT/target/bench/access-rule.json"
AR_USERS=1000000
TASK_PORT=$((PORT_BASE + 2))
TASK_URL="http://127.0.0.1:$TASK_PORT"
TASK_DB=task_bench$DBS
TASK_PIDFILE="$STATE_DIR/pids/task-bench.pid"
TASK_OUT="$ROOT/target/bench/task.json"
run_task() { [ "$ONLY" = all ] || [ "$ONLY" = task ]; }
ACC_PORT=$((PORT_BASE + 6))
ACC_DB=accounting_bench$DBS
ACC_PIDFILE="$STATE_DIR/pids/accounting-bench.pid"
ACC_OUT="$ROOT/target/bench/accounting.json"
# 25,000 tasks: 100,000 task.v1 events, 50,000 ledger entries.
ACC_TASKS="${BENCH_ACCOUNTING_TASKS:-25000}"
AN_PORT=$((PORT_BASE + 7))
AN_DB=analytics_bench$DBS
AN_PIDFILE="$STATE_DIR/pids/analytics-bench.pid"
AN_OUT="$ROOT/target/bench/analytics.json"
run_part() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }

recreate_database() {
  say "recreating the database $1"
  psql "$PGHOST_URL/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
  ensure_database "$1"
}

ensure_postgres
# A broker of its own (BENCH_KAFKA_PORT, default 9292), fresh each run so
# read models start from an empty history, and stopped at the end (an idle
# tansu with a long history still takes a tenth of a core, which later
# measurements would pay for). One on that port this script did not start
# is used as it is.
KAFKA_PORT="${BENCH_KAFKA_PORT:-9292}"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
BROKER_NAME=tansu-bench
BROKER_PIDFILE="$STATE_DIR/pids/tansu-bench.pid"
fresh_broker() {
  stop_pidfile "$BROKER_PIDFILE"
  for _ in $(seq 1 50); do port_open "$KAFKA_PORT" || break; sleep 0.1; done
  port_open "$KAFKA_PORT" || rm -rf "$STATE_DIR/tansu-bench"
  ensure_broker
}
fresh_broker
recreate_database "$AUTH_DB"
[ "$ONLY" = authenticator ] || recreate_database "$SK_DB"
case "$ONLY" in all | access-rule) recreate_database "$AR_DB" ;; esac
! run_task || recreate_database "$TASK_DB"
# analytics_bench is made anew by reports_bench; accounting_bench below.

say "building the authenticator, the safekeeper and the bench (release)"
(cd "$ROOT" && cargo build --release --locked -p authenticator -p safekeeper -p task -p access-rule \
  -p accounting -p analytics -p bench -q &&
  cargo build --release --locked -p analytics --example reports_bench -q)

mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids" "$STATE_DIR/bench"
# No load balancer in front of these: a stop need not drain first.
export SHUTDOWN_DRAIN_SECONDS="${SHUTDOWN_DRAIN_SECONDS:-0}"
stop_pidfile "$TASK_PIDFILE" "$SK_PIDFILE" "$AUTH_PIDFILE" "$AR_PIDFILE" "$ACC_PIDFILE" "$AN_PIDFILE"
trap 'stop_pidfile "$AR_PIDFILE" "$TASK_PIDFILE" "$ACC_PIDFILE" "$AN_PIDFILE" "$SK_PIDFILE" "$AUTH_PIDFILE"; stop_pidfile "$BROKER_PIDFILE"' EXIT

# The login throttle counts in the machine's Redis when one answers (as in
# production with replicas); the bench registers its users from one address,
# so the per-address sign-up limit is lifted here.
BENCH_REDIS_URL=""
if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  BENCH_REDIS_URL=redis://127.0.0.1:6379
fi
say "starting the authenticator on :$AUTH_PORT (bcrypt cost 12, throttle in ${BENCH_REDIS_URL:-memory})"
(
  cd "$ROOT"
  PORT="$AUTH_PORT" DATABASE_URL="$PGHOST_URL/$AUTH_DB" KAFKA_BROKERS="$KAFKA_BROKERS" \
    BCRYPT_COST=12 AUTH_ISSUER="$AUTH_URL" SAFEKEEPER_URL="$SK_URL" \
    REDIS_URL="$BENCH_REDIS_URL" THROTTLE_KEY_PREFIX="bench:$$:" SIGNUP_MAX_PER_ADDRESS=1000000000 \
    BOOTSTRAP_ADMIN_USERNAME=admin BOOTSTRAP_ADMIN_PASSWORD='Admin-Passw0rd!' \
    STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
    nohup "$CARGO_TARGET_DIR/release/authenticator" \
    >"$STATE_DIR/logs/authenticator-bench.log" 2>&1 &
  echo $! >"$AUTH_PIDFILE"
)
wait_ready authenticator-bench "$AUTH_URL/readyz" 90

OUTS=()
if [ "$ONLY" = all ] || [ "$ONLY" = authenticator ] || [ "$ONLY" = user-directory ]; then
  say "measuring the authenticator"
  "$BENCH" authenticator --url "$AUTH_URL" --out "$AUTH_OUT" "$@"
  say "results written to $AUTH_OUT"
  OUTS+=("$AUTH_OUT")
fi

if [ "$ONLY" != authenticator ]; then
  # Access tokens live an hour here: the access-rule part posts all its
  # events with one producer token obtained before it starts.
  say "starting the safekeeper on :$SK_PORT"
  (
    cd "$ROOT"
    PORT="$SK_PORT" DATABASE_URL="$PGHOST_URL/$SK_DB" KAFKA_BROKERS="$KAFKA_BROKERS" \
      AUTHENTICATOR_URL="$AUTH_URL" AUTH_ISSUER="$AUTH_URL" SAFEKEEPER_ISSUER="$SK_URL" \
      CONSUMER_GROUP="safekeeper-bench-$(date +%s)-$RANDOM" ACCESS_TOKEN_TTL_SECONDS=3600 \
      STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
      nohup "$CARGO_TARGET_DIR/release/safekeeper" \
      >"$STATE_DIR/logs/safekeeper-bench.log" 2>&1 &
    echo $! >"$SK_PIDFILE"
  )
  wait_ready safekeeper-bench "$SK_URL/readyz" 90

  if run_part safekeeper || [ "$ONLY" = user-directory ]; then
    say "measuring the safekeeper"
    "$BENCH" safekeeper --auth-url "$AUTH_URL" --sk-url "$SK_URL" --out "$SK_OUT" "$@"
    say "results written to $SK_OUT"
    OUTS+=("$SK_OUT")
  fi
fi

if run_task; then
  say "starting the task service on :$TASK_PORT"
  (
    cd "$ROOT"
    PORT="$TASK_PORT" DATABASE_URL="$PGHOST_URL/$TASK_DB" KAFKA_BROKERS="$KAFKA_BROKERS" \
      SAFEKEEPER_URL="$SK_URL" SAFEKEEPER_ISSUER="$SK_URL" \
      CONSUMER_GROUP="task-bench-$(date +%s)-$RANDOM" \
      STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
      nohup "$CARGO_TARGET_DIR/release/task" \
      >"$STATE_DIR/logs/task-bench.log" 2>&1 &
    echo $! >"$TASK_PIDFILE"
  )
  wait_ready task-bench "$TASK_URL/readyz" 90

  say "measuring the task service"
  "$BENCH" task --auth-url "$AUTH_URL" --sk-url "$SK_URL" --task-url "$TASK_URL" \
    --task-db "$PGHOST_URL/$TASK_DB" --out "$TASK_OUT" "$@"
  say "results written to $TASK_OUT"
  OUTS+=("$TASK_OUT")
  # Done with: its idle consumer's fetches would cost tansu (and the parts
  # after this one) CPU.
  stop_pidfile "$TASK_PIDFILE"
fi

if [ "$ONLY" = all ] || [ "$ONLY" = access-rule ]; then
  # POST /event needs a producer: a client with write:event, created by the
  # bootstrap superuser, and its client-credentials token (an hour long,
  # ACCESS_TOKEN_TTL_SECONDS above) given to the bench in BENCH_EVENT_TOKEN.
  say "creating the producer client bench-events at the safekeeper"
  BENCH_ADMIN_SESSION=$(curl -fsS -X POST "$AUTH_URL/v1/login" -H 'Content-Type: application/json' \
    -d '{"username":"admin","password":"Admin-Passw0rd!"}' | json_field session_token)
  BENCH_ADMIN_TOKEN=""
  for _ in $(seq 1 300); do
    if out=$(curl -fsS -X POST "$SK_URL/v1/authorize" -H "Authorization: Bearer $BENCH_ADMIN_SESSION" \
        -H 'Content-Type: application/json' -d '{"scopes":"admin:client"}' 2>/dev/null); then
      BENCH_ADMIN_TOKEN=$(echo "$out" | json_field access_token); break
    fi
    sleep 0.2
  done
  [ -n "$BENCH_ADMIN_TOKEN" ] || die "the bench safekeeper never learned that admin is a superuser"
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$SK_URL/v1/admin/clients" \
    -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"client_id":"bench-events","name":"Bench events","client_secret":"bench-events-secret-0123456789",
         "grant_types":["client_credentials"],"scopes":["write:event"]}')
  case "$code" in 201 | 409) ;; *) die "creating the client bench-events answered $code" ;; esac
  BENCH_EVENT_TOKEN=$(curl -fsS -X POST "$SK_URL/oauth2/token" -u bench-events:bench-events-secret-0123456789 \
    -d grant_type=client_credentials -d scope=write:event | json_field access_token)
  export BENCH_EVENT_TOKEN

  start_access_rule() {
    (
      cd "$ROOT"
      PORT="$AR_PORT" DATABASE_URL="$PGHOST_URL/$AR_DB" KAFKA_BROKERS="$KAFKA_BROKERS" \
        AUTHENTICATOR_URL="$AUTH_URL" AUTH_ISSUER="$AUTH_URL" \
        SAFEKEEPER_URL="$SK_URL" SAFEKEEPER_ISSUER="$SK_URL" \
        CONSUMER_GROUP="access-rule-bench-$(date +%s)-$RANDOM" \
        STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
        nohup "$CARGO_TARGET_DIR/release/access-rule" \
        >>"$STATE_DIR/logs/access-rule-bench.log" 2>&1 &
      echo $! >"$AR_PIDFILE"
    )
    wait_ready access-rule-bench "$AR_URL/readyz" 90
  }
  say "starting the access-rule service on :$AR_PORT (it creates its tables)"
  : >"$STATE_DIR/logs/access-rule-bench.log"
  start_access_rule

  # u1 .. uN: most clean, some with one flag or cards, 5 % scam-restricted,
  # 2.5 % zip-restricted, 2 % chargeback-restricted, 1 % deactivated.
  say "seeding $AR_USERS users into $AR_DB"
  psql "$PGHOST_URL/$AR_DB" -v ON_ERROR_STOP=1 -q <<SQL
INSERT INTO users (user_id, scam_flags, card_count, zip_count, total_spend_cents,
                   chargeback_cents, scam_restricted_at, zip_restricted_at,
                   chargeback_restricted_at, is_active)
SELECT 'u' || i,
       CASE WHEN i % 20 = 0 THEN 2 WHEN i % 5 = 0 THEN 1 ELSE 0 END,
       i % 4,
       CASE WHEN i % 40 = 3 THEN 3 ELSE LEAST(i % 4, 1) END,
       (i % 4) * 10000,
       CASE WHEN i % 50 = 1 THEN 2000 ELSE 0 END,
       CASE WHEN i % 20 = 0 THEN now() END,
       CASE WHEN i % 40 = 3 THEN now() END,
       CASE WHEN i % 50 = 1 THEN now() END,
       i % 100 <> 7
FROM generate_series(1, $AR_USERS) AS i;
ANALYZE users;
SQL

  # As a replica restarted on a database of a million users: its check cache
  # warms up from the users table before the checks are measured.
  say "restarting the access-rule service; waiting for its check cache to warm up"
  stop_pidfile "$AR_PIDFILE"
  start_access_rule
  for _ in $(seq 1 300); do
    curl -fsS "$AR_URL/metrics" 2>/dev/null | grep -q '^access_rule_check_cache_warm{.*} 1$' && break
    sleep 0.5
  done
  curl -fsS "$AR_URL/metrics" | grep '^access_rule_check_cache_' || true

  say "measuring the access-rule service"
  "$BENCH" access-rule --url "$AR_URL" --users "$AR_USERS" --out "$AR_OUT" "$@"
  say "results written to $AR_OUT"
  OUTS+=("$AR_OUT")
  stop_pidfile "$AR_PIDFILE"
fi

# start_popug NAME PORT DB PIDFILE: accounting or analytics, trusting the
# bench safekeeper, in a consumer group of its own.
start_popug() {
  (
    cd "$ROOT"
    PORT="$2" DATABASE_URL="$PGHOST_URL/$3" KAFKA_BROKERS="$KAFKA_BROKERS" \
      SAFEKEEPER_URL="$SK_URL" SAFEKEEPER_ISSUER="$SK_URL" \
      CONSUMER_GROUP="$1-bench-$(date +%s)-$RANDOM" \
      STATE_DIR="$STATE_DIR/bench" LOG_FORMAT=json RUST_LOG=warn \
      nohup "$CARGO_TARGET_DIR/release/$1" >"$STATE_DIR/logs/$1-bench.log" 2>&1 &
    echo $! >"$4"
  )
  wait_ready "$1-bench" "http://127.0.0.1:$2/readyz" 90
}

# Analytics before accounting: the accounting part's events would keep an
# analytics service busy while its reports are measured. It reads the
# earlier parts' events from the start (users, task events), so the bench
# waits for it to catch up before measuring.
if run_part analytics; then
  say "loading 1,000,000 ledger rows into $AN_DB (analytics' reports_bench)"
  BENCH_DATABASE_URL="$PGHOST_URL/$AN_DB" BENCH_KEEP=1 BENCH_REQUESTS=200 \
    "$CARGO_TARGET_DIR/release/examples/reports_bench"
  say "starting the analytics service on :$AN_PORT"
  start_popug analytics "$AN_PORT" "$AN_DB" "$AN_PIDFILE"
  say "measuring the analytics service"
  "$BENCH" analytics --auth-url "$AUTH_URL" --sk-url "$SK_URL" --url "http://127.0.0.1:$AN_PORT" \
    --out "$AN_OUT" "$@"
  stop_pidfile "$AN_PIDFILE"
  OUTS+=("$AN_OUT")
fi

if run_part accounting; then
  # After the other parts, tansu (sqlite) holds their whole history and
  # answered accounting's group coordinator so slowly that its session
  # timed out again and again: it was given no partition in ten minutes.
  if [ "$ONLY" = all ]; then
    say "restarting the bench broker empty for the accounting part"
    fresh_broker
  fi
  recreate_database "$ACC_DB"
  say "writing $ACC_TASKS tasks' events (4 each) on task.v1"
  "$BENCH" accounting-events --brokers "$KAFKA_BROKERS" --tasks "$ACC_TASKS"
  say "starting the accounting service on :$ACC_PORT, on that backlog"
  start_popug accounting "$ACC_PORT" "$ACC_DB" "$ACC_PIDFILE"
  say "measuring how fast accounting applies them"
  "$BENCH" accounting --db "$PGHOST_URL/$ACC_DB" --url "http://127.0.0.1:$ACC_PORT" --tasks "$ACC_TASKS" --out "$ACC_OUT"
  stop_pidfile "$ACC_PIDFILE"
  OUTS+=("$ACC_OUT")
fi

if [ "${#OUTS[@]}" -gt 0 ]; then
  say "all results"
  "$BENCH" table "${OUTS[@]}"
fi

if [ "$ONLY" = all ] || [ "$ONLY" = user-directory ]; then
  KAFKA_PORT="$KAFKA_PORT" KAFKA_BROKERS="$KAFKA_BROKERS" BROKER_NAME="$BROKER_NAME" \
    bash "$ROOT/services/user-directory/bench.sh"
fi
