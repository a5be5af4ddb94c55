#!/usr/bin/env python3
"""The platform's smoke test, through the public APIs only (standard library).

Run by scripts/smoke.sh after the demo data; the services' addresses come from
AUTHENTICATOR_URL, SAFEKEEPER_URL, TASK_URL, USER_DIRECTORY_URL and
ACCESS_RULE_URL (default: `make up`'s ports). It checks:

1. every service answers /healthz and /readyz;
2. the employer signs in through the OAuth2 code flow (demo-spa, PKCE): the
   login page, its form, the redirect with the code, the code exchanged;
3. with that token a task is created for the employee and listed, and the
   employee sees it among their own tasks;
4. the employee is deactivated at the authenticator and the task service
   refuses the employee's token (the event reached its read model); then the
   employee is activated again, as the demo data had it.
"""

import base64
import hashlib
import html
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

AUTH = os.environ.get("AUTHENTICATOR_URL", "http://127.0.0.1:5000").rstrip("/")
SK = os.environ.get("SAFEKEEPER_URL", "http://127.0.0.1:5001").rstrip("/")
TASK = os.environ.get("TASK_URL", "http://127.0.0.1:5002").rstrip("/")
UD = os.environ.get("USER_DIRECTORY_URL", "http://127.0.0.1:5003").rstrip("/")
AR = os.environ.get("ACCESS_RULE_URL", "http://127.0.0.1:5005").rstrip("/")
REDIRECT = "http://127.0.0.1:8765/callback"
WAIT = float(os.environ.get("SMOKE_WAIT_SECONDS", "30"))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def cookies(self):
        """name=value of every Set-Cookie."""
        return dict(
            c.split(";", 1)[0].split("=", 1) for c in self.headers.get_all("Set-Cookie") or []
        )


def call(method, url, body=None, form=None, token=None, cookies=None, headers=None):
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        h["Authorization"] = f"Bearer {token}"
    if cookies:
        h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with OPENER.open(req, timeout=15) as r:
            return Answer(r.status, r.headers, r.read().decode())
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.headers, e.read().decode(errors="replace"))


def expect(answer, status, what):
    if answer.status != status:
        fail(f"{what}: expected {status}, got {answer.status}: {answer.body[:400]}")
    return answer


