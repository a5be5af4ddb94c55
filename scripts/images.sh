#!/usr/bin/env bash
# The container images, and a run of them (docs/containers.md).
#
#   bash scripts/images.sh build    # make images: an image per service from deploy/Dockerfile
#   bash scripts/images.sh check    # make images-check: build, start everything with Compose
#                                   # from local images, probe, smoke test (scripts/smoke.sh), stop
#   bash scripts/images.sh local    # the local PostgreSQL and tansu images (and the base image)
#   bash scripts/images.sh base     # platform/debian:bookworm-slim, made with debootstrap
#   bash scripts/images.sh engine   # start a Docker engine here if none answers (exit 1 if it cannot)
#   bash scripts/images.sh up|down  # the local Compose platform alone
#
# Settings:
#   IMAGES_FROM=host     (default) the service binaries built here (target/$PROFILE; `make up`
#                        builds the same release binaries), stripped, into the runtime stage
#   IMAGES_FROM=source   the whole multi-stage build, in the official rust image (needs a registry)
#   PROFILE=release      or debug: the binaries of the test build (CI)
#   BUILD_BINARIES=0     take target/$PROFILE's binaries as they are, no cargo build (CI, after
#                        `make test`: a `cargo build -p` of the eight would unify features apart from
#                        the test build's and rebuild dependencies)
#   RUNTIME_BASE=        base of the runtime stage: default debian:bookworm-slim when this engine
#                        has it or can pull it, else platform/debian:bookworm-slim (debootstrap)
#   IMAGE_PREFIX=platform IMAGE_TAG=dev   images are $IMAGE_PREFIX/<service>:$IMAGE_TAG
#   KEEP=1               `check` leaves the containers running
#   SMTP_SINK=           `check`: the SMTP sink the notifier mails (default target/$PROFILE/smtp-sink,
#                        `cargo build -p testkit --bin smtp-sink`); without it the mail is not checked
source "$(dirname "$0")/lib.sh"

IMAGES_FROM="${IMAGES_FROM:-host}"
IMAGE_PREFIX="${IMAGE_PREFIX:-platform}"
export IMAGE_TAG="${IMAGE_TAG:-dev}"
LOCAL_BASE="${LOCAL_BASE:-platform/debian:bookworm-slim}"
IMAGES_DIR="$CARGO_TARGET_DIR/images"
# The local Compose platform's ports (deploy/compose.local.yml reads the same).
export LOCAL_AUTHENTICATOR_PORT="${LOCAL_AUTHENTICATOR_PORT:-5600}"
export LOCAL_SAFEKEEPER_PORT="${LOCAL_SAFEKEEPER_PORT:-5601}"
export LOCAL_TASK_PORT="${LOCAL_TASK_PORT:-5602}"
export LOCAL_USER_DIRECTORY_PORT="${LOCAL_USER_DIRECTORY_PORT:-5603}"
export LOCAL_ACCESS_RULE_PORT="${LOCAL_ACCESS_RULE_PORT:-5605}"
export LOCAL_ACCOUNTING_PORT="${LOCAL_ACCOUNTING_PORT:-5606}"
export LOCAL_ANALYTICS_PORT="${LOCAL_ANALYTICS_PORT:-5607}"
export LOCAL_NOTIFIER_PORT="${LOCAL_NOTIFIER_PORT:-5608}"
export LOCAL_SMTP_PORT="${LOCAL_SMTP_PORT:-5625}"
export LOCAL_KAFKA_PORT="${LOCAL_KAFKA_PORT:-9692}"
export LOCAL_PG_PORT="${LOCAL_PG_PORT:-5642}"
COMPOSE_PROJECT="${COMPOSE_PROJECT:-platform-local}"
NAMES=(authenticator safekeeper task user-directory access-rule accounting analytics notifier)

