#!/usr/bin/env bash
# make chaos: the fault suite (scripts/chaos.py) against a platform of its
# own: its own PostgreSQL cluster (it is restarted by a case, so never the
# machine's), its own broker, every service on ports 58xx, with the
# demo data. Everything it started is stopped at the end.
#
#   CHAOS_CASES=broker,postgres,sigkill,sigterm (default: all four)
#   CHAOS_HANG_SECONDS=30 (how long the broker is frozen)
#   CHAOS_PROFILE=release (default debug: the build `make test` made)
source "$(dirname "$0")/lib.sh"

export STATE_DIR="${CHAOS_STATE_DIR:-$ROOT/.state/chaos}"
export PORT_OFFSET="${CHAOS_PORT_OFFSET:-800}"
export DB_SUFFIX=_chaos
export KAFKA_PORT="${CHAOS_KAFKA_PORT:-9892}" BROKER_NAME=tansu-chaos
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export PROFILE="${CHAOS_PROFILE:-debug}"
PG_PORT="${CHAOS_PG_PORT:-5544}"
export PGHOST_URL="postgres://postgres@127.0.0.1:$PG_PORT"
export PG_PORT
PG_DATA="$STATE_DIR/pg"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[ -x "$PG_BIN/pg_ctl" ] || die "PostgreSQL's server programs (pg_ctl, initdb) are not installed"

# PostgreSQL refuses to run as root: as root, its cluster belongs to the
# postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
export CHAOS_PG_CTL="$PG_BIN/pg_ctl" CHAOS_PG_DATA="$PG_DATA"

stop_all() {
  bash "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
}
trap stop_all EXIT
trap "exit 130" INT TERM

stop_all
rm -rf "$STATE_DIR"
mkdir -p "$STATE_DIR/logs" "$PG_DATA"
[ "$(id -u)" = 0 ] && chown postgres "$PG_DATA"
say "a PostgreSQL cluster of its own on :$PG_PORT"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust >"$STATE_DIR/logs/initdb.log" 2>&1 \
  || die "initdb failed; see $STATE_DIR/logs/initdb.log"
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
  -o "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off" start >/dev/null

bash "$ROOT/scripts/up.sh" >"$STATE_DIR/logs/up.log" 2>&1 || { tail -n 30 "$STATE_DIR/logs/up.log"; die "the chaos platform did not come up"; }
say "the chaos platform is up (ports $((5000 + PORT_OFFSET))-$((5008 + PORT_OFFSET)))"
python3 "$ROOT/scripts/chaos.py"
