#!/usr/bin/env bash
# make down: stops the services and the broker that make up started.
source "$(dirname "$0")/lib.sh"
for s in "${SERVICES[@]}"; do
  read -r name _ _ <<<"$s"
  stop_pidfile "$STATE_DIR/pids/$name.pid" && echo "stopped $name"
done
stop_pidfile "$STATE_DIR/pids/${BROKER_NAME:-tansu}.pid" && echo "stopped ${BROKER_NAME:-tansu}"
for f in "$STATE_DIR"/pids/tansu-test*.pid; do [ -e "$f" ] && stop_pidfile "$f" && echo "stopped a test broker ($(basename "$f" .pid))"; done; true
stop_pidfile "$STATE_DIR/pids/tansu-bench.pid" && echo "stopped the benchmarks' tansu"
