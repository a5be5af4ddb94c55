#!/usr/bin/env bash
# make fuzz: schemathesis against every service's /openapi.json, on a
# platform of its own (fresh *_fuzz databases, its own broker, every
# service and an SMTP sink on ports 57xx, the debug build), authenticated as the demo users.
# Passes when no answer was a 5xx other than a 503 that its operation
# documents; prints a summary either way. Everything it started is stopped
# at the end.
#
#   FUZZ_SEED          the generator's seed (default 20261202)
#   FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 10)
#   FUZZ_PHASES        schemathesis phases (default examples,coverage,fuzzing)
#   FUZZ_WORKERS       concurrent schemathesis workers (default 2)
#   PROFILE=release    fuzz the release build (default debug: what `make test` built)
#   FUZZ_STATE_DIR, FUZZ_PORT_OFFSET, FUZZ_KAFKA_PORT: where the platform
#                      lives (.state/fuzz, ports 5700-5705, broker :9792)
#
# Nothing is left out, but some operations run apart (see docs/testing.md, "Fuzzing"):
#   - POST /v1/logout and POST /v1/me/password (authenticator) run apart, as
#     a throwaway user: they end the session they are called with.
#   - DELETE /org/delete (user-directory) runs apart, as the admin of a
#     throwaway organization: it would delete acme under the later runs.
#   - The safekeeper's deletions and replacements (DELETE/PUT under
#     /v1/admin, POST /oauth2/revoke) run last of all: the documents'
#     examples name demo-service and the Employee role, and the other runs'
#     tokens depend on them.
#   - Every token is fetched before any run: the fuzzer's failed logins
#     (POST /v1/login, /admin/login, /oauth2/login with made-up passwords)
#     are throttled per address, so a login after them could answer 429.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

export STATE_DIR="${FUZZ_STATE_DIR:-$ROOT/.state/fuzz}"
export PORT_OFFSET="${FUZZ_PORT_OFFSET:-700}"
export DB_SUFFIX=_fuzz
export KAFKA_PORT="${FUZZ_KAFKA_PORT:-9792}" BROKER_NAME=tansu-fuzz
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export PROFILE="${PROFILE:-debug}"
# The login and sign-up throttles' counters, when the authenticator keeps
# them in a Redis that `make up` shares: neither the developer platform's
# nor an earlier run's (which would refuse this run's demo data with 429).
export THROTTLE_KEY_PREFIX="authenticator-fuzz:$(date +%s):throttle:"
# Webhooks on, so that the fuzzer reaches their signature check (without a
# secret they answer a documented 503).
export WORKOS_WEBHOOK_SECRET=whsec_fuzz
source "$ROOT/scripts/lib.sh"

SEED="${FUZZ_SEED:-20261202}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-10}"
PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing}"
WORKERS="${FUZZ_WORKERS:-2}"
SCHEMATHESIS_VERSION=4.32.5
VENV="$ROOT/.state/venv-fuzz"
OUT="$ROOT/target/fuzz"

