#!/usr/bin/env bash
# make test: every unit and integration test, against real PostgreSQL and a
# real Kafka-protocol broker (started here when not running).
source "$(dirname "$0")/lib.sh"

ensure_postgres
ensure_tansu
# The tests get a broker of their own (port TEST_KAFKA_PORT, default 9192),
# started with an empty history each run: the platform of `make up` never
# sees test events, and consumers that read from the earliest offset do not
# wade through earlier runs' events. One an earlier run left is
# stopped first (its history of events and consumer groups grew with every
# run until metadata requests timed out); a broker on that port that this
# script did not start is used as it is.
KAFKA_PORT="${TEST_KAFKA_PORT:-9192}"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
# Named by its port: runs on other ports never stop this one.
BROKER_NAME="tansu-test-$KAFKA_PORT"
stop_pidfile "$STATE_DIR/pids/$BROKER_NAME.pid"
for _ in $(seq 1 50); do port_open "$KAFKA_PORT" || break; sleep 0.1; done
port_open "$KAFKA_PORT" || rm -rf "$STATE_DIR/$BROKER_NAME"
ensure_broker
# Stopped at the end too: an idle tansu still takes CPU from what runs next.
trap 'stop_pidfile "$STATE_DIR/pids/$BROKER_NAME.pid"' EXIT
export KAFKA_BROKERS TEST_DATABASE_URL="$PGHOST_URL"
# Tests that stop and restart a broker start their own tansu.
export TANSU_BIN="${TANSU_BIN:-$(command -v tansu)}"

# The browser tests (every test named `..._in_headless_chromium`) run when
# Chromium is there or can be installed; when it cannot, they are left out
# together, so that the summary counts them as skipped instead of as passes
# that never ran.
BROWSER_TESTS=in_headless_chromium
SKIP=()
if ensure_browser; then
  export REQUIRE_BROWSER_TESTS=1
else
  say "the browser tests are skipped: chromium and chromedriver are missing and could not be installed (see $STATE_DIR/logs/browser-install.log)"
  SKIP=(-- --skip "$BROWSER_TESTS")
  # After the caller's own `--`, if they gave one.
  for a in "$@"; do [ "$a" = -- ] && SKIP=(--skip "$BROWSER_TESTS"); done
fi

# The whole workspace unless the arguments pick packages (`-p access-rule`).
SCOPE=(--workspace)
for a in "$@"; do
  case "$a" in -p | --package | --package=* | -p?*) SCOPE=() ;; esac
done
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run "${SCOPE[@]}" --locked --no-fail-fast "$@" ${SKIP[@]+"${SKIP[@]}"}
else
  cargo test "${SCOPE[@]}" --locked --no-fail-fast "$@" ${SKIP[@]+"${SKIP[@]}"}
fi
