#!/usr/bin/env bash
# The demo data (README, "Demo data"), through the public APIs. Safe to rerun:
# what exists already (409) is left as it is.
source "$(dirname "$0")/lib.sh"

AUTH="${AUTHENTICATOR_URL:-http://127.0.0.1:5000}"

register() {
  local code
  # A 503 (the authenticator's hashing at capacity) is tried again.
  for _ in $(seq 1 60); do
    code=$(curl -sS -o /tmp/demo-register.$$ -w '%{http_code}' -X POST "$AUTH/v1/user" \
      -H 'Content-Type: application/json' -d "$1")
    [ "$code" = 503 ] || break
    sleep 1
  done
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

# --- safekeeper: clients and role grants ---------------------------------
SK="${SAFEKEEPER_URL:-http://127.0.0.1:5001}"
session() { session_token "$AUTH" "$1" "$2"; }
ADMIN_SESSION=$(session admin 'Admin-Passw0rd!')
# The superuser's admin role arrives through iam.user.v1; wait for it.
ADMIN_TOKEN=""
for _ in $(seq 1 150); do
  if out=$(curl -fsS -X POST "$SK/v1/authorize" -H "Authorization: Bearer $ADMIN_SESSION" \
      -H 'Content-Type: application/json' -d '{"scopes":"admin:rbac,admin:client,admin:user"}' 2>/dev/null); then
    ADMIN_TOKEN=$(echo "$out" | json_field access_token); break
  fi
  sleep 0.2
done
[ -n "$ADMIN_TOKEN" ] || die "the safekeeper never learned that admin is a superuser; see $STATE_DIR/logs/safekeeper.log"

create_client() {
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$SK/v1/admin/clients" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$1")
  case "$code" in
    201) echo "  created client $2" ;;
    409) echo "  client $2 exists already" ;;
    *) die "creating client $2 answered $code" ;;
  esac
}
create_client '{"client_id":"demo-spa","name":"Demo SPA","public":true,"first_party":true,
  "redirect_uris":["http://127.0.0.1:8765/callback"],"grant_types":["authorization_code","refresh_token"],
  "scopes":["read:task","edit:task","create:task","delete:task","su_read:task","su_edit:task"]}' demo-spa
create_client '{"client_id":"demo-service","name":"Demo Service","client_secret":"demo-service-secret",
  "grant_types":["client_credentials"],"scopes":["su_read:task"]}' demo-service
# An event producer of the access-rule service (POST /event needs write:event).
create_client '{"client_id":"demo-events","name":"Demo Events","client_secret":"demo-events-secret",
  "grant_types":["client_credentials"],"scopes":["write:event"]}' demo-events

grant() {
  local id=""
  for _ in $(seq 1 150); do
    id=$(curl -fsS "$SK/v1/admin/users?username=$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
      | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[0]["id"] if v else "")')
    [ -n "$id" ] && break
    sleep 0.2
  done
  [ -n "$id" ] || die "the safekeeper does not know $1 yet"
  curl -fsS -o /dev/null -X POST "$SK/v1/admin/users/$id/roles" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d "{\"role\":\"$2\"}"
  echo "  $1 holds $2"
}
grant employer Employer
grant employee Employee

# --- user-directory: its client at the safekeeper, and the acme organization
DIRECTORY_SECRET="${DIRECTORY_CLIENT_SECRET:-user-directory-dev-secret}"
create_client "{\"client_id\":\"user-directory\",\"name\":\"User Directory\",\"client_secret\":\"$DIRECTORY_SECRET\",
  \"grant_types\":[\"client_credentials\"],\"scopes\":[\"provision:user\",\"login:relay\"]}" user-directory
UD="${USER_DIRECTORY_URL:-http://127.0.0.1:5003}"
# acme is named in the directory's configuration: an operator (the
# superuser's session) creates it.
code=$(curl -sS -o /tmp/demo-org.$$ -w '%{http_code}' -X POST "$UD/org/create" -H 'Content-Type: application/json' \
  -H "Authorization: Bearer $ADMIN_SESSION" \
  -d '{"organization_name":"acme","email":"admin@acme.example","password":"Acme-Passw0rd!"}')
