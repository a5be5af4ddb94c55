#!/usr/bin/env bash
# The smoke test: the demo data, then scripts/smoke.py (probes, a sign-in
# through the OAuth2 code flow, a task created and listed, a deactivation
# reaching the task service). Against `make up` as it is:
#   bash scripts/smoke.sh
# against other addresses (make images-check sets these for the containers):
#   AUTHENTICATOR_URL=... SAFEKEEPER_URL=... TASK_URL=... USER_DIRECTORY_URL=... ACCESS_RULE_URL=... bash scripts/smoke.sh
source "$(dirname "$0")/lib.sh"
export AUTHENTICATOR_URL="${AUTHENTICATOR_URL:-http://127.0.0.1:5000}"
export SAFEKEEPER_URL="${SAFEKEEPER_URL:-http://127.0.0.1:5001}"
export TASK_URL="${TASK_URL:-http://127.0.0.1:5002}"
export USER_DIRECTORY_URL="${USER_DIRECTORY_URL:-http://127.0.0.1:5003}"
export ACCESS_RULE_URL="${ACCESS_RULE_URL:-http://127.0.0.1:5005}"
say "smoke test against $AUTHENTICATOR_URL and its neighbours: demo data"
"$ROOT/scripts/demo-data.sh"
say "smoke test"
python3 "$ROOT/scripts/smoke.py"
