//! `bench soak`: a steady mixed load across the five services for
//! `--seconds` (default 600) after a `--warm-up` (default 120 s: the
//! services' caches fill, the pruned tables reach their level and the
//! first pruning rounds, which delete what setup wrote, are over), then
//! the verdict on four criteria (issue 17 §6).
//!
//! The load is open loop at fixed rates well below saturation (about 270
//! requests a second in all on two cores; `--rate-scale` multiplies every
//! rate), so that latency measures the services rather than queues in
//! front of them: [`ROUTES`] lists each route and its rate. Requests whose
//! answer the next needs (the code flow, a token then its revocation) run
//! as flows, each step measured; the others are prepared bytes sent by
//! [`overload::open_loop`] on kept-alive connections. Access tokens are
//! fetched again every [`REFRESH_EVERY`] (the soak platform makes them
//! last a minute, so that revocations expire and are pruned within it).
//!
//! At the end of every minute it records, per service, the p99 and the
//! errors of that minute, the resident memory (VmRSS of the PID in
//! `<state dir>/pids/<service>.pid`, or `--pid service=PID`), and the rows
//! of every table retention prunes ([`PRUNED`], counted with `psql` in the
//! `<database><--db-suffix>` databases); at the end, each service's
//! `rows_pruned_total` and `prune_failures_total`. So that a slow minute
//! can be told from a slow service on a shared machine, it also records
//! the CPU each service used, and the broker (any other pidfile there),
//! the soak's PostgreSQL backends, itself, and the machine as a whole
//! (what is left is other work). It prints a table per minute and the
//! verdict, writes `--out` (JSON), and fails when one of these fails:
//!
//! - no errors: every scheduled request was sent on time and answered
//!   with its expected status, warm-up included;
//! - resident memory of every service grew less than 10 % from the end of
//!   the first minute (after the warm-up) to the end;
//! - no service slowed down: its p99 of the last minute is at most 20 %
//!   above its p99 of the first minute (a soak looks for what degrades
//!   with time; a last minute faster than the first, common when the first
//!   still met a cold cache or a vacuum, is shown but is no failure);
//! - pruned tables stay flat: the highest count of the last two minutes is
//!   at most 10 % (plus 10 rows) above the highest count of the first two
//!   minutes that end `--settle` seconds (default 150; scripts/soak.sh
//!   gives the longest window plus two retention intervals) after the load
//!   began, and no pruning statement failed. A table whose window the
//!   soak cannot shorten ([`Pruned::judged`] false) is shown, not judged;
//!   with too few minutes for both windows, no table is judged.

use std::{
    collections::BTreeMap,
    future::Future,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, bail, Context};
use reqwest::{header, Client, StatusCode, Url};
use ring::hmac;
use serde_json::{json, Value};

use crate::{
    load::{drive, expect, fetch, Scenario},
    overload::{self, OpenLoop},
    report::cores,
    safekeeper::{
        self, authorize, json_of, text, Setup, PASSWORD, REDIRECT, SERVICE_SCOPE, USER_SCOPES,
        VERIFIER,
    },
    task::{self, Actors, EMPLOYEE_SCOPES, EMPLOYER_SCOPES},
    wire,
};

/// The services, in the order of the tables.
pub const SERVICES: [&str; 5] = [
    "authenticator",
    "safekeeper",
    "task",
    "user-directory",
    "access-rule",
];

/// The flow of a token then its revocation (two requests).
const REVOCATION_FLOW: &str = "revocation flow: token, then POST /oauth2/revoke";
/// The code flow (four requests).
const CODE_FLOW: &str = "code flow: GET /oauth2/authorize, code, refresh, revoke";

/// Each route of the mix: service, route, requests a second (before
/// `--rate-scale`), requests each time (the flows' steps are measured
/// each under its own name).
pub const ROUTES: &[(&str, &str, f64, u32)] = &[
    ("authenticator", "POST /v1/login", 1.0, 1),
    ("authenticator", "GET /v1/me", 40.0, 1),
    ("authenticator", "PATCH /v1/users/{id}", 1.0, 1),
    (
        "safekeeper",
        "POST /oauth2/token (client_credentials)",
        10.0,
        1,
    ),
    ("safekeeper", "POST /oauth2/introspect", 20.0, 1),
    ("safekeeper", "POST /v1/authorize", 10.0, 1),
    ("safekeeper", REVOCATION_FLOW, 1.0, 2),
    ("safekeeper", CODE_FLOW, 0.5, 4),
    ("task", "POST /v1/task", 5.0, 1),
    ("task", "POST /v1/task/own", 20.0, 1),
    ("task", "POST /v1/task/all", 5.0, 1),
    ("task", "GET /v1/users/{id}", 5.0, 1),
    ("user-directory", "GET /org/get", 10.0, 1),
    ("user-directory", "GET /v1/users", 10.0, 1),
    ("user-directory", "POST /v1/users", 1.0, 1),
    ("user-directory", "POST /v1/webhooks/workos", 5.0, 1),
    ("access-rule", "GET /canmessage", 80.0, 1),
    ("access-rule", "GET /canpurchase", 20.0, 1),
    ("access-rule", "POST /event (flag_scam_message)", 10.0, 1),
    ("access-rule", "POST /event (add_credit_card)", 10.0, 1),
];

/// How often access tokens are fetched anew.
pub const REFRESH_EVERY: Duration = Duration::from_secs(20);
/// Users the checks ask about: few enough that the check cache holds them
/// all after the warm-up (its filling is not a leak).
const CHECKED_USERS: u64 = 2000;
/// The p99 of the last minute within this share of the first minute's.
const P99_TOLERANCE: f64 = 0.20;
/// Resident memory may grow less than this share.
const RSS_GROWTH_LIMIT: f64 = 0.10;
/// A pruned table is flat when its last counts stay under the reference
/// times this, plus [`FLAT_SLACK_ROWS`].
const FLAT_RATIO: f64 = 1.10;
const FLAT_SLACK_ROWS: f64 = 10.0;
/// The longest run: the soak's sessions (authenticator, organization
/// admin) last an hour and are not renewed.
const MAX_SECONDS: u64 = 3000;

/// A table that retention prunes.
#[derive(Debug, Clone, Copy)]
pub struct Pruned {
    pub service: &'static str,
    pub table: &'static str,
    /// Judged for flatness: its window is one the soak shortens.
    pub judged: bool,
}

const fn pruned(service: &'static str, table: &'static str) -> Pruned {
    Pruned {
        service,
        table,
        judged: true,
    }
}

/// Every table retention prunes (crates/platform/src/retention.rs and the
/// services' `pruner`s). The task service prunes nothing: its outbox is
/// counted all the same, since it should stay empty. `grant_family` is
/// kept until an hour after its access tokens expire (a constant of
/// `grants::retention_steps`): it grows through a 10-minute soak.
pub const PRUNED: [Pruned; 14] = [
    pruned("authenticator", "outbox"),
    pruned("safekeeper", "outbox"),
    pruned("safekeeper", "authorization_code"),
    pruned("safekeeper", "refresh_token"),
    pruned("safekeeper", "revoked_access_token"),
    Pruned {
        service: "safekeeper",
        table: "grant_family",
        judged: false,
    },
    pruned("task", "outbox"),
    pruned("user-directory", "outbox"),
    pruned("user-directory", "provider_events"),
    pruned("user-directory", "user_creations"),
    pruned("user-directory", "provider_tasks"),
    pruned("user-directory", "import_jobs"),
    pruned("access-rule", "outbox"),
    pruned("access-rule", "events"),
];