case "$code" in
  201) echo "  created organization acme" ;;
  409) echo "  organization acme exists already" ;;
  *) cat /tmp/demo-org.$$ >&2; rm -f /tmp/demo-org.$$; die "creating organization acme answered $code" ;;
esac
rm -f /tmp/demo-org.$$

# --- the dashboards: confidential clients, code flow with PKCE ------------
# Their secrets are the services' DASHBOARD_CLIENT_SECRET (up.sh).
for d in accounting analytics; do
  case "$d" in
    accounting) port=$(service_port accounting) scopes='"read:accounting","su_read:accounting"' ;;
    analytics) port=$(service_port analytics) scopes='"read:analytics"' ;;
  esac
  create_client "{\"client_id\":\"$d-dashboard\",\"name\":\"${d^} dashboard\",
    \"client_secret\":\"${DASHBOARD_CLIENT_SECRET:-$d-dashboard-dev-secret}\",\"first_party\":true,
    \"redirect_uris\":[\"http://127.0.0.1:$port/dashboard/callback\"],
    \"grant_types\":[\"authorization_code\",\"refresh_token\"],\"scopes\":[$scopes]}" "$d-dashboard"
done

# --- task, accounting: a few priced tasks, and balances that show --------
# Once: when the employee has tasks already, they are left as they are.
TASK="${TASK_URL:-http://127.0.0.1:5002}"
access() {
  curl -fsS -X POST "$SK/v1/authorize" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' -d "{\"scopes\":\"$2\"}" | json_field access_token
}
EMPLOYER_TOKEN=$(access "$(session employer 'Employer-Passw0rd!')" 'create:task,su_read:task,su_edit:task')
EMPLOYEE_TOKEN=$(access "$(session employee 'Employee-Passw0rd!')" 'read:task,edit:task')
existing=$(curl -fsS -X POST "$TASK/v1/task/all" -H "Authorization: Bearer $EMPLOYER_TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"start_date":"2000-01-01 00:00:00","end_date":"2100-01-01 00:00:00","counting":true,"_size":1,"query":{"assignee":"employee"}}' |
  json_field count)
if [ "$existing" != 0 ]; then
  echo "  the employee has $existing task(s) already"
else
  # task TITLE PRICE_CENTS: a Task for the employee; prints its id. The
  # task service learns of the employee through iam.user.v1: until then
  # the assignee is unknown (422), so it is tried again.
  task() {
    local out
    for _ in $(seq 1 150); do
      if out=$(curl -fsS -X POST "$TASK/v1/task" -H "Authorization: Bearer $EMPLOYER_TOKEN" \
          -H 'Content-Type: application/json' \
          -d "{\"title\":\"$1\",\"type_id\":1,\"assignee\":\"employee\",\"price_cents\":$2}" 2>/dev/null); then
        echo "$out" | json_field id
        return 0
      fi
      sleep 0.2
    done
    die "the task service would not create '$1' for the employee; see $STATE_DIR/logs/task.log"
  }
  # move ID STATUS_ID...: the employee moves their task along its workflow.
  move() {
    local id="$1" status
    shift
    for status in "$@"; do
      curl -fsS -o /dev/null -X POST "$TASK/v1/tasks/$id" -H "Authorization: Bearer $EMPLOYEE_TOKEN" \
        -H 'Content-Type: application/json' -d "{\"status_id\":$status}"
    done
  }
  # Statuses: 1 To Do, 2 In Progress, 4 Completed. Fee = half the price,
  # reward = the price (the default ratios).
  move "$(task 'Upgrade the database to PostgreSQL 17' 6000)" 2 4
  move "$(task 'Rotate the signing keys' 2000)" 2 4
  move "$(task 'Write the on-call runbook' 1500)" 2
  echo "  three priced tasks for the employee, two completed: balance 32.50 once accounting applied them"
fi
