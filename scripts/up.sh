#!/usr/bin/env bash
# make up: the whole platform on this machine, with demo data.
# A second platform beside it (the fault suite's, the fuzzer's) sets
# STATE_DIR, PORT_OFFSET (added to every service's port), DB_SUFFIX (added
# to every database's name), KAFKA_PORT with BROKER_NAME, and PROFILE=debug
# to run the debug build the tests have already made.
source "$(dirname "$0")/lib.sh"

ensure_postgres
for s in "${SERVICES[@]}"; do read -r _ _ db <<<"$s"; ensure_database "$db"; done
export AUTHENTICATOR_URL="http://127.0.0.1:$(service_port authenticator)"
export SAFEKEEPER_URL="http://127.0.0.1:$(service_port safekeeper)"
export USER_DIRECTORY_URL="http://127.0.0.1:$(service_port user-directory)"
export TASK_URL="http://127.0.0.1:$(service_port task)"
# What the dashboards' landing page links.
export TASK_DOCS_URL="$TASK_URL/openapi.json"
export ACCOUNTING_DASHBOARD_URL="http://127.0.0.1:$(service_port accounting)/dashboard"
export ANALYTICS_DASHBOARD_URL="http://127.0.0.1:$(service_port analytics)/dashboard"
# On a first run the broker builds beside the services (ensure_broker waits
# for it below).
port_open "$KAFKA_PORT" || ensure_tansu --background

packages=()
for s in "${SERVICES[@]}"; do read -r name _ _ <<<"$s"; packages+=(-p "$name"); done
profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
say "building the services ($PROFILE)"
cargo build "${profile_flag[@]}" --locked -q "${packages[@]}"
# The notifier's SMTP relay here: the test support's sink.
cargo build "${profile_flag[@]}" --locked -q -p testkit --bin smtp-sink
BIN_DIR="$CARGO_TARGET_DIR/$PROFILE"
ensure_broker

# The authenticator's login throttle is shared through Redis when one
# answers here (else each replica counts in memory; `make up` runs one).
if [ -z "${REDIS_URL:-}" ] && (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  export REDIS_URL=redis://127.0.0.1:6379
fi

mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids"
# What an earlier `make up` started, stopped all at once (each drains).
running=()
for s in "${SERVICES[@]}"; do read -r name _ _ <<<"$s"; running+=("$STATE_DIR/pids/$name.pid"); done
stop_pidfile "${running[@]}" "$STATE_DIR/pids/smtp-sink.pid"
say "starting the SMTP sink on :$SMTP_SINK_PORT (mail in $STATE_DIR/logs/smtp-sink.log)"
SMTP_SINK_PORT="$SMTP_SINK_PORT" nohup "$BIN_DIR/smtp-sink" >>"$STATE_DIR/logs/smtp-sink.log" 2>&1 &
echo $! >"$STATE_DIR/pids/smtp-sink.pid"
for s in "${SERVICES[@]}"; do
  read -r name port db <<<"$s"
  say "starting $name on :$port"
  (
    cd "$ROOT"
    export PORT="$port" DATABASE_URL="$PGHOST_URL/$db" KAFKA_BROKERS STATE_DIR
    # Static group membership: a restarted consumer takes its partitions
    # back at once, even after SIGKILL (docs/events.md).
    export CONSUMER_INSTANCE_ID="${CONSUMER_INSTANCE_ID:-$name-$port}"
    export BOOTSTRAP_ADMIN_USERNAME="${BOOTSTRAP_ADMIN_USERNAME:-admin}"
    export BOOTSTRAP_ADMIN_PASSWORD="${BOOTSTRAP_ADMIN_PASSWORD:-Admin-Passw0rd!}"
    export BOOTSTRAP_ADMIN_EMAIL="${BOOTSTRAP_ADMIN_EMAIL:-admin@example.com}"
    # The user directory's client secret at the safekeeper (demo-data.sh registers it).
    export DIRECTORY_CLIENT_SECRET="${DIRECTORY_CLIENT_SECRET:-user-directory-dev-secret}"
    # The dashboards are OAuth2 clients of the safekeeper (demo-data.sh
    # registers them); over plain http here, so the cookie cannot be Secure.
    case "$name" in
      accounting | analytics)
        export DASHBOARD_CLIENT_ID="$name-dashboard" DASHBOARD_PUBLIC_URL="http://127.0.0.1:$port"
        export DASHBOARD_CLIENT_SECRET="${DASHBOARD_CLIENT_SECRET:-$name-dashboard-dev-secret}"
        export DASHBOARD_COOKIE_SECURE=false
        ;;
    esac
    # The notifier sends to the sink, in clear text: it is on loopback.
    export SMTP_HOST=127.0.0.1 SMTP_PORT="$SMTP_SINK_PORT" SMTP_STARTTLS=off
    nohup "$BIN_DIR/$name" >>"$STATE_DIR/logs/$name.log" 2>&1 &
    echo $! >"$STATE_DIR/pids/$name.pid"
  )
done
for s in "${SERVICES[@]}"; do
  read -r name port _ <<<"$s"
  wait_ready "$name" "http://127.0.0.1:$port/readyz" 90
done

say "loading demo data"
"$ROOT/scripts/demo-data.sh"

cat <<TXT

The platform is up.

  authenticator   http://127.0.0.1:$(service_port authenticator)   (JWKS: /.well-known/jwks.json, OpenAPI: /openapi.json)
  safekeeper      http://127.0.0.1:$(service_port safekeeper)   (OAuth2 metadata: /.well-known/oauth-authorization-server)
  access-rule     http://127.0.0.1:$(service_port access-rule)   (GET /canmessage?user_id=, GET /canpurchase?user_id=, POST /event)
  user-directory  http://127.0.0.1:$(service_port user-directory)   (POST /org/create, POST /admin/login, /v1/users; organization acme, admin@acme.example / Acme-Passw0rd!)
  task            http://127.0.0.1:$(service_port task)   (POST /v1/task/own, /v1/task/all, /v1/task, /v1/tasks/{id}, /v1/task/assignment, /v1/task/summary)
  accounting      http://127.0.0.1:$(service_port accounting)   (GET /v1/accounting/accounts/me, /v1/accounting/accounts/me/ledger, /v1/accounting/earnings/today)
  analytics       http://127.0.0.1:$(service_port analytics)   (GET /v1/analytics/earnings/today, /v1/analytics/workers/negative-balance, /v1/analytics/tasks/most-expensive)
  notifier        http://127.0.0.1:$(service_port notifier)   (mail to the SMTP sink on :$SMTP_SINK_PORT: $STATE_DIR/logs/smtp-sink.log)
  broker          $KAFKA_BROKERS (tansu; topics: ${TOPICS[*]})
  PostgreSQL      $PGHOST_URL
  logs            $STATE_DIR/logs/

Demo accounts:
  superuser   admin / Admin-Passw0rd!
  Employer    employer / Employer-Passw0rd!
  Employee    employee / Employee-Passw0rd!

OAuth2 clients:
  demo-spa       public, PKCE, first-party; redirect http://127.0.0.1:8765/callback
  demo-service   confidential, secret demo-service-secret; client_credentials for su_read:task

Dashboards (sign in as employee, employer or admin):
  landing page   http://127.0.0.1:$(service_port accounting)/
  accounting     $ACCOUNTING_DASHBOARD_URL
  analytics      $ANALYTICS_DASHBOARD_URL   (admin only)

Try:  curl -s -X POST $AUTHENTICATOR_URL/v1/login -H 'Content-Type: application/json' \\
        -d '{"username":"employer","password":"Employer-Passw0rd!"}'
Stop: make down
TXT