/// What `bench soak` is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub auth: String,
    pub sk: String,
    pub task: String,
    pub ud: String,
    pub ar: String,
    pub seconds: u64,
    pub warm_up: u64,
    pub settle: u64,
    pub rate_scale: f64,
    pub out: PathBuf,
    pub state_dir: PathBuf,
    pub pids: Vec<(String, u32)>,
    /// The PostgreSQL server, without a database.
    pub pg: String,
    pub db_suffix: String,
    pub webhook_secret: Option<String>,
    pub events_client: String,
    pub events_secret: String,
    pub org_admin: String,
    pub org_password: String,
}

impl Default for Options {
    /// `make up`'s platform and demo data.
    fn default() -> Self {
        Self {
            auth: "http://127.0.0.1:5000".into(),
            sk: "http://127.0.0.1:5001".into(),
            task: "http://127.0.0.1:5002".into(),
            ud: "http://127.0.0.1:5003".into(),
            ar: "http://127.0.0.1:5005".into(),
            seconds: 600,
            warm_up: 120,
            settle: 150,
            rate_scale: 1.0,
            out: PathBuf::from("target/bench/soak.json"),
            state_dir: PathBuf::from(".state"),
            pids: Vec::new(),
            pg: "postgres://postgres@127.0.0.1:5432".into(),
            db_suffix: String::new(),
            webhook_secret: None,
            events_client: "demo-events".into(),
            events_secret: "demo-events-secret".into(),
            org_admin: "admin@acme.example".into(),
            org_password: "Acme-Passw0rd!".into(),
        }
    }
}

impl Options {
    pub fn check(&self) -> anyhow::Result<()> {
        if self.seconds == 0 || self.seconds + self.warm_up > MAX_SECONDS {
            bail!("--seconds must be 1 to {MAX_SECONDS} (with the warm-up)");
        }
        if !(self.rate_scale > 0.0 && self.rate_scale <= 10.0) {
            bail!("--rate-scale must be above 0 and at most 10");
        }
        Ok(())
    }

    fn url(&self, service: &str) -> &str {
        match service {
            "authenticator" => &self.auth,
            "safekeeper" => &self.sk,
            "task" => &self.task,
            "user-directory" => &self.ud,
            _ => &self.ar,
        }
    }

    /// The service's database (scripts/lib.sh names them).
    fn database(&self, service: &str) -> String {
        format!(
            "{}/{}{}",
            self.pg,
            service.replace('-', "_"),
            self.db_suffix
        )
    }
}

/// `service=PID`, as `--pid` takes it.
pub fn parse_pid(value: &str) -> anyhow::Result<(String, u32)> {
    let (service, pid) = value
        .split_once('=')
        .with_context(|| format!("--pid takes SERVICE=PID, not {value:?}"))?;
    anyhow::ensure!(SERVICES.contains(&service), "--pid: no service {service:?}");
    Ok((service.to_owned(), pid.parse().context("--pid")?))
}

/// The run's periods: 0 is the warm-up, then minutes 1 to N (the last one
/// shorter when `--seconds` is not a multiple of 60).
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    warm_up: Duration,
    measured: Duration,
}

impl Clock {
    fn minutes(&self) -> usize {
        self.measured.as_secs().div_ceil(60) as usize
    }

    fn periods(&self) -> usize {
        self.minutes() + 1
    }

    fn end_of(&self, period: usize) -> Instant {
        let into = Duration::from_secs(60 * period as u64).min(self.measured);
        self.start + self.warm_up + into
    }

    fn end(&self) -> Instant {
        self.start + self.warm_up + self.measured
    }

    fn period_at(&self, t: Instant) -> Option<usize> {
        (0..self.periods()).find(|p| t < self.end_of(*p))
    }
}

