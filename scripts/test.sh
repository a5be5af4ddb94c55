#!/usr/bin/env bash
# make test: every unit and integration test, against real PostgreSQL and a
# real Kafka-protocol broker (started here when not running).
source "$(dirname "$0")/lib.sh"

ensure_postgres
ensure_tansu
ensure_broker
export KAFKA_BROKERS TEST_DATABASE_URL="$PGHOST_URL"
# Tests that stop and restart a broker start their own tansu.
export TANSU_BIN="${TANSU_BIN:-$(command -v tansu)}"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
