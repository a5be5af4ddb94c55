#!/usr/bin/env bash
# The demo data of ARCHITECTURE.md, through the public APIs. Safe to rerun:
# what exists already (409) is left as it is.
source "$(dirname "$0")/lib.sh"

AUTH="${AUTHENTICATOR_URL:-http://127.0.0.1:5000}"

register() {
  local code
  code=$(curl -sS -o /tmp/demo-register.$$ -w '%{http_code}' -X POST "$AUTH/v1/user" \
    -H 'Content-Type: application/json' -d "$1")
  case "$code" in
    201) echo "  created $2" ;;
    409) echo "  $2 exists already" ;;
    *) cat /tmp/demo-register.$$ >&2; rm -f /tmp/demo-register.$$; die "registering $2 answered $code" ;;
  esac
  rm -f /tmp/demo-register.$$
}

# The superuser 'admin' is created by the authenticator at start
# (BOOTSTRAP_ADMIN_USERNAME / BOOTSTRAP_ADMIN_PASSWORD).
register '{"username":"employer","password":"Employer-Passw0rd!","email":"employer@example.com","firstname":"Erin","lastname":"Employer","phone":"+1 555 0100"}' employer
register '{"username":"employee","password":"Employee-Passw0rd!","email":"employee@example.com","firstname":"Eddie","lastname":"Employee","phone":"+1 555 0101"}' employee