/// Measurements by (period, service, route).
#[derive(Default)]
struct Stats(Mutex<BTreeMap<(usize, &'static str, String), Scenario>>);

impl Stats {
    fn add(&self, period: usize, service: &'static str, route: &str, s: Scenario) {
        let mut all = self.0.lock().expect("not poisoned");
        all.entry((period, service, route.to_owned()))
            .or_insert_with(Scenario::new)
            .merge(s);
    }

    /// One request's outcome, in the period it was sent in.
    fn record(
        &self,
        clock: &Clock,
        sent: Instant,
        service: &'static str,
        route: &str,
        outcome: Result<(), String>,
    ) {
        let took = sent.elapsed();
        if let Some(period) = clock.period_at(sent) {
            let mut one = Scenario::new();
            one.record(outcome, took);
            self.add(period, service, route, one);
        }
    }

    /// Everything measured for `service` (every route, or only `route`)
    /// in `period`.
    fn total(&self, period: usize, service: &str, route: Option<&str>) -> Scenario {
        let all = self.0.lock().expect("not poisoned");
        let mut total = Scenario::new();
        for ((p, s, r), one) in all.iter() {
            if *p == period && *s == service && route.is_none_or(|want| want == r) {
                total.merge(copy(one));
            }
        }
        total
    }

    fn routes(&self) -> Vec<(&'static str, String)> {
        let all = self.0.lock().expect("not poisoned");
        let mut routes: Vec<_> = all.keys().map(|(_, s, r)| (*s, r.clone())).collect();
        routes.sort();
        routes.dedup();
        routes
    }
}

fn copy(s: &Scenario) -> Scenario {
    Scenario {
        ok: s.ok,
        errors: s.errors,
        first_error: s.first_error.clone(),
        elapsed: s.elapsed,
        latency_us: s.latency_us.clone(),
    }
}

/// An open-loop run as a [`Scenario`]: the answers with the wanted status
/// are successes; other answers, requests without one and requests not
/// sent on time (every connection busy) are errors.
fn scenario_of(r: OpenLoop, want: u16) -> Scenario {
    let errors = r.errors(want) + r.not_sent;
    let first_error = (errors > 0).then(|| {
        let statuses: Vec<String> = r
            .statuses
            .iter()
            .filter(|(s, _)| **s != want)
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        format!(
            "answers other than {want}: {{{}}}; {} without an answer ({}); {} not sent on time",
            statuses.join(", "),
            r.failures,
            r.first_failure.as_deref().unwrap_or("-"),
            r.not_sent
        )
    });
    Scenario {
        ok: r.admitted.len(),
        errors,
        first_error,
        elapsed: r.duration,
        latency_us: r.admitted,
    }
}

/// The tokens the requests carry, fetched again every [`REFRESH_EVERY`].
struct Creds {
    employer_task: String,
    employee_task: String,
    introspected: String,
    producer: String,
}

/// What the load needs: where the services are, who acts, the tokens.
struct Cx {
    o: Options,
    http: Client,
    run: String,
    s: Setup,
    a: Actors,
    cookie: String,
    authorize_url: Url,
    org_admin: String,
    webhook_key: Option<hmac::Key>,
    creds: RwLock<Arc<Creds>>,
}

impl Cx {
    fn creds(&self) -> Arc<Creds> {
        self.creds.read().expect("not poisoned").clone()
    }

    async fn fresh_creds(&self) -> anyhow::Result<Creds> {
        let (c, sk) = (&self.http, &self.o.sk);
        let token = |session: &str, scopes: &'static str| {
            let session = session.to_owned();
            async move {
                authorize(c, sk, &session, scopes)
                    .await
                    .map_err(|e| anyhow!("an access token for {scopes}: {e}"))
            }
        };
        Ok(Creds {
            employer_task: token(&self.a.employer_session, EMPLOYER_SCOPES).await?,
            employee_task: token(&self.a.employee_session, EMPLOYEE_SCOPES).await?,
            introspected: token(&self.s.session, USER_SCOPES).await?,
            producer: client_credentials(
                c,
                sk,
                &self.o.events_client,
                &self.o.events_secret,
                "write:event",
            )
            .await?,
        })
    }
}

/// An access token by client credentials.
async fn client_credentials(
    client: &Client,
    sk: &str,
    id: &str,
    secret: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let request = client
        .post(format!("{sk}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)]);
    let v = json_of(request, StatusCode::OK)
        .await
        .with_context(|| format!("a token of the client {id}"))?;
    text(&v, "access_token")
}

/// A request as bytes, with a bearer token and a JSON body when given.
fn call(method: &str, url: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Vec<u8> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::with_capacity(2);
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    wire::request(method, url, path, &headers, body.as_bytes())
}

/// A WorkOS webhook the directory stores and ignores (an event it does
/// not follow), signed as WorkOS signs: HMAC-SHA256 of `"<t>.<body>"`.
fn webhook(cx: &Cx, key: &hmac::Key, id: &str) -> Vec<u8> {
    let body = json!({"id": id, "event": "connection.activated",
                      "data": {"object": "connection", "id": "conn_soak"}})
    .to_string();
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let tag = hmac::sign(key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let signature = format!("t={t}, v1={hex}");
    let headers = [
        ("Content-Type", "application/json"),
        ("WorkOS-Signature", signature.as_str()),
    ];
    wire::request(
        "POST",
        &cx.o.ud,
        "/v1/webhooks/workos",
        &headers,
        body.as_bytes(),
    )
}

type Build = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// A route sent open loop at a fixed rate.
struct Stream {
    service: &'static str,
    route: &'static str,
    rate: f64,
    want: u16,
    request: Build,
}

/// The rate of `route` in [`ROUTES`], times `--rate-scale`; at least one
/// a second for a route sent open loop ([`overload::open_loop`] sends no
/// fewer), any for a flow.
fn rate_of(o: &Options, route: &str) -> f64 {
    ROUTES
        .iter()
        .find(|(_, r, _, _)| *r == route)
        .map_or(0.0, |(_, _, rate, each)| {
            let scaled = rate * o.rate_scale;
            if *each == 1 {
                scaled.max(1.0)
            } else {
                scaled
            }
        })
}

/// Requests a second in all.
fn total_rate(o: &Options) -> f64 {
    ROUTES
        .iter()
        .map(|(_, r, _, each)| rate_of(o, r) * f64::from(*each))
        .sum()
}

/// `route` of `service`, `build` making its `i`-th request, and the
/// status it should answer.
fn stream<F>(
    cx: &Arc<Cx>,
    service: &'static str,
    route: &'static str,
    want: u16,
    build: F,
) -> Stream
where
    F: Fn(&Cx, u64) -> Vec<u8> + Send + Sync + 'static,
{
    let cx = Arc::clone(cx);
    Stream {
        service,
        route,
        rate: rate_of(&cx.o, route),
        want,
        request: Arc::new(move |i| build(&cx, i)),
    }
}

/// Whose credentials a request carries.
#[derive(Debug, Clone, Copy)]
enum Token {
    Nobody,
    /// The Employee's session at the authenticator.
    EmployeeSession,
    /// The superuser's session (account administration).
    AdminSession,
    /// The safekeeper's Employer's session.
    EmployerSession,
    EmployerTask,
    EmployeeTask,
    /// The organization admin's token at the user directory.
    OrgAdmin,
    /// The event producer's access token.
    Producer,
}

impl Cx {
    fn token(&self, t: Token) -> Option<String> {
        let creds = self.creds();
        match t {
            Token::Nobody => None,
            Token::EmployeeSession => Some(self.a.employee_session.clone()),
            Token::AdminSession => Some(self.a.admin_session.clone()),
            Token::EmployerSession => Some(self.s.session.clone()),
            Token::EmployerTask => Some(creds.employer_task.clone()),
            Token::EmployeeTask => Some(creds.employee_task.clone()),
            Token::OrgAdmin => Some(self.org_admin.clone()),
            Token::Producer => Some(creds.producer.clone()),
        }
    }

    /// `route` (`METHOD /path`, or `path` when given) of `service` with
    /// `token` and `body`.
    fn call(
        &self,
        service: &str,
        route: &str,
        path: Option<&str>,
        token: Token,
        body: Option<&Value>,
    ) -> Vec<u8> {
        let (method, route_path) = route.split_once(' ').unwrap_or(("GET", route));
        let path = path.unwrap_or(route_path);
        call(
            method,
            self.o.url(service),
            path,
            self.token(token).as_deref(),
            body,
        )
    }
}

fn streams(cx: &Arc<Cx>) -> Vec<Stream> {
    let mut out = Vec::new();
    let employee_path = format!("/v1/users/{}", cx.a.employee_id);
    // The same request each time: (service, route, path if not the
    // route's, credentials, body).
    let fixed = [
        (
            "authenticator",
            "POST /v1/login",
            None,
            Token::Nobody,
            Some(json!({"username": cx.s.username, "password": PASSWORD})),
        ),
        (
            "authenticator",
            "GET /v1/me",
            None,
            Token::EmployeeSession,
            None,
        ),
        (
            "safekeeper",
            "POST /v1/authorize",
            None,
            Token::EmployerSession,
            Some(json!({ "scopes": USER_SCOPES })),
        ),
        (
            "task",
            "POST /v1/task/own",
            None,
            Token::EmployeeTask,
            Some(json!({"_size": 20})),
        ),
        (
            "task",
            "POST /v1/task/all",
            None,
            Token::EmployerTask,
            Some(json!({"_size": 20})),
        ),
        (
            "task",
            "GET /v1/users/{id}",
            Some(employee_path.clone()),
            Token::EmployerTask,
            None,
        ),
        (
            "user-directory",
            "GET /org/get",
            Some("/org/get?organization_name=acme".to_owned()),
            Token::OrgAdmin,
            None,
        ),
        (
            "user-directory",
            "GET /v1/users",
            Some("/v1/users?limit=20".to_owned()),
            Token::OrgAdmin,
            None,
        ),
    ];
    for (service, route, path, token, body) in fixed {
        out.push(stream(cx, service, route, 200, move |cx, _| {
            cx.call(service, route, path.as_deref(), token, body.as_ref())
        }));
    }
    // A change of name: an iam.user.v1 event in the outbox, applied by the
    // four other services.
    out.push(stream(
        cx,
        "authenticator",
        "PATCH /v1/users/{id}",
        200,
        move |cx, i| {
            let body = json!({"firstname": format!("Soak{}", i % 100_000)});
            let path = Some(employee_path.as_str());
            cx.call(
                "authenticator",
                "PATCH /v1/users/{id}",
                path,
                Token::AdminSession,
                Some(&body),
            )
        },
    ));
    for (route, path) in [
        ("POST /oauth2/token (client_credentials)", "/oauth2/token"),
        ("POST /oauth2/introspect", "/oauth2/introspect"),
    ] {
        out.push(stream(cx, "safekeeper", route, 200, move |cx, _| {
            let token = cx.creds().introspected.clone();
            let form: &[(&str, &str)] = if path == "/oauth2/token" {
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", SERVICE_SCOPE),
                ]
            } else {
                &[("token", &token)]
            };
            cx.s.service_form(path, form).to_vec()
        }));
    }
    out.push(stream(cx, "task", "POST /v1/task", 201, |cx, i| {
        let body = json!({"title": format!("Soak task {}-{i}", cx.run), "type_id": 1 + i % 3,
                          "assignee": cx.a.employee_id});
        cx.call(
            "task",
            "POST /v1/task",
            None,
            Token::EmployerTask,
            Some(&body),
        )
    }));
    // A creation saga: an invitation at the authenticator, a membership.
    out.push(stream(
        cx,
        "user-directory",
        "POST /v1/users",
        201,
        |cx, i| {
            let body = json!({"email": format!("soak.{}.{i}@soak.example", cx.run),
                          "first_name": "Soak", "last_name": format!("User{i}"),
                          "organization": "acme", "role": "member"});
            cx.call(
                "user-directory",
                "POST /v1/users",
                None,
                Token::OrgAdmin,
                Some(&body),
            )
        },
    ));
    if let Some(key) = cx.webhook_key.clone() {
        out.push(stream(
            cx,
            "user-directory",
            "POST /v1/webhooks/workos",
            200,
            move |cx, i| webhook(cx, &key, &format!("event_soak_{}_{i}", cx.run)),
        ));
    }
    for route in ["GET /canmessage", "GET /canpurchase"] {
        out.push(stream(cx, "access-rule", route, 200, move |cx, i| {
            let user = mix(i, route.ends_with("purchase")) % CHECKED_USERS;
            let path = format!("{}?user_id={}", &route[4..], checked_user(cx, user));
            cx.call("access-rule", route, Some(&path), Token::Nobody, None)
        }));
    }
    // Events of users seen once each (a flag or a card alone restricts no
    // one): the events table grows at their rate and is pruned.
    for (route, name) in [
        ("POST /event (flag_scam_message)", "flag_scam_message"),
        ("POST /event (add_credit_card)", "add_credit_card"),
    ] {
        out.push(stream(cx, "access-rule", route, 200, move |cx, i| {
            let user = format!("soak-{}-{name}-{i}", cx.run);
            let mut props = json!({ "user_id": user });
            if name == "add_credit_card" {
                props["zip_code"] = json!("10001");
                props["last_four_digits"] = json!(format!("{:04}", i % 10_000));
                props["total_spend"] = json!(50.0);
            }
            let body = json!({"name": name, "event_id": format!("{user}-event"),
                              "event_properties": props});
            cx.call(
                "access-rule",
                "POST /event",
                None,
                Token::Producer,
                Some(&body),
            )
        }));
    }
    out
}

/// The `n`-th user the checks ask about (an access-rule user is known
/// once an event named it: 404 before).
fn checked_user(cx: &Cx, n: u64) -> String {
    format!("soak-{}-c{n}", cx.run)
}

/// Makes the checks' users known to access-rule: a card each (one card
/// restricts no one).
async fn seed_checked_users(cx: &Arc<Cx>) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let (c, url) = (Arc::clone(cx), format!("{}/event", cx.o.ar));
    let seeded = drive(8, Duration::from_secs(120), move |_, _| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= CHECKED_USERS {
            return None;
        }
        let user = checked_user(&c, n);
        let body = json!({"name": "add_credit_card", "event_id": format!("{user}-seed"),
                          "event_properties": {"user_id": user, "zip_code": "10001",
                                               "last_four_digits": "4242", "total_spend": 50.0}});
        let request = c
            .http
            .post(&url)
            .bearer_auth(&c.creds().producer)
            .json(&body);
        Some(expect(request, StatusCode::OK))
    })
    .await;
    if seeded.errors > 0 || seeded.ok < CHECKED_USERS {
        bail!(
            "making the checks' users known: {} of {CHECKED_USERS}; {}",
            seeded.ok,
            seeded.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// A well-spread number from `i` (the checks' users).
fn mix(i: u64, salt: bool) -> u64 {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(salt);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Connections for a route: enough for half a second of its requests
/// outstanding, few enough that each is used at least every 2.5 s (the
/// services close a connection idle for five).
fn connections(rate: f64) -> usize {
    let wanted = (rate * 0.5).ceil() as usize + 2;
    wanted.min((rate * 2.5).floor().max(1.0) as usize)
}

/// Sends `s` open loop period after period until the end.
async fn run_stream(s: Stream, url: String, clock: Clock, stats: Arc<Stats>) {
    if s.rate <= 0.0 {
        return;
    }
    let mut conns = overload::connect(&url, connections(s.rate)).await;
    for period in 0..clock.periods() {
        let left = clock
            .end_of(period)
            .saturating_duration_since(Instant::now());
        if left < Duration::from_millis(100) {
            continue;
        }
        let (request, base) = (Arc::clone(&s.request), (period as u64) << 32);
        let (measured, back) =
            overload::open_loop(conns, s.rate, left, s.want, move |i| request(base + i)).await;
        conns = back;
        stats.add(period, s.service, s.route, scenario_of(measured, s.want));
    }
}

/// Starts `flow(i)` `rate` times a second until the end (each on its own
/// task: a slow one delays no other), then waits for them.
async fn run_flow<F, Fut>(rate: f64, clock: Clock, flow: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if rate <= 0.0 {
        return;
    }
    let mut running = tokio::task::JoinSet::new();
    for i in 0.. {
        let due = clock.start + Duration::from_secs_f64(i as f64 / rate);
        if due >= clock.end() {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        running.spawn(flow(i));
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// One step of a flow, measured: its value, or `None` (an error, counted).
async fn step<T>(
    clock: &Clock,
    stats: &Stats,
    route: &str,
    work: impl Future<Output = Result<T, String>>,
) -> Option<T> {
    let sent = Instant::now();
    let outcome = work.await;
    let (recorded, value) = match outcome {
        Ok(v) => (Ok(()), Some(v)),
        Err(e) => (Err(e), None),
    };
    stats.record(clock, sent, "safekeeper", route, recorded);
    value
}

fn json_field(body: &[u8], field: &str) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    text(&v, field).map_err(|e| e.to_string())
}

/// The code flow of a first-party SPA, signed in: a code, its exchange
/// (PKCE), a refresh (rotation), the revocation of the grant.
async fn code_flow(cx: Arc<Cx>, clock: Clock, stats: Arc<Stats>) {
    let (c, sk, spa) = (&cx.http, &cx.o.sk, cx.s.spa_id.as_str());
    let minted = step(&clock, &stats, "GET /oauth2/authorize", async {
        let request = c
            .get(cx.authorize_url.clone())
            .header(header::COOKIE, &cx.cookie);
        let (headers, _) = fetch(request, StatusCode::FOUND).await?;
        safekeeper::code_of_redirect(&headers)
    })
    .await;
    let Some(code) = minted else { return };
    let exchanged = step(&clock, &stats, "POST /oauth2/token (code)", async {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", spa),
        ];
        let request = c.post(format!("{sk}/oauth2/token")).form(&form);
        let (_, body) = fetch(request, StatusCode::OK).await?;
        json_field(&body, "refresh_token")
    })
    .await;
    let Some(refresh) = exchanged else { return };
    let refreshed = step(&clock, &stats, "POST /oauth2/token (refresh)", async {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", spa),
        ];
        let request = c.post(format!("{sk}/oauth2/token")).form(&form);
        let (_, body) = fetch(request, StatusCode::OK).await?;
        json_field(&body, "refresh_token")
    })
    .await;
    let Some(refresh) = refreshed else { return };
    step(&clock, &stats, "POST /oauth2/revoke (refresh)", async {
        let form = [("token", refresh.as_str()), ("client_id", spa)];
        expect(
            c.post(format!("{sk}/oauth2/revoke")).form(&form),
            StatusCode::OK,
        )
        .await
    })
    .await;
}

/// A client-credentials token, then its revocation: a revocation-list
/// entry kept until the token expires, and an oauth.revocation.v1 event
/// every service applies.
async fn revocation_flow(cx: Arc<Cx>, clock: Clock, stats: Arc<Stats>) {
    let (c, sk, s) = (&cx.http, &cx.o.sk, &cx.s);
    let issued = step(&clock, &stats, "POST /oauth2/token (to revoke)", async {
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", SERVICE_SCOPE),
        ];
        let request = c
            .post(format!("{sk}/oauth2/token"))
            .basic_auth(&s.service_id, Some(&s.service_secret))
            .form(&form);
        let (_, body) = fetch(request, StatusCode::OK).await?;
        json_field(&body, "access_token")
    })
    .await;
    let Some(token) = issued else { return };
    step(&clock, &stats, "POST /oauth2/revoke (access)", async {
        let request = c
            .post(format!("{sk}/oauth2/revoke"))
            .basic_auth(&s.service_id, Some(&s.service_secret))
            .form(&[("token", token.as_str())]);
        expect(request, StatusCode::OK).await
    })
    .await;
}

/// Fetches the tokens anew every [`REFRESH_EVERY`] until the end; answers
/// how many times that failed (the old tokens stay meanwhile).
async fn refresh(cx: Arc<Cx>, clock: Clock) -> u64 {
    let mut failures = 0;
    loop {
        let next = Instant::now() + REFRESH_EVERY;
        if next >= clock.end() {
            return failures;
        }
        tokio::time::sleep_until(next.into()).await;
        match cx.fresh_creds().await {
            Ok(c) => *cx.creds.write().expect("not poisoned") = Arc::new(c),
            Err(e) => {
                failures += 1;
                eprintln!("soak: fetching the tokens again failed: {e:#}");
            }
        }
    }
}

/// What was read at one moment: resident memory, table rows, load.
#[derive(Debug, Clone, Default)]
struct Sample {
    at_s: f64,
    rss_kib: BTreeMap<String, Option<u64>>,
    /// CPU time each service has used so far, in seconds.
    cpu_s: BTreeMap<String, Option<f64>>,
    /// The machine's busy and total CPU time so far, in ticks.
    machine: Option<(u64, u64)>,
    rows: BTreeMap<String, Option<u64>>,
    dead_rows: BTreeMap<String, Option<u64>>,
    load1: Option<f64>,
}

impl Sample {
    /// CPU `service` used since `before`, in % of one core.
    fn cpu_pct(&self, before: &Sample, service: &str) -> Option<f64> {
        let used = self.cpu_s.get(service).copied().flatten()?
            - before.cpu_s.get(service).copied().flatten()?;
        let secs = self.at_s - before.at_s;
        (secs > 0.0).then(|| 100.0 * used / secs)
    }

    /// The share of the machine's CPU time that was busy since `before`.
    fn busy_pct(&self, before: &Sample) -> Option<f64> {
        let ((b1, t1), (b0, t0)) = (self.machine?, before.machine?);
        (t1 > t0).then(|| 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64)
    }

    /// Cores busy since `before` with anything but what the soak watches
    /// (other work on the machine, short-lived processes).
    fn outside_cores(&self, before: &Sample) -> Option<f64> {
        let busy = self.busy_pct(before)? * cores() as f64 / 100.0;
        let watched: f64 = self
            .cpu_s
            .keys()
            .filter_map(|k| self.cpu_pct(before, k))
            .sum();
        Some((busy - watched / 100.0).max(0.0))
    }
}

/// User and system CPU time of `pid` in seconds (`/proc/PID/stat` counts
/// in USER_HZ, 100 a second on Linux).
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's ")": the state is field 3, utime and stime 14 and 15.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU seconds of the PostgreSQL backends serving the soak's databases
/// (their command line names the database), summed; and of the load
/// generator itself.
fn soak_cpu_s(o: &Options) -> [(String, Option<f64>); 2] {
    let names: Vec<String> = SERVICES
        .iter()
        .map(|s| format!(" {}{} ", s.replace('-', "_"), o.db_suffix))
        .collect();
    let mut postgres = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.starts_with("postgres: ") && names.iter().any(|n| cmdline.contains(n.as_str())) {
            postgres += cpu_s(pid).unwrap_or(0.0);
        }
    }
    [
        ("postgres (soak backends)".to_owned(), Some(postgres)),
        ("bench".to_owned(), cpu_s(std::process::id())),
    ]
}

/// The machine's busy and total CPU ticks (`/proc/stat`; iowait counts as
/// idle).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let t: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = t.get(3)? + t.get(4)?;
    // user nice system idle iowait irq softirq steal (guests are in user).
    let total: u64 = t.iter().take(8).sum();
    Some((total - idle, total))
}

fn key(p: &Pruned) -> String {
    format!("{}.{}", p.service, p.table)
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The services' PIDs: `--pid`, else their pidfiles.
/// The services' PIDs: `--pid`, else their pidfiles; and, to be watched
/// but not judged, every other process with a pidfile there (the broker).
fn pids(o: &Options) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    let dir = o.state_dir.join("pids");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
        let pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|p| !SERVICES.contains(&name) && rss_kib(*p).is_some()) {
            out.insert(name.to_owned(), pid);
        }
    }
    for service in SERVICES {
        let pid = match o.pids.iter().find(|(s, _)| s == service) {
            Some((_, pid)) => *pid,
            None => {
                let file = o.state_dir.join("pids").join(format!("{service}.pid"));
                let text = std::fs::read_to_string(&file).with_context(|| {
                    format!("reading {} (or give --pid {service}=PID)", file.display())
                })?;
                text.trim()
                    .parse()
                    .with_context(|| format!("a PID in {}", file.display()))?
            }
        };
        anyhow::ensure!(
            rss_kib(pid).is_some(),
            "{service}: no process {pid} (its resident memory cannot be read)"
        );
        out.insert(service.to_owned(), pid);
    }
    Ok(out)
}