local_port() {
  case "$1" in
    authenticator) echo "$LOCAL_AUTHENTICATOR_PORT" ;;
    safekeeper) echo "$LOCAL_SAFEKEEPER_PORT" ;;
    task) echo "$LOCAL_TASK_PORT" ;;
    user-directory) echo "$LOCAL_USER_DIRECTORY_PORT" ;;
    access-rule) echo "$LOCAL_ACCESS_RULE_PORT" ;;
    accounting) echo "$LOCAL_ACCOUNTING_PORT" ;;
    analytics) echo "$LOCAL_ANALYTICS_PORT" ;;
    notifier) echo "$LOCAL_NOTIFIER_PORT" ;;
  esac
}

elapsed() { echo "$(($(date +%s) - $1)) s"; }

# ---- the engine ------------------------------------------------------------

# Starts dockerd when no engine answers: Debian's docker.io, no bridge and no
# iptables (containers use the host's network). Installs docker.io (with
# docker-compose and debootstrap) when DOCKER_INSTALL=1.
ensure_engine() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null 2>&1 && [ "${DOCKER_INSTALL:-0}" = 1 ]; then
    say "installing Docker (Debian's docker.io, docker-compose, debootstrap)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        docker.io docker-compose debootstrap >/dev/null; } || return 1
  fi
  command -v dockerd >/dev/null 2>&1 || return 1
  say "starting a Docker engine (log: $STATE_DIR/logs/dockerd.log)"
  mkdir -p "$STATE_DIR/logs"
  nohup dockerd --bridge=none --iptables=false --ip-masq=false \
    >>"$STATE_DIR/logs/dockerd.log" 2>&1 &
  for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && return 0; sleep 0.3; done
  return 1
}