# --- schemathesis, pinned, in a virtual environment of its own -----------
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- a fresh platform of its own ------------------------------------------
started=$(date +%s)
stop_all() { bash "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true; }
trap stop_all EXIT
stop_all
rm -rf "$STATE_DIR" "$OUT"
mkdir -p "$STATE_DIR/logs" "$OUT"
ensure_postgres
# The same data at every run: what one run created or deleted does not
# change what the next one finds.
for s in "${SERVICES[@]}"; do
  read -r _ _ db <<<"$s"
  psql "$PGHOST_URL/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done
say "starting the fuzzing platform (ports $((5000 + PORT_OFFSET))-$((5008 + PORT_OFFSET)), $PROFILE build)"
bash "$ROOT/scripts/up.sh" >"$STATE_DIR/logs/up.log" 2>&1 || {
  tail -n 30 "$STATE_DIR/logs/up.log"
  die "the fuzzing platform did not come up; see $STATE_DIR/logs/"
}
up_seconds=$(($(date +%s) - started))

AUTH="http://127.0.0.1:$(service_port authenticator)"
SK="http://127.0.0.1:$(service_port safekeeper)"
TASK="http://127.0.0.1:$(service_port task)"
UD="http://127.0.0.1:$(service_port user-directory)"
AR="http://127.0.0.1:$(service_port access-rule)"
ACC="http://127.0.0.1:$(service_port accounting)"
AN="http://127.0.0.1:$(service_port analytics)"

# --- tokens, all before the first run ------------------------------------
post_json() { curl -fsS -X POST "$1" -H 'Content-Type: application/json' "${@:3}" -d "$2"; }
session() { session_token "$AUTH" "$1" "$2"; }
access_token() {
  post_json "$SK/v1/authorize" "{\"scopes\":\"$2\"}" -H "Authorization: Bearer $1" | json_field access_token
}
client_token() {
  curl -fsS -X POST "$SK/oauth2/token" -u "$1:$2" -d grant_type=client_credentials -d "scope=$3" | json_field access_token
}
say "signing in as the demo users"
ADMIN_SESSION=$(session admin 'Admin-Passw0rd!')
ADMIN_TOKEN=$(access_token "$ADMIN_SESSION" 'admin:rbac,admin:client,admin:user')
EMPLOYER_SESSION=$(session employer 'Employer-Passw0rd!')
EMPLOYER_TOKEN=$(access_token "$EMPLOYER_SESSION" 'read:task,edit:task,create:task,delete:task,su_read:task,su_edit:task')
SERVICE_TOKEN=$(client_token demo-service demo-service-secret su_read:task)
EVENTS_TOKEN=$(client_token demo-events demo-events-secret write:event)
MONEY_TOKEN=$(access_token "$ADMIN_SESSION" 'read:accounting,su_read:accounting,close:accounting,read:analytics')
ACME_TOKEN=$(post_json "$UD/admin/login" '{"email":"admin@acme.example","password":"Acme-Passw0rd!"}' | json_field access_token)
# Throwaways for the runs that end what they are called with.
post_json "$AUTH/v1/user" '{"username":"fuzz-victim","password":"Victim-Passw0rd!","email":"victim@fuzz.example","firstname":"Fuzz","lastname":"Victim"}' >/dev/null
VICTIM_SESSION=$(session fuzz-victim 'Victim-Passw0rd!')
post_json "$UD/org/create" '{"organization_name":"fuzzorg","email":"admin@fuzzorg.example","password":"Fuzzorg-Passw0rd!"}' \
  -H "Authorization: Bearer $ADMIN_SESSION" >/dev/null
FUZZORG_TOKEN=$(post_json "$UD/admin/login" '{"email":"admin@fuzzorg.example","password":"Fuzzorg-Passw0rd!"}' | json_field access_token)

# --- the runs ---------------------------------------------------------------
# fuzz NAME BASE_URL CONFIG [schemathesis filters...]: one schemathesis run,
# its log, its events (NDJSON) and the document it read under target/fuzz/.
RUNS=()
fuzz() {
  local name="$1" base="$2" config="$3"
  shift 3
  # The configuration holds the tokens: kept with the platform's state.
  local cfg="$STATE_DIR/schemathesis/$name.toml"
  mkdir -p "$STATE_DIR/schemathesis"
  # No crash cache (.schemathesis/ in the working directory): every run
  # generates the same cases from the seed alone.
  printf '[cache]\nenabled = false\n\n%s\n' "$config" >"$cfg"
  curl -fsS "$base/openapi.json" -o "$OUT/$name.openapi.json"
  say "fuzzing $name"
  local t0 code=0
  t0=$(date +%s)
  run_schemathesis "$name" "$base" "$cfg" "$@" || code=$?
  # A fault of the fuzzer itself, not an answer of ours: CPython 3.11's
  # `ast` module, used from schemathesis's worker threads, now and then
  # raises "SystemError: AST constructor recursion depth mismatch" while
  # cases are built (seen twice on 2026-12-03, for access-rule's and the
  # safekeeper's runs; the same seed passed before and after). Such a run
  # is made again, up to twice; a third fault counts as an error like any
  # other.
  local tries=1
  while [ "$code" != 0 ] && [ "$tries" -lt 3 ] &&
    grep -q '"NonFatalError".*"type":"SystemError"' "$OUT/$name.ndjson" 2>/dev/null; do
    echo "    the fuzzer itself failed (a Python SystemError: $OUT/$name.try$tries.log); again"
    mv "$OUT/$name.log" "$OUT/$name.try$tries.log"
    tries=$((tries + 1))
    code=0
    run_schemathesis "$name" "$base" "$cfg" "$@" || code=$?
  done
  echo "    $(($(date +%s) - t0)) s, schemathesis exit $code ($OUT/$name.log)"
  RUNS+=("$name")
}
# run_schemathesis NAME BASE_URL CONFIG_FILE [filters...]
run_schemathesis() {
  local name="$1" base="$2" cfg="$3"
  shift 3
  "$VENV/bin/schemathesis" --config-file "$cfg" run "$base/openapi.json" --url "$base" \
    --checks not_a_server_error --seed "$SEED" --max-examples "$MAX_EXAMPLES" --phases "$PHASES" \
    --workers "$WORKERS" --generation-database none --no-color --request-timeout 30 \
    --report ndjson --report-ndjson-path "$OUT/$name.ndjson" "$@" >"$OUT/$name.log" 2>&1
}
bearer() { printf '[auth.openapi.%s]\nbearer = "%s"\n' "$1" "$2"; }

fuzz task "$TASK" "$(bearer bearer "$EMPLOYER_TOKEN")"
# The same routes as a client without a user behind it (su_read:task only).
fuzz task-service "$TASK" "$(bearer bearer "$SERVICE_TOKEN")" --include-name-regex '^(POST /v1/task/all|GET /v1/tasks/)'
fuzz access-rule "$AR" "$(bearer sessionToken "$ADMIN_SESSION"; bearer producerToken "$EVENTS_TOKEN")"
# POST /org/create as an operator (the superuser's session), the rest as acme's admin.
fuzz user-directory "$UD" "$(bearer orgAdmin "$ACME_TOKEN"; bearer operatorSession "$ADMIN_SESSION")" \
  --exclude-path /org/delete
fuzz authenticator "$AUTH" "$(bearer bearerAuth "$ADMIN_SESSION"; bearer adminAccessToken "$ADMIN_TOKEN")" \
  --exclude-path /v1/logout --exclude-path /v1/me/password
fuzz user-directory-delete "$UD" "$(bearer orgAdmin "$FUZZORG_TOKEN")" --include-path /org/delete
fuzz authenticator-session "$AUTH" "$(bearer bearerAuth "$VICTIM_SESSION")" \
  --include-path /v1/logout --include-path /v1/me/password
# The seed routes as the employer (the documents' examples ask for task
# scopes), the administration as the superuser, the OAuth2 endpoints' client
# authentication as demo-service.
SK_AUTH="$(bearer sessionToken "$EMPLOYER_SESSION"; bearer accessToken "$ADMIN_TOKEN")
[auth.openapi.clientBasic]
username = \"demo-service\"
password = \"demo-service-secret\""
SK_DESTRUCTIVE='^((DELETE|PUT) |POST /oauth2/revoke$)'
fuzz safekeeper "$SK" "$SK_AUTH" --exclude-name-regex "$SK_DESTRUCTIVE"
fuzz safekeeper-destructive "$SK" "$SK_AUTH" --include-name-regex "$SK_DESTRUCTIVE"
# The ledgers, the close and the reports as the superuser (who holds every
# accounting and analytics scope), and their dashboards' pages.
fuzz accounting "$ACC" "$(bearer bearer "$MONEY_TOKEN")"
fuzz analytics "$AN" "$(bearer bearer "$MONEY_TOKEN")"

# --- the verdict ------------------------------------------------------------
say "summary (seed $SEED, at most $MAX_EXAMPLES examples per operation, phases $PHASES)"
set +e
python3 "$ROOT/scripts/fuzz_report.py" "$OUT" "${RUNS[@]}"
verdict=$?
set -e
echo "platform up in ${up_seconds} s; make fuzz took $(($(date +%s) - started)) s; logs in $STATE_DIR/logs/, runs in $OUT/"
exit "$verdict"
