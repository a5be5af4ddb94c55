#!/usr/bin/env python3
"""The fault suite's cases, run by scripts/chaos.sh against a platform of
its own (real processes, real PostgreSQL, real broker). Each case writes
while a fault happens, then checks what must hold afterwards and says
PASS or FAIL with the figures; the exit status is 1 when any case failed.

Standard library only: the checks read the services' databases with psql.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

OFFSET = int(os.environ.get("PORT_OFFSET", "800"))
STATE_DIR = os.environ["STATE_DIR"]
PG_URL = os.environ["PGHOST_URL"]
DB_SUFFIX = os.environ.get("DB_SUFFIX", "_chaos")
PG_CTL = os.environ["CHAOS_PG_CTL"]
PG_DATA = os.environ["CHAOS_PG_DATA"]
KAFKA_PORT = int(os.environ["KAFKA_PORT"])
BROKER_NAME = os.environ.get("BROKER_NAME", "tansu-chaos")
HANG_SECONDS = float(os.environ.get("CHAOS_HANG_SECONDS", "30"))
CASES = os.environ.get("CHAOS_CASES", "broker,postgres,sigkill,sigterm").split(",")

PORTS = {
    "authenticator": 5000 + OFFSET,
    "safekeeper": 5001 + OFFSET,
    "task": 5002 + OFFSET,
    "user-directory": 5003 + OFFSET,
    "access-rule": 5005 + OFFSET,
}
DATABASES = {
    "authenticator": "authenticator",
    "safekeeper": "safekeeper",
    "task": "task",
    "user-directory": "user_directory",
    "access-rule": "access_rule",
}
# A client gives up on a request after this long: a request that takes
# longer "hangs", which no case allows.
REQUEST_TIMEOUT = 10.0


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- HTTP -----------------------------------------------------------------


class Answer:
    def __init__(self, status, body, started, ended, error=None):
        self.status, self.body, self.started, self.ended, self.error = (
            status,
            body,
            started,
            ended,
            error,
        )

    @property
    def seconds(self):
        return self.ended - self.started


def call(service, method, path, body=None, token=None, timeout=REQUEST_TIMEOUT):
    """One request on a fresh connection. Never raises: a refused or broken
    connection is an Answer with status None and the error's name."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", PORTS[service], timeout=timeout)
    headers = {"Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(resp.status, parsed, started, time.monotonic())
    except Exception as e:  # noqa: BLE001 - every failure is an outcome here
        return Answer(None, None, started, time.monotonic(), type(e).__name__)
    finally:
        conn.close()


def must(answer, what, *ok):
    if answer.status not in ok:
        raise SystemExit(f"{what}: answered {answer.status or answer.error}: {answer.body}")
    return answer.body


def session(username, password):
    a = call("authenticator", "POST", "/v1/login", {"username": username, "password": password})
    return must(a, f"login as {username}", 200)["session_token"]


def access_token(session_token, scopes):
    a = call("safekeeper", "POST", "/v1/authorize", {"scopes": scopes}, session_token)
    return must(a, f"authorize {scopes}", 200)["access_token"]


class Actors:
    """The demo users' credentials, fresh for each case (access tokens
    live five minutes)."""

    def __init__(self):
        self.admin_session = session("admin", "Admin-Passw0rd!")
        self.sk_admin = access_token(self.admin_session, "admin:rbac,admin:user")
        employer = session("employer", "Employer-Passw0rd!")
        self.task_token = access_token(employer, "read:task")


# --- databases --------------------------------------------------------------


def sql(service, query):
    """Rows of `query` in `service`'s database, each a list of strings."""
    out = subprocess.run(
        ["psql", f"{PG_URL}/{DATABASES[service]}{DB_SUFFIX}", "-XtA", "-F", "\t", "-c", query],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def unpublished(service):
    return int(sql(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0])


def accounts():
    return {
        r[0]: (r[1], r[2], r[3])
        for r in sql("authenticator", "SELECT id, username, is_active, version FROM accounts")
    }


def read_models_differ():
    """What the task service's and the safekeeper's copies of the accounts
    get wrong (empty when both equal the authenticator's), and role grants
    the task service has not seen at the safekeeper's version."""
    truth = accounts()
    wrong = []
    task = {
        r[0]: (r[1], r[2], r[3])
        for r in sql("task", "SELECT id, username, is_active, user_version FROM users WHERE username IS NOT NULL")
    }
    keeper = {
        r[0]: (r[1], r[2], r[3])
        for r in sql("safekeeper", "SELECT id, username, is_active, version FROM users")
    }
    for name, copy in (("task", task), ("safekeeper", keeper)):
        for id_, row in truth.items():
            if copy.get(id_) != row:
                wrong.append(f"{name}: {id_} is {copy.get(id_)}, the authenticator says {row}")
        for id_ in copy.keys() - truth.keys():
            wrong.append(f"{name}: {id_} is not an account")
    roles = {r[0]: r[1] for r in sql("safekeeper", "SELECT user_id, version FROM user_role_version")}
    task_roles = {r[0]: r[1] for r in sql("task", "SELECT id, role_version FROM users")}
    for id_, version in roles.items():
        if task_roles.get(id_) != version:
            wrong.append(f"task: roles of {id_} at version {task_roles.get(id_)}, the safekeeper's at {version}")
    return wrong


def converge(seconds=90):
    """Waits until every outbox is empty and the read models equal the
    accounts; returns what still differs when the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        pending = {s: unpublished(s) for s in ("authenticator", "safekeeper")}
        wrong = read_models_differ() if not any(pending.values()) else []
        if not any(pending.values()) and not wrong:
            return []
        if time.monotonic() > deadline:
            return [f"unpublished outbox rows: {pending}"] + wrong[:10]
        time.sleep(0.5)


# --- processes ---------------------------------------------------------------


def pid_of(name):
    with open(os.path.join(STATE_DIR, "pids", f"{name}.pid")) as f:
        return int(f.read().strip())


class Process:
    """A running service or broker, as the platform started it, so that a
    case can kill it and start it again the same way."""

    def __init__(self, name):
        self.name = name
        self.pid = pid_of(name)
        with open(f"/proc/{self.pid}/cmdline", "rb") as f:
            self.argv = [a.decode() for a in f.read().split(b"\0") if a]
        with open(f"/proc/{self.pid}/environ", "rb") as f:
            self.env = dict(
                kv.decode().split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv
            )
        self.cwd = os.readlink(f"/proc/{self.pid}/cwd")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            # A zombie of ours counts as gone.
            try:
                with open(f"/proc/{self.pid}/stat") as f:
                    if f.read().split()[2] == "Z":
                        return True
            except FileNotFoundError:
                return True
            time.sleep(0.05)
        return False

    def start(self):
        logf = open(os.path.join(STATE_DIR, "logs", f"{self.name}.log"), "ab")
        p = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
        self.pid = p.pid
        with open(os.path.join(STATE_DIR, "pids", f"{self.name}.pid"), "w") as f:
            f.write(str(p.pid))


def wait_ready(service, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if call(service, "GET", "/readyz", timeout=2).status == 200:
            return True
        time.sleep(0.2)
    return False


# --- writers -----------------------------------------------------------------


class Writer(threading.Thread):
    """Creates accounts (and deactivates every third one it made, and grants
    every second one a role once the safekeeper knows it) until stopped;
    records every answer."""

    def __init__(self, actors, tag):
        super().__init__(daemon=True)
        self.actors, self.tag = actors, tag
        self.stop = threading.Event()
        self.created, self.answers, self.pending_grants = [], [], []

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            name = f"chaos-{self.tag}-{n}-{uuid.uuid4().hex[:6]}"
            a = call(
                "authenticator",
                "POST",
                "/v1/users",
                {"username": name, "password": "Chaos-Passw0rd!", "email": f"{name}@example.com", "firstname": "Chaos", "lastname": "Case"},
                self.actors.admin_session,
            )
            self.answers.append(("create", a))
            if a.status == 201:
                self.created.append(a.body["id"])
                if n % 3 == 0:
                    d = call("authenticator", "POST", f"/v1/users/{a.body['id']}/deactivate", {}, self.actors.admin_session)
                    self.answers.append(("deactivate", d))
                if n % 2 == 0:
                    self.pending_grants.append(a.body["id"])
            self.grant_known()
            time.sleep(0.05)

    def grant_known(self):
        still = []
        for id_ in self.pending_grants:
            g = call("safekeeper", "POST", f"/v1/admin/users/{id_}/roles", {"role": "Employee"}, self.actors.sk_admin)
            if g.status == 404:
                still.append(id_)  # not known there yet: the event is on its way
            else:
                self.answers.append(("grant", g))
        self.pending_grants = still

    def finish(self):
        self.stop.set()
        self.join()


# --- cases -------------------------------------------------------------------


def broker_case():
    """Broker frozen (SIGSTOP) for CHAOS_HANG_SECONDS, then killed and
    started again, while accounts and grants are written. Holds: every
    write answers in time; every change is published; the read models
    equal the source (an event applied twice or lost would show as a wrong
    version)."""
    actors = Actors()
    broker = Process(BROKER_NAME)
    w = Writer(actors, "broker")
    w.start()
    time.sleep(3)
    log(f"freezing the broker for {HANG_SECONDS:.0f} s")
    broker.signal(signal.SIGSTOP)
    time.sleep(HANG_SECONDS)
    broker.signal(signal.SIGCONT)
    log("killing the broker and starting it again")
    broker.signal(signal.SIGKILL)
    broker.wait_exit()
    broker.start()
    time.sleep(5)
    w.finish()
    problems = []
    slow = [a for _, a in w.answers if a.status is None or a.seconds >= REQUEST_TIMEOUT]
    failed = [(k, a.status, a.body) for k, a in w.answers if a.status not in (200, 201, 204, 409)]
    if slow:
        problems.append(f"{len(slow)} writes hung or broke ({slow[0].error})")
    if failed:
        problems.append(f"{len(failed)} writes failed: {failed[:5]}")
    w.grant_known()
    problems += converge()
    return problems, f"{len(w.created)} accounts written through the fault"


def postgres_case():
    """PostgreSQL restarted under load. Holds: no request hangs; no 500
    (503 while the database is away); every service answers again within
    15 s of the database's return, without being restarted; every
    acknowledged account reaches the read models."""
    actors = Actors()
    reads = [
        ("authenticator", "GET", "/v1/users?limit=1", actors.admin_session),
        ("safekeeper", "GET", "/v1/admin/users?username=employer", actors.sk_admin),
        ("task", "GET", f"/v1/tasks/{uuid.uuid4()}", actors.task_token),
        ("access-rule", "GET", f"/canmessage?user_id={uuid.uuid4()}", None),
    ]
    results = []
    stop = threading.Event()

    def reader(i):
        while not stop.is_set():
            service, method, path, token = reads[i % len(reads)]
            results.append((service, call(service, method, path, token=token)))
            i += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    w = Writer(actors, "pg")
    w.start()
    time.sleep(4)
    log("restarting PostgreSQL")
    down = time.monotonic()
    pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # The new server keeps the output it inherits open: a log file, not a pipe.
    subprocess.run(
        pg + [PG_CTL, "-D", PG_DATA, "-l", os.path.join(PG_DATA, "server.log"), "-m", "fast", "-w", "restart"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    back = time.monotonic()
    log(f"PostgreSQL is back after {back - down:.1f} s")
    time.sleep(20)
    stop.set()
    w.finish()
    for t in threads:
        t.join()
    problems = []
    results += [("authenticator", a) for _, a in w.answers]
    hung = [(s, a.error) for s, a in results if a.status is None]
    if hung:
        problems.append(f"{len(hung)} requests got no answer: {hung[:3]}")
    errors = [(s, a.status, a.body) for s, a in results if a.status is not None and a.status >= 500 and a.status != 503]
    if errors:
        problems.append(f"{len(errors)} answers were 5xx other than 503: {errors[:3]}")
    for service in {r[0] for r in reads}:
        late = [a for s, a in results if s == service and a.started > back + 15 and a.status not in (200, 201, 404)]
        if late:
            problems.append(f"{service} still failed 15 s after the database returned: {late[0].status} {late[0].body}")
    unavailable = sum(1 for _, a in results if a.status == 503)
    w.grant_known()
    problems += converge()
    return problems, (
        f"{len(results)} reads, {unavailable} answered 503 while the database was away; "
        f"{len(w.created)} accounts acknowledged"
    )


def sigkill_case():
    """The task service and the safekeeper (both consumers) killed with
    SIGKILL while accounts are written, then started again. Holds: their
    read models equal the authenticator's accounts."""
    actors = Actors()
    w = Writer(actors, "kill")
    w.start()
    time.sleep(3)
    victims = [Process("task"), Process("safekeeper")]
    log("killing the task service and the safekeeper (SIGKILL)")
    for p in victims:
        p.signal(signal.SIGKILL)
    for p in victims:
        p.wait_exit()
    time.sleep(2)
    for p in victims:
        p.start()
    problems = [f"{p.name} did not become ready again" for p in victims if not wait_ready(p.name)]
    # The old tokens stay valid: the signing keys persist in STATE_DIR.
    time.sleep(3)
    w.finish()
    w.grant_known()
    problems += converge()
    return problems, f"{len(w.created)} accounts written around the kill"


def sigterm_case():
    """SIGTERM under load. Holds: the stopping task service says at once
    that it is not ready (draining); every request sent while a load
    balancer would still route to it is answered, without a 5xx; once it
    stops, new connections are refused; it exits within the drain and the
    10 s given to requests in flight; the authenticator's relay publishes
    what it holds before it exits."""
    actors = Actors()
    results = []
    routed = threading.Event()
    routed.set()

    def reader():
        while routed.is_set():
            results.append(call("task", "GET", f"/v1/tasks/{uuid.uuid4()}", token=actors.task_token))

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(2)
    task = Process("task")
    log("stopping the task service (SIGTERM) under load")
    task.signal(signal.SIGTERM)
    signalled = time.monotonic()
    draining = None
    while draining is None and time.monotonic() - signalled < 1:
        r = call("task", "GET", "/readyz")
        if r.status == 503 and isinstance(r.body, dict) and r.body.get("status") == "draining":
            draining = time.monotonic() - signalled
    # A load balancer takes a replica out of rotation a little after its
    # readiness fails (a probe period, then the endpoints' update): the
    # readers go on for 2 s, within the drain (SHUTDOWN_DRAIN_SECONDS, 5).
    time.sleep(2)
    routed.clear()
    for t in threads:
        t.join()
    exited = task.wait_exit(20)
    took = time.monotonic() - signalled
    after = call("task", "GET", "/healthz")
    problems = [] if exited else ["the task service did not exit within 20 s of SIGTERM"]
    if draining is None:
        problems.append("/readyz did not answer 503 draining within 1 s of SIGTERM")
    five = [a.status for a in results if a.status is not None and a.status >= 500]
    broken = [a.error for a in results if a.status is None]
    if five:
        problems.append(f"{len(five)} answers were 5xx while draining: {five[:5]}")
    if broken:
        problems.append(f"{len(broken)} requests got no answer while draining: {broken[:5]}")
    if exited and after.error != "ConnectionRefusedError":
        problems.append(f"after the stop a new connection was not refused: {after.status or after.error}")
    task.start()
    if not wait_ready("task"):
        problems.append("the task service did not become ready again")

    # The relay's flush: writes acknowledged just before SIGTERM are on the
    # broker when the process has exited.
    auth = Process("authenticator")
    made = []
    for i in range(20):
        name = f"chaos-term-{i}-{uuid.uuid4().hex[:6]}"
        a = call("authenticator", "POST", "/v1/users", {"username": name, "password": "Chaos-Passw0rd!", "email": f"{name}@example.com", "firstname": "Chaos", "lastname": "Case"}, actors.admin_session)
        if a.status == 201:
            made.append(a.body["id"])
    log("stopping the authenticator (SIGTERM) right after 20 writes")
    auth.signal(signal.SIGTERM)
    if not auth.wait_exit(20):
        problems.append("the authenticator did not exit within 20 s of SIGTERM")
    left = unpublished("authenticator")
    if left:
        problems.append(f"the authenticator exited with {left} outbox rows unpublished")
    auth.start()
    if not wait_ready("authenticator"):
        problems.append("the authenticator did not become ready again")
    problems += converge()
    return problems, (
        f"{len(results)} requests answered while draining; not ready after "
        f"{(draining or 0) * 1000:.0f} ms; exited {took:.1f} s after SIGTERM; "
        f"{len(made)} writes before the authenticator's stop"
    )


ALL = {"broker": broker_case, "postgres": postgres_case, "sigkill": sigkill_case, "sigterm": sigterm_case}


def main():
    failed = []
    for name in CASES:
        case = ALL.get(name.strip())
        if case is None:
            raise SystemExit(f"unknown case {name!r}; the cases are {', '.join(ALL)}")
        log(f"--- {name}: {case.__doc__.split('.')[0].strip()}")
        started = time.monotonic()
        problems, figures = case()
        took = time.monotonic() - started
        if problems:
            failed.append(name)
            log(f"FAIL {name} ({took:.0f} s): {figures}")
            for p in problems:
                log(f"     {p}")
        else:
            log(f"PASS {name} ({took:.0f} s): {figures}")
    if failed:
        log(f"failed: {', '.join(failed)}")
        sys.exit(1)
    log("every case held")


if __name__ == "__main__":
    main()
