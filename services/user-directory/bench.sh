#!/usr/bin/env bash
# The user directory's benchmark (for `make bench`): an authenticator, a
# safekeeper and the directory in one release process against fresh
# databases and the local broker. Writes target/bench/user-directory.json.
# Extra arguments go to the bench, e.g. `--rows 5000 --seconds 10`.
source "$(dirname "$0")/../../scripts/lib.sh"
ensure_postgres
ensure_broker
# The services in the bench process find the broker here.
export KAFKA_BROKERS
say "measuring the user directory (release build)"
cd "$ROOT"
cargo run --release --locked -q -p user-directory --example bench -- \
  --out "$ROOT/target/bench/user-directory.json" "$@"
