#!/bin/bash
# The part of the official image's entry point that docker-compose.yml uses:
# on an empty PGDATA, initdb with POSTGRES_USER / POSTGRES_PASSWORD, then the
# files of /docker-entrypoint-initdb.d, then the server.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  # Clients over TCP (the compose network, or loopback) sign in with the password.
  echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
  # A server on a socket of its own while the init files run (a healthcheck's
  # pg_isready, on the usual socket, says "no response" until the real start).
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "running $f"; psql -h /tmp -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d postgres -f "$f" ;;
      *.sh) echo "running $f"; PGHOST=/tmp . "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL initialised in $PGDATA"
fi
exec "$@"