def fail(message):
    print(f"smoke: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def ok(message):
    print(f"  ok  {message}")


def until(what, attempt):
    """Retries `attempt` (a function returning a value or None) for WAIT s."""
    deadline = time.monotonic() + WAIT
    while True:
        value = attempt()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            fail(f"{what}: not within {WAIT:.0f} s")
        time.sleep(0.2)


def hidden(page, name):
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    if not m:
        fail(f"the sign-in page has no {name} field")
    return html.unescape(m.group(1))


def session(username, password):
    a = call("POST", f"{AUTH}/v1/login", body={"username": username, "password": password})
    return expect(a, 200, f"logging in {username}").json()["session_token"]


def probes():
    for name, url in [
        ("authenticator", AUTH),
        ("safekeeper", SK),
        ("task", TASK),
        ("user-directory", UD),
        ("access-rule", AR),
    ]:
        for path in ("/healthz", "/readyz"):
            expect(call("GET", url + path), 200, f"{name} {path}")
    ok("every service answers /healthz and /readyz")


def code_flow(username, password, scope):
    """The authorization code flow with PKCE, as a browser would go through it."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    state = secrets.token_urlsafe(12)
    authorize = f"{SK}/oauth2/authorize?" + urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "demo-spa",
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    page = expect(call("GET", authorize), 200, "the sign-in page")
    jar = page.cookies()
    if "sk_login" not in jar:
        fail("the sign-in page set no sk_login cookie")
    form = {
        "username": username,
        "password": password,
        "return_to": hidden(page.body, "return_to"),
        "csrf": hidden(page.body, "csrf"),
    }
    signed_in = expect(
        call("POST", f"{SK}/oauth2/login", form=form, cookies=jar), 303, "signing in"
    )
    jar.update(signed_in.cookies())
    if "sk_session" not in jar:
        fail("signing in set no sk_session cookie")
    back = urllib.parse.urljoin(SK, signed_in.headers["Location"])
    # A first-party client: no consent page, straight to the redirect URI.
    redirected = expect(call("GET", back, cookies=jar), 302, "the authorization redirect")
    location = redirected.headers["Location"]
    if not location.startswith(REDIRECT + "?"):
        fail(f"redirected to {location}, not {REDIRECT}")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    if query.get("state") != state or "code" not in query:
        fail(f"the redirect carries no code or another state: {location}")
    tokens = expect(
        call(
            "POST",
            f"{SK}/oauth2/token",
            form={
                "grant_type": "authorization_code",
                "client_id": "demo-spa",
                "code": query["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
        ),
        200,
        "exchanging the code",
    ).json()
    granted = set(tokens.get("scope", "").split())
    if not set(scope.split()) <= granted:
        fail(f"asked for {scope}, granted {tokens.get('scope')}")
    ok(f"{username} signed in through the code flow (PKCE); granted {tokens['scope']}")
    return tokens["access_token"]


def seed_token(username, password, scopes):
    """An access token of the seed flow: session token, then /v1/authorize."""
    s = session(username, password)
    a = call("POST", f"{SK}/v1/authorize", body={"scopes": scopes}, token=s)
    return expect(a, 200, f"an access token for {username}").json()["access_token"]


def tasks():
    employer = code_flow("employer", "Employer-Passw0rd!", "read:task create:task su_read:task")
    title = f"smoke test {secrets.token_hex(4)}"

    def create():
        a = call(
            "POST",
            f"{TASK}/v1/task",
            body={"title": title, "type_id": 1, "severity_id": 2, "assignee": "employee"},
            token=employer,
        )
        # 401/403/422 while the users read model catches up with the demo data.
        if a.status in (401, 403, 422):
            return None
        return expect(a, 201, "creating a task").json()

    task = until("creating a task (the task service learning the users)", create)
    ok(f"task {task['id']} created for {task['assignee']} ({task['status']})")

    listed = expect(
        call(
            "POST",
            f"{TASK}/v1/task/all",
            body={"query": {"assignee": "employee"}, "counting": True, "_size": 100},
            token=employer,
        ),
        200,
        "listing tasks",
    ).json()
    if task["id"] not in [t["id"] for t in listed["tasks"]]:
        fail("the new task is not in /v1/task/all")
    ok(f"listed among the employee's {listed['count']} task(s) (/v1/task/all)")

    employee = seed_token("employee", "Employee-Passw0rd!", "read:task")
    own = expect(
        call("POST", f"{TASK}/v1/task/own", body={"_size": 100}, token=employee),
        200,
        "the employee's own tasks",
    ).json()
    if task["id"] not in [t["id"] for t in own["tasks"]]:
        fail("the new task is not among the employee's own (/v1/task/own)")
    ok("the employee sees it (/v1/task/own)")
    return employer, employee, task


def deactivation(employer, employee_token, task):
    admin = session("admin", "Admin-Passw0rd!")
    users = expect(
        call("GET", f"{AUTH}/v1/users?username_prefix=employee&limit=10", token=admin),
        200,
        "finding the employee",
    ).json()["items"]
    employee_id = next(u["id"] for u in users if u["username"] == "employee")
    expect(
        call("POST", f"{AUTH}/v1/users/{employee_id}/deactivate", token=admin),
        200,
        "deactivating the employee",
    )
    started = time.monotonic()
    try:

        def refused():
            a = call("POST", f"{TASK}/v1/task/own", body={}, token=employee_token)
            return a.status if a.status == 401 else None

        until("the task service refusing the deactivated employee", refused)
        seen = expect(
            call("GET", f"{TASK}/v1/users/{employee_id}", token=employer),
            200,
            "the task service's read model",
        ).json()
        if seen.get("active") is not False:
            fail(f"the task service's read model still has the employee active: {seen}")
        ok(
            "deactivation reached the task service in "
            f"{(time.monotonic() - started) * 1000:.0f} ms (401 for the employee's token)"
        )
    finally:
        a = call("POST", f"{AUTH}/v1/users/{employee_id}/activate", token=admin)
        if a.status != 200:
            print(f"smoke: could not activate the employee again: {a.status}", file=sys.stderr)

    def back():
        token = seed_token("employee", "Employee-Passw0rd!", "read:task")
        a = call("POST", f"{TASK}/v1/task/own", body={}, token=token)
        return True if a.status == 200 else None

    until("the employee back at the task service", back)
    ok("activated again: the employee's new token works at the task service")


def main():
    started = time.monotonic()
    probes()
    employer, employee, task = tasks()
    deactivation(employer, employee, task)
    print(f"smoke: passed in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