/// The rows of every pruned table, and the dead rows PostgreSQL counts in
/// it (what a vacuum has yet to reclaim), one `psql` per database.
fn count_rows(o: &Options) -> (BTreeMap<String, Option<u64>>, BTreeMap<String, Option<u64>>) {
    let (mut rows, mut dead) = (BTreeMap::new(), BTreeMap::new());
    for service in SERVICES {
        let tables: Vec<&Pruned> = PRUNED.iter().filter(|p| p.service == service).collect();
        let sql = tables
            .iter()
            .map(|p| {
                format!(
                    "SELECT '{0}', count(*), (SELECT n_dead_tup FROM pg_stat_user_tables \
                     WHERE relname = '{0}') FROM {0}",
                    p.table
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let counted = task::psql(&o.database(service), &sql);
        if let Err(e) = &counted {
            eprintln!("soak: counting the rows of {service}'s tables: {e:#}");
        }
        let text = counted.unwrap_or_default();
        for p in tables {
            let line: Vec<&str> = text
                .lines()
                .map(|l| l.split('|').collect::<Vec<_>>())
                .find(|f| f.first() == Some(&p.table))
                .unwrap_or_default();
            let field = |i: usize| line.get(i).and_then(|n| n.trim().parse().ok());
            rows.insert(key(p), field(1));
            dead.insert(key(p), field(2));
        }
    }
    (rows, dead)
}

async fn sample(o: &Options, pids: &BTreeMap<String, u32>, start: Instant) -> Sample {
    let mut cpu: BTreeMap<String, Option<f64>> = pids
        .iter()
        .map(|(s, pid)| (s.clone(), cpu_s(*pid)))
        .collect();
    cpu.extend(soak_cpu_s(o));
    let o2 = o.clone();
    let (rows, dead_rows) = tokio::task::spawn_blocking(move || count_rows(&o2))
        .await
        .unwrap_or_default();
    Sample {
        at_s: start.elapsed().as_secs_f64(),
        rss_kib: pids
            .iter()
            .map(|(s, pid)| (s.clone(), rss_kib(*pid)))
            .collect(),
        cpu_s: cpu,
        machine: machine_ticks(),
        rows,
        dead_rows,
        load1: load1(),
    }
}

/// `rows_pruned_total` and `prune_failures_total` by table, from each
/// service's `/metrics`.
async fn prune_counters(
    client: &Client,
    o: &Options,
) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
    let mut out = BTreeMap::new();
    for service in SERVICES {
        let text = match client
            .get(format!("{}/metrics", o.url(service)))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => {
                eprintln!("soak: {service}'s /metrics: {e}");
                String::new()
            }
        };
        let counter = |name: &str, table: &str| {
            let label = format!("kind=\"{table}\"}}");
            text.lines()
                .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        let reachable = !text.is_empty();
        for p in PRUNED.iter().filter(|p| p.service == service) {
            let pruned = counter("rows_pruned_total", p.table).or(reachable.then_some(0.0));
            let failed = counter("prune_failures_total", p.table).or(reachable.then_some(0.0));
            out.insert(key(p), (pruned, failed));
        }
    }
    out
}

/// One line of the verdict.
struct Check {
    criterion: &'static str,
    subject: String,
    figure: String,
    goal: String,
    ok: Option<bool>,
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn count(n: Option<u64>) -> String {
    n.map_or("?".into(), |n| n.to_string())
}

struct Results {
    clock: Clock,
    stats: Arc<Stats>,
    /// The sample at the start, then one at the end of each period.
    samples: Vec<Sample>,
    counters: BTreeMap<String, (Option<f64>, Option<f64>)>,
    refresh_failures: u64,
    /// The server's `autovacuum` setting.
    autovacuum: String,
}

impl Results {
    /// The sample at the end of `period`.
    fn at(&self, period: usize) -> Option<&Sample> {
        self.samples.get(period + 1)
    }

    fn verdict(&self, o: &Options) -> Vec<Check> {
        let last = self.clock.minutes();
        let mut checks = Vec::new();
        for service in SERVICES {
            let errors: u64 = (0..self.clock.periods())
                .map(|p| self.stats.total(p, service, None).errors)
                .sum();
            checks.push(Check {
                criterion: "errors",
                subject: service.into(),
                figure: errors.to_string(),
                goal: "0".into(),
                ok: Some(errors == 0),
            });
        }
        for service in SERVICES {
            let first = self.at(1).and_then(|s| s.rss_kib[service]);
            let end = self.at(last).and_then(|s| s.rss_kib[service]);
            let (figure, ok) = match (first, end) {
                (Some(f), Some(e)) if f > 0 => {
                    let growth = e as f64 / f as f64 - 1.0;
                    (
                        format!(
                            "{:+.1} % ({} to {} MiB)",
                            growth * 100.0,
                            mib(first),
                            mib(end)
                        ),
                        growth < RSS_GROWTH_LIMIT,
                    )
                }
                _ => ("not measured".into(), false),
            };
            checks.push(Check {
                criterion: "resident memory growth, minute 1 to the end",
                subject: service.into(),
                figure,
                goal: format!("< {:.0} %", RSS_GROWTH_LIMIT * 100.0),
                ok: Some(ok),
            });
        }
        for service in SERVICES {
            let first = self.stats.total(1, service, None);
            let end = self.stats.total(last, service, None);
            let (figure, ok) = if first.ok == 0 || end.ok == 0 {
                ("no successful request".into(), false)
            } else {
                let (f, e) = (first.quantile_ms(0.99), end.quantile_ms(0.99));
                let change = e / f.max(0.001) - 1.0;
                // Every minute's p99, to tell a trend from the noise.
                let all: Vec<f64> = (1..=last)
                    .map(|p| self.stats.total(p, service, None).quantile_ms(0.99))
                    .collect();
                let (low, high) = all
                    .iter()
                    .fold((f64::MAX, 0.0_f64), |(l, h), v| (l.min(*v), h.max(*v)));
                // The median minute of the first three and of the last
                // three: a trend shows there, a noisy minute does not.
                let k = all.len().min(3);
                let (head, tail) = (median(&all[..k]), median(&all[all.len() - k..]));
                (
                    format!(
                        "{f:.2} to {e:.2} ms ({:+.1} %); every minute {low:.2} to {high:.2} ms, \
                         median of the first three {head:.2}, of the last three {tail:.2}",
                        change * 100.0
                    ),
                    change <= P99_TOLERANCE,
                )
            };
            checks.push(Check {
                criterion: "p99, last minute against the first",
                subject: service.into(),
                figure,
                goal: format!("at most +{:.0} %", P99_TOLERANCE * 100.0),
                ok: Some(ok),
            });
        }
        let windows = self.flat_windows(o);
        for p in &PRUNED {
            let k = key(p);
            let (pruned, failed) = self.counters.get(&k).copied().unwrap_or_default();
            let highest = |periods: &[usize]| {
                periods
                    .iter()
                    .map(|period| self.at(*period).and_then(|s| s.rows[&k]))
                    .collect::<Option<Vec<u64>>>()
                    .and_then(|v| v.into_iter().max())
            };
            let pruned_text = format!(
                "{} pruned, {} failed rounds",
                pruned.map_or("?".into(), |n| n.to_string()),
                failed.map_or("?".into(), |n| n.to_string())
            );
            let (figure, goal, ok) = match (&windows, p.judged) {
                (_, false) => (
                    format!(
                        "{} to {}; {pruned_text}",
                        count(self.at(1).and_then(|s| s.rows[&k])),
                        count(self.at(last).and_then(|s| s.rows[&k]))
                    ),
                    "not judged: kept an hour past its tokens' expiry".into(),
                    None,
                ),
                (None, true) => (
                    pruned_text,
                    "not judged: too few minutes after the settling".into(),
                    None,
                ),
                (Some((reference, end)), true) => {
                    let (r, e) = (highest(reference), highest(end));
                    let figure = format!(
                        "{} (minutes {}) then {} (minutes {}); {pruned_text}",
                        count(r),
                        join(reference),
                        count(e),
                        join(end)
                    );
                    let ok = match (r, e) {
                        (Some(r), Some(e)) => {
                            e as f64 <= r as f64 * FLAT_RATIO + FLAT_SLACK_ROWS
                                && failed.unwrap_or(1.0) == 0.0
                        }
                        _ => false,
                    };
                    (
                        figure,
                        format!("last ≤ first × {FLAT_RATIO} + {FLAT_SLACK_ROWS}, no failed round"),
                        Some(ok),
                    )
                }
            };
            checks.push(Check {
                criterion: "pruned table stays flat",
                subject: k,
                figure,
                goal,
                ok,
            });
        }
        checks
    }

    /// The minutes the flatness compares: the first two ending `--settle`
    /// seconds after the load began, and the last two (apart from them).
    fn flat_windows(&self, o: &Options) -> Option<(Vec<usize>, Vec<usize>)> {
        let last = self.clock.minutes();
        let settle = self.clock.start + Duration::from_secs(o.settle);
        let first = (1..=last).find(|p| self.clock.end_of(*p) >= settle)?;
        let reference: Vec<usize> = (first..=last).take(2).collect();
        let end: Vec<usize> = (last.saturating_sub(1).max(1)..=last).collect();
        (reference.iter().max() < end.iter().min()).then_some((reference, end))
    }

    fn print(&self, checks: &[Check]) {
        let minutes = self.clock.minutes();
        let name = |p: usize| {
            if p == 0 {
                "warm-up".to_owned()
            } else {
                p.to_string()
            }
        };
        println!("\nLatency and errors by minute (p99 in ms, errors in brackets):\n");
        println!(
            "| minute | requests | {} | CPU busy | not the soak's (cores) | load (1 min) |",
            SERVICES.join(" | ")
        );
        println!(
            "|---|---:|{}---:|---:|---:|",
            "---:|".repeat(SERVICES.len())
        );
        for p in 0..=minutes {
            let per: Vec<Scenario> = SERVICES
                .iter()
                .map(|s| self.stats.total(p, s, None))
                .collect();
            let requests: u64 = per.iter().map(|s| s.ok + s.errors).sum();
            let cells: Vec<String> = per
                .iter()
                .map(|s| format!("{:.2} ({})", s.quantile_ms(0.99), s.errors))
                .collect();
            let load = self
                .at(p)
                .and_then(|s| s.load1)
                .map_or("?".into(), |l| format!("{l:.2}"));
            let (now, before) = (&self.samples[p + 1], &self.samples[p]);
            let busy = now
                .busy_pct(before)
                .map_or("?".into(), |b| format!("{b:.0} %"));
            let outside = now
                .outside_cores(before)
                .map_or("?".into(), |c| format!("{c:.2}"));
            println!(
                "| {} | {requests} | {} | {busy} | {outside} | {load} |",
                name(p),
                cells.join(" | ")
            );
        }
        println!("\nResident memory (MiB) at the end of each minute, CPU in it (% of one core):\n");
        // The services, then what else has a pidfile (not judged).
        let watched: Vec<String> = self
            .samples
            .first()
            .map(|s| s.cpu_s.keys().cloned().collect())
            .unwrap_or_default();
        let columns: Vec<&str> = SERVICES
            .iter()
            .copied()
            .chain(
                watched
                    .iter()
                    .map(String::as_str)
                    .filter(|w| !SERVICES.contains(w)),
            )
            .collect();
        println!("| minute | {} |", columns.join(" | "));
        println!("|---|{}", "---:|".repeat(columns.len()));
        for (i, s) in self.samples.iter().enumerate() {
            let label = if i == 0 { "start".into() } else { name(i - 1) };
            let cells: Vec<String> = columns
                .iter()
                .map(|v| {
                    let cpu = i
                        .checked_sub(1)
                        .and_then(|b| s.cpu_pct(&self.samples[b], v))
                        .map_or(String::new(), |c| format!(" ({c:.0} %)"));
                    let rss = match s.rss_kib.get(*v) {
                        Some(kib) => mib(*kib),
                        None => "-".into(),
                    };
                    format!("{rss}{cpu}")
                })
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
        println!("\nRows of the pruned tables at the end of each minute:\n");
        let heads: Vec<String> = (0..=minutes).map(name).collect();
        println!("| table | start | {} |", heads.join(" | "));
        println!("|---|---:|{}", "---:|".repeat(heads.len()));
        for p in &PRUNED {
            let k = key(p);
            let cells: Vec<String> = self.samples.iter().map(|s| count(s.rows[&k])).collect();
            println!("| {k} | {} |", cells.join(" | "));
        }
        println!("\nVerdict:\n");
        println!("| criterion | subject | figure | goal | ok |");
        println!("|---|---|---|---|---|");
        for c in checks {
            let ok = match c.ok {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            };
            println!(
                "| {} | {} | {} | {} | {ok} |",
                c.criterion, c.subject, c.figure, c.goal
            );
        }
    }

    fn json(&self, o: &Options, checks: &[Check]) -> Value {
        let routes = self.stats.routes();
        let minutes: Vec<Value> = (0..=self.clock.minutes())
            .map(|p| {
                let services: serde_json::Map<String, Value> = SERVICES
                    .iter()
                    .map(|s| (s.to_string(), figures(&self.stats.total(p, s, None))))
                    .collect();
                let per_route: Vec<Value> = routes
                    .iter()
                    .map(|(s, r)| {
                        let mut v = figures(&self.stats.total(p, s, Some(r)));
                        v["service"] = json!(s);
                        v["route"] = json!(r);
                        v
                    })
                    .collect();
                let sample = self.at(p).cloned().unwrap_or_default();
                let before = &self.samples[p];
                let cpu: BTreeMap<&String, Option<f64>> = sample
                    .cpu_s
                    .keys()
                    .map(|s| (s, sample.cpu_pct(before, s)))
                    .collect();
                json!({"minute": p, "warm_up": p == 0, "end_s": sample.at_s,
                       "load1": sample.load1, "machine_busy_pct": sample.busy_pct(before),
                       "cores_busy_outside_the_soak": sample.outside_cores(before),
                       "services": services, "routes": per_route,
                       "rss_kib": sample.rss_kib, "cpu_pct_of_a_core": cpu, "rows": sample.rows,
                       "dead_rows": sample.dead_rows})
            })
            .collect();
        let start = self.samples.first().cloned().unwrap_or_default();
        json!({
            "machine": {"cores": cores()},
            "settings": {
                "seconds": o.seconds, "warm_up_s": o.warm_up, "settle_s": o.settle,
                "rate_scale": o.rate_scale,
                "rates": ROUTES.iter()
                    .map(|(s, r, _, n)| json!({"service": s, "route": r, "per_s": rate_of(o, r), "requests_each": n}))
                    .collect::<Vec<_>>(),
                "token_refresh_failures": self.refresh_failures,
            },
            "postgres_autovacuum": self.autovacuum,
            "start": {"rss_kib": start.rss_kib, "rows": start.rows},
            "minutes": minutes,
            "pruned": self.counters.iter().map(|(k, (p, f))| (k.clone(), json!({"rows_pruned_total": p, "prune_failures_total": f}))).collect::<serde_json::Map<_, _>>(),
            "verdict": checks.iter().map(|c| json!({"criterion": c.criterion, "subject": c.subject,
                "figure": c.figure, "goal": c.goal, "ok": c.ok})).collect::<Vec<_>>(),
            "passed": checks.iter().all(|c| c.ok != Some(false)),
        })
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn join(periods: &[usize]) -> String {
    periods
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn figures(s: &Scenario) -> Value {
    let q = |q: f64| (s.quantile_ms(q) * 1000.0).round() / 1000.0;
    json!({"ok": s.ok, "errors": s.errors, "first_error": s.first_error,
           "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": (s.max_ms() * 1000.0).round() / 1000.0})
}

async fn setup(o: &Options) -> anyhow::Result<Cx> {
    let http = Client::builder()
        .timeout(Duration::from_secs(30))
        // Under the services' keep-alive (5 s): no request meets a
        // connection the server is closing.
        .pool_idle_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let urls = task::Urls {
        auth: o.auth.clone(),
        sk: o.sk.clone(),
        task: o.task.clone(),
        db: o.database("task"),
    };
    eprintln!("soak: an Employer and an Employee, in the task service's read model");
    let a = task::setup(&http, &urls).await?;
    eprintln!("soak: the safekeeper's clients and a signed-in Employer");
    let s = safekeeper::setup(&http, &o.auth, &o.sk).await?;
    let authorize_url = safekeeper::authorize_url(&s)?;
    let cookie = safekeeper::sign_in(&http, &s, &authorize_url).await?;
    eprintln!("soak: the organization admin {} signs in", o.org_admin);
    let body = json!({"email": o.org_admin, "password": o.org_password});
    let v = json_of(
        http.post(format!("{}/admin/login", o.ud)).json(&body),
        StatusCode::OK,
    )
    .await
    .context("the organization admin's login (make up's demo data makes acme)")?;
    let org_admin = text(&v, "access_token")?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let webhook_key = o
        .webhook_secret
        .as_ref()
        .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes()));
    let mut cx = Cx {
        o: o.clone(),
        http,
        run,
        s,
        a,
        cookie,
        authorize_url,
        org_admin,
        webhook_key,
        creds: RwLock::new(Arc::new(Creds {
            employer_task: String::new(),
            employee_task: String::new(),
            introspected: String::new(),
            producer: String::new(),
        })),
    };
    cx.creds = RwLock::new(Arc::new(cx.fresh_creds().await?));
    Ok(cx)
}

pub async fn run(o: &Options) -> anyhow::Result<()> {
    o.check()?;
    let pids = pids(o)?;
    let autovacuum = task::psql(&o.database("task"), "SHOW autovacuum")?;
    if autovacuum != "on" {
        eprintln!(
            "soak: this PostgreSQL runs with autovacuum {autovacuum}: nothing vacuums or \
             analyzes the soak's tables unless the caller does (scripts/soak.sh does)"
        );
    }
    let cx = Arc::new(setup(o).await?);
    eprintln!("soak: {CHECKED_USERS} users for the checks, known to access-rule");
    seed_checked_users(&cx).await?;
    if cx.webhook_key.is_none() {
        eprintln!("soak: no --webhook-secret: no webhooks (the directory's inbox stays empty)");
    }
    let stats = Arc::new(Stats::default());
    let clock = Clock {
        start: Instant::now() + Duration::from_millis(200),
        warm_up: Duration::from_secs(o.warm_up),
        measured: Duration::from_secs(o.seconds),
    };
    let first = sample(o, &pids, clock.start).await;
    eprintln!(
        "soak: {} s of warm-up, then {} minutes ({} s) of {:.0} requests a second",
        o.warm_up,
        clock.minutes(),
        o.seconds,
        total_rate(o)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for s in streams(&cx) {
        let url = o.url(s.service).to_owned();
        tasks.spawn(run_stream(s, url, clock, Arc::clone(&stats)));
    }
    let (c, st) = (Arc::clone(&cx), Arc::clone(&stats));
    tasks.spawn(run_flow(rate_of(o, CODE_FLOW), clock, move |_| {
        code_flow(Arc::clone(&c), clock, Arc::clone(&st))
    }));
    let (c, st) = (Arc::clone(&cx), Arc::clone(&stats));
    tasks.spawn(run_flow(rate_of(o, REVOCATION_FLOW), clock, move |_| {
        revocation_flow(Arc::clone(&c), clock, Arc::clone(&st))
    }));
    let refresher = tokio::spawn(refresh(Arc::clone(&cx), clock));
    let mut samples = vec![first];
    for period in 0..clock.periods() {
        tokio::time::sleep_until(clock.end_of(period).into()).await;
        let s = sample(o, &pids, clock.start).await;
        let line: Vec<String> = SERVICES
            .iter()
            .map(|v| {
                let t = stats.total(period, v, None);
                format!(
                    "{v} p99 {:.1} ms, {} errors, {} MiB",
                    t.quantile_ms(0.99),
                    t.errors,
                    mib(s.rss_kib[*v])
                )
            })
            .collect();
        eprintln!(
            "soak: {} done: {}",
            if period == 0 {
                "warm-up".to_owned()
            } else {
                format!("minute {period}")
            },
            line.join("; ")
        );
        samples.push(s);
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a load task failed")?;
    }
    let refresh_failures = refresher.await.unwrap_or(0);
    let counters = prune_counters(&cx.http, o).await;
    let results = Results {
        clock,
        stats,
        samples,
        counters,
        refresh_failures,
        autovacuum,
    };
    let checks = results.verdict(o);
    results.print(&checks);
    let report = results.json(o, &checks);
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = serde_json::to_vec_pretty(&report)?;
    bytes.push(b'\n');
    std::fs::write(&o.out, bytes).with_context(|| format!("writing {}", o.out.display()))?;
    eprintln!("soak: results written to {}", o.out.display());
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.ok == Some(false))
        .map(|c| format!("{} ({})", c.criterion, c.subject))
        .collect();
    if !failed.is_empty() {
        bail!("the soak failed: {}", failed.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(warm_up: u64, seconds: u64) -> Clock {
        Clock {
            start: Instant::now(),
            warm_up: Duration::from_secs(warm_up),
            measured: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn periods_are_the_warm_up_then_minutes() {
        let c = clock(30, 150);
        assert_eq!(c.minutes(), 3);
        assert_eq!(c.end_of(0) - c.start, Duration::from_secs(30));
        assert_eq!(c.end_of(1) - c.start, Duration::from_secs(90));
        assert_eq!(c.end_of(3) - c.start, Duration::from_secs(180));
        assert_eq!(c.period_at(c.start + Duration::from_secs(10)), Some(0));
        assert_eq!(c.period_at(c.start + Duration::from_secs(90)), Some(2));
        assert_eq!(c.period_at(c.start + Duration::from_secs(180)), None);
    }

    #[test]
    fn flatness_compares_settled_minutes_with_the_last_ones() {
        let results = |seconds| Results {
            clock: clock(30, seconds),
            stats: Arc::default(),
            samples: Vec::new(),
            counters: BTreeMap::new(),
            refresh_failures: 0,
            autovacuum: "on".into(),
        };
        let o = Options::default();
        assert_eq!(
            results(600).flat_windows(&o),
            Some((vec![2, 3], vec![9, 10]))
        );
        assert_eq!(results(120).flat_windows(&o), None);
        assert_eq!(results(240).flat_windows(&o), None);
        assert_eq!(
            results(300).flat_windows(&o),
            Some((vec![2, 3], vec![4, 5]))
        );
        assert_eq!(
            results(360).flat_windows(&o),
            Some((vec![2, 3], vec![5, 6]))
        );
    }

    #[test]
    fn connections_are_used_often_enough_to_stay_open() {
        assert_eq!(connections(0.5), 1);
        assert_eq!(connections(1.0), 2);
        assert_eq!(connections(5.0), 5);
        assert_eq!(connections(80.0), 42);
    }

    #[test]
    fn pids_name_a_service() {
        assert_eq!(parse_pid("task=42").unwrap(), ("task".to_owned(), 42));
        assert!(parse_pid("tasks=42").is_err());
        assert!(parse_pid("task").is_err());
    }

    #[test]
    fn the_mix_is_about_270_requests_a_second() {
        let total = total_rate(&Options::default());
        assert!((250.0..300.0).contains(&total), "{total}");
    }
}
