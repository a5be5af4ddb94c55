#!/usr/bin/env bash
# make down: stops the services and the broker that make up started.
source "$(dirname "$0")/lib.sh"
pidfiles=() names=()
for s in "${SERVICES[@]}"; do
  read -r name _ _ <<<"$s"
  [ -f "$STATE_DIR/pids/$name.pid" ] && pidfiles+=("$STATE_DIR/pids/$name.pid") && names+=("$name")
done
# All at once: each drains for SHUTDOWN_DRAIN_SECONDS before it stops.
[ "${#pidfiles[@]}" -eq 0 ] || { stop_pidfile "${pidfiles[@]}" && echo "stopped ${names[*]}"; }
stop_pidfile "$STATE_DIR/pids/smtp-sink.pid" && echo "stopped the SMTP sink"
stop_pidfile "$STATE_DIR/pids/${BROKER_NAME:-tansu}.pid" && echo "stopped ${BROKER_NAME:-tansu}"
for f in "$STATE_DIR"/pids/tansu-test*.pid; do [ -e "$f" ] && stop_pidfile "$f" && echo "stopped a test broker ($(basename "$f" .pid))"; done; true
stop_pidfile "$STATE_DIR/pids/tansu-bench.pid" && echo "stopped the benchmarks' tansu"