# The build command: BuildKit is needed (the Dockerfile builds one of two
# binary stages). A client with buildx, or one older than 23 whose BuildKit
# is built in (Debian's docker.io, 20.10).
BUILD=()
pick_builder() {
  [ ${#BUILD[@]} -gt 0 ] && return 0
  local c v
  for c in docker /usr/bin/docker; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" buildx version >/dev/null 2>&1; then BUILD=("$c" buildx build --load); return 0; fi
    v="$("$c" version --format '{{.Client.Version}}' 2>/dev/null || true)"
    if [ -n "$v" ] && [ "${v%%.*}" -lt 23 ] 2>/dev/null; then
      BUILD=(env DOCKER_BUILDKIT=1 "$c" build); return 0
    fi
  done
  die "no Docker client here builds with BuildKit: install buildx, or Debian's docker.io (20.10)"
}

# Compose on docker-compose.yml with deploy/compose.local.yml, rendered into
# one file without the production file's `ports:`: an override cannot remove
# them, and Compose 1.29 refuses published ports on the host's network
# (the engine would only discard them).
COMPOSE=()
pick_compose() {
  [ ${#COMPOSE[@]} -gt 0 ] && return 0
  local cli=() py rendered="$IMAGES_DIR/compose.local.rendered.yml"
  if docker compose version >/dev/null 2>&1; then cli=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then cli=(docker-compose)
  else die "neither docker compose nor docker-compose is installed"; fi
  # Debian's python3 has PyYAML wherever its docker-compose is installed.
  py=/usr/bin/python3
  "$py" -c 'import yaml' 2>/dev/null || py=python3
  mkdir -p "$IMAGES_DIR"
  "${cli[@]}" -p "$COMPOSE_PROJECT" --project-directory "$ROOT" \
    -f "$ROOT/docker-compose.yml" -f "$ROOT/deploy/compose.local.yml" config >"$rendered.tmp" \
    || die "Compose could not read docker-compose.yml with deploy/compose.local.yml"
  "$py" - "$rendered.tmp" "$rendered" <<'PY' || die "could not render $rendered (PyYAML missing?)"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for s in c["services"].values():
    if s.get("network_mode") == "host":
        s.pop("ports", None)
yaml.safe_dump(c, open(sys.argv[2], "w"), default_flow_style=False, sort_keys=False)
PY
  rm -f "$rendered.tmp"
  COMPOSE=("${cli[@]}" -p "$COMPOSE_PROJECT" --project-directory "$ROOT" -f "$rendered")
}

# ---- base images -----------------------------------------------------------

# platform/debian:bookworm-slim: Debian 12 from Debian's mirror, trimmed as
# the official -slim image is (no documentation, manual pages or
# translations, now or in later installs).
make_local_base() {
  if docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 && [ "${REBUILD_BASE:-0}" != 1 ]; then
    return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
  local t0 dir; t0=$(date +%s)
  dir="$(mktemp -d /tmp/platform-rootfs.XXXXXX)"
  say "making $LOCAL_BASE with debootstrap (about a minute)"
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; rm -rf "$dir"; die "debootstrap failed"; }
  cat >"$dir/etc/apt/sources.list" <<'SRC'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
DPKG
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::Install-Recommends "false";
APT
  find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$dir"/usr/share/{man,info,groff,linda,locale}/* "$dir"/usr/share/lintian/overrides/* \
    "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/var/log/* "$dir"/tmp/* "$dir"/root/.bash_history "$dir"/debootstrap
  tar --numeric-owner -C "$dir" -c . | docker import \
    -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' - "$LOCAL_BASE" >/dev/null
  rm -rf "$dir" "$dir.log"
  say "$LOCAL_BASE made in $(elapsed "$t0") ($(image_size "$LOCAL_BASE"))"
}

# The base of the runtime stage: the official one where it can be had.
pick_runtime_base() {
  [ -n "${RUNTIME_BASE:-}" ] && return 0
  if docker image inspect debian:bookworm-slim >/dev/null 2>&1 \
    || timeout 20 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    RUNTIME_BASE=debian:bookworm-slim
  else
    say "debian:bookworm-slim cannot be pulled here: the runtime stage starts from $LOCAL_BASE"
    make_local_base
    RUNTIME_BASE="$LOCAL_BASE"
  fi
}

image_size() {
  docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1 / 1000000}'
}

# ---- the service images ----------------------------------------------------

build_images() {
  local t0 name packages=() ctx; t0=$(date +%s)
  pick_builder
  pick_runtime_base
  if [ "$IMAGES_FROM" = host ] && [ "${BUILD_BINARIES:-1}" = 0 ]; then
    for name in "${NAMES[@]}"; do
      [ -x "$CARGO_TARGET_DIR/$PROFILE/$name" ] || die "no $CARGO_TARGET_DIR/$PROFILE/$name (BUILD_BINARIES=0 takes the binaries as they are)"
    done
  elif [ "$IMAGES_FROM" = host ]; then
    if [ -r /etc/os-release ] && ! grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
      say "warning: this host is not Debian 12; its binaries may not run on the bookworm runtime image"
    fi
    for name in "${NAMES[@]}"; do packages+=(-p "$name"); done
    say "building the services ($PROFILE; nothing to do when \`make up\` or the tests built them)"
    if [ "$PROFILE" = release ]; then
      cargo build --release --locked -q "${packages[@]}"
    else
      cargo build --locked -q "${packages[@]}"
    fi
  fi
  for name in "${NAMES[@]}"; do
    local tag="$IMAGE_PREFIX/$name:$IMAGE_TAG" args=(--build-arg "SERVICE=$name" --build-arg "RUNTIME_BASE=$RUNTIME_BASE")
    say "image $tag"
    if [ "$IMAGES_FROM" = host ]; then
      ctx="$IMAGES_DIR/$name"
      mkdir -p "$ctx"
      # The debug information goes (symbol names stay, for backtraces).
      strip --strip-debug -o "$ctx/$name" "$CARGO_TARGET_DIR/$PROFILE/$name"
      "${BUILD[@]}" -q --network host -f "$ROOT/deploy/Dockerfile" "${args[@]}" \
        --build-arg BINARY=prebuilt -t "$tag" "$ctx" >/dev/null
    else
      "${BUILD[@]}" --network host -f "$ROOT/deploy/Dockerfile" "${args[@]}" -t "$tag" "$ROOT"
    fi
  done
  say "images built in $(elapsed "$t0") (runtime base $RUNTIME_BASE)"
  sizes
}

sizes() {
  local name
  printf '  %-36s %s\n' image size
  for name in "${NAMES[@]}"; do
    printf '  %-36s %s\n' "$IMAGE_PREFIX/$name:$IMAGE_TAG" "$(image_size "$IMAGE_PREFIX/$name:$IMAGE_TAG")"
  done
  printf '  %-36s %s\n' "base: ${RUNTIME_BASE:-?}" "$( [ -n "${RUNTIME_BASE:-}" ] && image_size "$RUNTIME_BASE")"
}

# ---- the local PostgreSQL and broker images ---------------------------------

build_local() {
  local t0 tansu ctx; t0=$(date +%s)
  pick_builder
  make_local_base
  say "image platform/postgres:local (Debian's postgresql-15)"
  "${BUILD[@]}" -q --network host -f "$ROOT/deploy/local/postgres.Dockerfile" \
    --build-arg "BASE=$LOCAL_BASE" -t platform/postgres:local "$ROOT/deploy/local" >/dev/null
  ensure_tansu
  tansu="$(command -v tansu)"
  ctx="$IMAGES_DIR/tansu"
  mkdir -p "$ctx"
  strip --strip-debug -o "$ctx/tansu" "$tansu"
  say "image platform/tansu:local ($tansu)"
  "${BUILD[@]}" -q --network host -f "$ROOT/deploy/local/tansu.Dockerfile" \
    --build-arg "BASE=$LOCAL_BASE" -t platform/tansu:local "$ctx" >/dev/null
  say "local images built in $(elapsed "$t0"): postgres $(image_size platform/postgres:local), tansu $(image_size platform/tansu:local)"
}

# ---- the local Compose platform ----------------------------------------------

compose_up() {
  local t0 name port ports=(); t0=$(date +%s)
  pick_compose
  for name in "${NAMES[@]}"; do ports+=("$(local_port "$name")"); done
  for port in "$LOCAL_PG_PORT" "$LOCAL_KAFKA_PORT" "${ports[@]}"; do
    port_open "$port" && die "port $port is taken: stop what listens there (or set LOCAL_*_PORT)"
  done
  say "starting PostgreSQL, tansu and the ${#NAMES[@]} services (${COMPOSE[*]:0:1} up)"
  "${COMPOSE[@]}" up -d --no-build
  for name in "${NAMES[@]}"; do
    port="$(local_port "$name")"
    for _ in $(seq 1 450); do
      curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
      sleep 0.2
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null || {
      "${COMPOSE[@]}" logs --tail 40 "$name" >&2 || true
      die "$name in its container did not become ready on :$port"
    }
  done
  say "everything ready in $(elapsed "$t0")"
}

# The notifier's relay in the check: the workspace's SMTP sink (testkit's
# smtp-sink, a debug or release binary of this host) on loopback,
# LOCAL_SMTP_PORT, where deploy/compose.local.yml points the notifier. It
# prints each message it accepts.
SMTP_SINK="${SMTP_SINK:-$CARGO_TARGET_DIR/$PROFILE/smtp-sink}"
SINK_PID=""
SINK_LOG="$STATE_DIR/logs/images-smtp-sink.log"
start_sink() {
  if [ ! -x "$SMTP_SINK" ]; then
    say "no SMTP sink at $SMTP_SINK (cargo build -p testkit --bin smtp-sink): the notifier's mail goes unchecked"
    return 0
  fi
  port_open "$LOCAL_SMTP_PORT" && die "port $LOCAL_SMTP_PORT is taken: stop what listens there (or set LOCAL_SMTP_PORT)"
  mkdir -p "$STATE_DIR/logs"
  SMTP_SINK_PORT="$LOCAL_SMTP_PORT" "$SMTP_SINK" >"$SINK_LOG" 2>&1 &
  SINK_PID=$!
  for _ in $(seq 1 50); do port_open "$LOCAL_SMTP_PORT" && return 0; sleep 0.1; done
  die "the SMTP sink did not start on :$LOCAL_SMTP_PORT (see $SINK_LOG)"
}

stop_sink() {
  [ -n "$SINK_PID" ] || return 0
  kill "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=""
}

# The smoke test's demo data creates accounts: the authenticator asks for a
# registration notice to the bootstrap superuser (notification.v1), which
# the notifier must have handed to the sink.
check_mail() {
  local n
  [ -n "$SINK_PID" ] || return 0
  for _ in $(seq 1 150); do
    grep -q '^--- from ' "$SINK_LOG" 2>/dev/null && break
    sleep 0.2
  done
  n=$(grep -c '^--- from ' "$SINK_LOG" 2>/dev/null || true)
  [ "${n:-0}" -gt 0 ] || {
    "${COMPOSE[@]}" logs --tail 30 notifier >&2 || true
    die "the notifier delivered no mail to the SMTP sink on :$LOCAL_SMTP_PORT within 30 s"
  }
  say "mail: the notifier delivered $n message(s) to the SMTP sink ($(grep -m1 '^--- from ' "$SINK_LOG"))"
}

compose_down() {
  pick_compose
  "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
}

# What the containers run as: probes, non-root, read-only root filesystem.
inspect_containers() {
  local name port cid user ro health
  for name in "${NAMES[@]}"; do
    port="$(local_port "$name")"
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" || die "$name: /healthz failed"
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" || die "$name: /readyz failed"
    cid="$("${COMPOSE[@]}" ps -q "$name")"
    [ -n "$cid" ] || die "$name: no container"
    user="$(docker exec "$cid" id -u)"
    ro="$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$cid")"
    health="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$cid")"
    [ "$user" != 0 ] || die "$name runs as root"
    [ "$ro" = true ] || die "$name: the root filesystem is writable"
    docker exec "$cid" sh -c 'touch /usr/local/bin/x' 2>/dev/null && die "$name could write to its root filesystem"
    printf '  %-15s :%s  /healthz 200  /readyz 200  uid %s  read-only root: %s  compose healthcheck: %s\n' \
      "$name" "$port" "$user" "$ro" "${health:-none}"
  done
}

# Each service's container stopped as an orchestrator stops it (SIGTERM,
# SIGKILL 10 s later) under a stream of requests on fresh connections: it
# must exit by itself (status 0) within the 10 s, and every request must be
# answered, but for connections refused once it stopped accepting.
stop_check() {
  local name port cid t0 ms code load pid answered refused broken
  for name in "${NAMES[@]}"; do
    port="$(local_port "$name")"
    cid="$("${COMPOSE[@]}" ps -q "$name")"
    load="$STATE_DIR/logs/stop-$name.txt"
    : >"$load"
    (while :; do
      curl -s -o /dev/null -w '%{http_code} %{exitcode}\n' --max-time 10 "http://127.0.0.1:$port/healthz" >>"$load" || true
    done) &
    pid=$!
    sleep 1
    t0=$(date +%s%N)
    docker stop -t 10 "$cid" >/dev/null
    ms=$((($(date +%s%N) - t0) / 1000000))
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    code="$(docker inspect -f '{{.State.ExitCode}}' "$cid")"
    answered=$(grep -c '^[1-5][0-9][0-9] 0$' "$load" || true)
    refused=$(grep -c '^000 7$' "$load" || true)
    broken=$(grep -vc -e '^[1-5][0-9][0-9] 0$' -e '^000 7$' "$load" || true)
    # One request broken off at the very moment the listener closed (the
    # last answer before the first refusal) is the race the platform's door
    # (crates/platform/src/server.rs) closes where a socket filter is
    # allowed, which Docker's default profile does not allow
    # (docs/containers.md): shown, not failed. Any other fails.
    at_close=$(awk '/^000 7$/ { if (prev != "" && prev !~ /^[1-5][0-9][0-9] 0$/) print 1; exit } { prev = $0 }' "$load")
    if [ "$broken" = 1 ] && [ "$at_close" = 1 ]; then
      broken=0
      echo "  warning: $name broke off one request at the moment its listener closed: $(grep -v -e '^[1-5][0-9][0-9] 0$' -e '^000 7$' "$load")"
    fi
    printf '  %-15s stopped in %5d ms, exit status %s; %s requests answered, %s refused after the stop, %s broken off\n' \
      "$name" "$ms" "$code" "$answered" "$refused" "$broken"
    [ "$code" = 0 ] || die "$name did not exit by itself on SIGTERM (status $code)"
    [ "$ms" -lt 10000 ] || die "$name took $ms ms to stop"
    [ "$broken" = 0 ] || die "$name broke off $broken requests while stopping: $(grep -v -e '^[1-5][0-9][0-9] 0$' -e '^000 7$' "$load" | sort | uniq -c | tr '\n' ' ')"
  done
}

check() {
  local t0 t1; t0=$(date +%s)
  ensure_engine || die "no Docker engine answers here, and none could be started"
  pick_compose
  build_images
  build_local
  compose_down
  trap stop_sink EXIT
  start_sink
  compose_up
  inspect_containers
  t1=$(date +%s)
  AUTHENTICATOR_URL="http://127.0.0.1:$LOCAL_AUTHENTICATOR_PORT" \
    SAFEKEEPER_URL="http://127.0.0.1:$LOCAL_SAFEKEEPER_PORT" \
    TASK_URL="http://127.0.0.1:$LOCAL_TASK_PORT" \
    USER_DIRECTORY_URL="http://127.0.0.1:$LOCAL_USER_DIRECTORY_PORT" \
    ACCESS_RULE_URL="http://127.0.0.1:$LOCAL_ACCESS_RULE_PORT" \
    ACCOUNTING_URL="http://127.0.0.1:$LOCAL_ACCOUNTING_PORT" \
    ANALYTICS_URL="http://127.0.0.1:$LOCAL_ANALYTICS_PORT" \
    NOTIFIER_URL="http://127.0.0.1:$LOCAL_NOTIFIER_PORT" \
    bash "$ROOT/scripts/smoke.sh" || {
      "${COMPOSE[@]}" logs --tail 30 >&2 || true
      [ "${KEEP:-0}" = 1 ] || compose_down
      die "the smoke test failed against the containers"
    }
  say "smoke test passed in $(elapsed "$t1")"
  check_mail
  docker stats --no-stream --format '  {{.Name}}: {{.MemUsage}}' $("${COMPOSE[@]}" ps -q) 2>/dev/null || true
  if [ "${KEEP:-0}" != 1 ]; then
    say "stopping each service under requests (SIGTERM; SIGKILL after 10 s)"
    stop_check
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    trap - EXIT
    say "left running (KEEP=1): bash scripts/images.sh down stops it${SINK_PID:+ (the SMTP sink, pid $SINK_PID, too: kill $SINK_PID)}"
  else
    compose_down
    stop_sink
  fi
  say "images-check passed in $(elapsed "$t0")"
}

case "${1:-build}" in
  build) ensure_engine || die "no Docker engine answers here, and none could be started"; build_images ;;
  check) check ;;
  local) ensure_engine || die "no Docker engine"; build_local ;;
  base) ensure_engine || die "no Docker engine"; make_local_base ;;
  engine) ensure_engine ;;
  up) compose_up ;;
  inspect) pick_compose; inspect_containers ;;
  stop-check) pick_compose; stop_check ;;
  down) compose_down ;;
  sizes) RUNTIME_BASE="${RUNTIME_BASE:-}"; sizes ;;
  *) die "usage: $0 build|check|local|base|engine|up|inspect|stop-check|down|sizes" ;;
esac
