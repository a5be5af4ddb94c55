//! Load generator for the platform's services.
//!
//! `bench authenticator --url http://127.0.0.1:5900 --out target/bench/results.json
//! [--seconds 10] [--concurrency 16]` measures an already-running
//! authenticator (bcrypt cost 12), prints a markdown table and writes the same
//! rows as JSON.

use std::{
    future::Future,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Serialize;
use serde_json::json;

/// The cost the authenticator under test hashes with.
const BCRYPT_COST: u32 = 12;
const PASSWORD: &str = "Bench-Passw0rd!";
const HEALTHZ_EVERY: Duration = Duration::from_millis(10);
/// Logins must reach this share of what the machine's cores can hash.
const LOGIN_RATIO_GOAL: f64 = 0.9;
/// `GET /healthz` p99 during the login storm must stay under this.
const HEALTHZ_P99_GOAL_MS: f64 = 5.0;

const USAGE: &str =
    "usage: bench authenticator --url URL --out FILE [--seconds N] [--concurrency C]";

struct Args {
    url: String,
    out: PathBuf,
    seconds: u64,
    concurrency: usize,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut args = std::env::args().skip(1);
        match args.next().as_deref() {
            Some("authenticator") => {}
            Some("-h" | "--help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Some(other) => bail!("unknown service {other:?}; {USAGE}"),
            None => bail!("{USAGE}"),
        }
        let (mut url, mut out) = (None, None);
        let (mut seconds, mut concurrency) = (10, 16);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
            match flag.as_str() {
                "--url" => url = Some(value.trim_end_matches('/').to_owned()),
                "--out" => out = Some(PathBuf::from(value)),
                "--seconds" => seconds = value.parse().context("--seconds")?,
                "--concurrency" => concurrency = value.parse().context("--concurrency")?,
                _ => bail!("unknown flag {flag}; {USAGE}"),
            }
        }
        if seconds == 0 || concurrency == 0 {
            bail!("--seconds and --concurrency must be at least 1");
        }
        Ok(Self {
            url: url.with_context(|| format!("--url is required; {USAGE}"))?,
            out: out.with_context(|| format!("--out is required; {USAGE}"))?,
            seconds,
            concurrency,
        })
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

/// What one scenario measured: successes, their latencies, and errors.
struct Scenario {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Latencies of the successful requests, in microseconds.
    latency_us: Histogram<u64>,
}

impl Scenario {
    fn new() -> Self {
        Self {
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    fn record(&mut self, outcome: Result<(), String>, took: Duration) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(us.max(1));
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn merge(&mut self, other: Scenario) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with equal bounds merge");
    }

    fn per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }

    fn report_first_error(&self, name: &str) {
        if let Some(e) = &self.first_error {
            eprintln!("{name}: {} errors, the first: {e}", self.errors);
        }
    }
}

/// Sends a request, reads the whole body (so the connection goes back to the
/// pool) and fails unless the status is `want`.
async fn expect(request: RequestBuilder, want: StatusCode) -> Result<(), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status == want {
        Ok(())
    } else {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Err(format!("{status}: {shown}"))
    }
}

/// Runs `concurrency` workers, each sending `request(worker, iteration)`
/// back to back until `duration` has passed.
async fn drive<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Scenario
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut mine = Scenario::new();
                let mut iteration = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = request(worker, iteration).await;
                    mine.record(outcome, sent.elapsed());
                    iteration += 1;
                }
                mine
            })
        })
        .collect();
    let mut total = Scenario::new();
    for worker in workers {
        match worker.await {
            Ok(mine) => total.merge(mine),
            Err(e) => total.record(Err(format!("worker failed: {e}")), Duration::ZERO),
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// The median time of one bcrypt hash at the service's cost, in ms.
async fn measure_hash_ms() -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(|| {
        let mut samples = Vec::with_capacity(5);
        for _ in 0..5 {
            let t = Instant::now();
            bcrypt::hash(PASSWORD, BCRYPT_COST)?;
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(f64::total_cmp);
        Ok(samples[samples.len() / 2])
    })
    .await?
}

/// `POST /v1/user` with unique usernames; returns the registered usernames.
async fn registrations(client: &Client, args: &Args) -> (Scenario, Vec<String>) {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let registered = Arc::new(Mutex::new(Vec::new()));
    let url = format!("{}/v1/user", args.url);
    let (client, kept) = (client.clone(), registered.clone());
    let scenario = drive(args.concurrency, args.duration(), move |worker, n| {
        let (client, url, kept) = (client.clone(), url.clone(), kept.clone());
        let username = format!("bench.{run}.{worker}-{n}");
        async move {
            let body = json!({
                "username": username,
                "password": PASSWORD,
                "email": format!("{username}@bench.example"),
                "firstname": "Bench",
                "lastname": "User",
                "phone": "+1 555 0100",
            });
            expect(client.post(url).json(&body), StatusCode::CREATED).await?;
            kept.lock().expect("not poisoned").push(username);
            Ok(())
        }
    })
    .await;
    let users = std::mem::take(&mut *registered.lock().expect("not poisoned"));
    (scenario, users)
}

/// `POST /v1/login` with correct passwords, spread over `users`.
async fn login_storm(client: &Client, args: &Args, users: Arc<Vec<String>>) -> Scenario {
    if users.is_empty() {
        let mut none = Scenario::new();
        none.record(Err("no registered users to log in".into()), Duration::ZERO);
        return none;
    }
    let url = format!("{}/v1/login", args.url);
    let (client, concurrency) = (client.clone(), args.concurrency);
    drive(concurrency, args.duration(), move |worker, n| {
        let (client, url) = (client.clone(), url.clone());
        let index = (n as usize * concurrency + worker) % users.len();
        let body = json!({ "username": users[index], "password": PASSWORD });
        async move { expect(client.post(url).json(&body), StatusCode::OK).await }
    })
    .await
}

/// `GET /healthz` one at a time, every 10 ms, for `duration`.
async fn probe_healthz(client: Client, url: String, duration: Duration) -> Scenario {
    let mut probes = Scenario::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(HEALTHZ_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while start.elapsed() < duration {
        tick.tick().await;
        let sent = Instant::now();
        let outcome = expect(client.get(&url), StatusCode::OK).await;
        probes.record(outcome, sent.elapsed());
    }
    probes.elapsed = start.elapsed();
    probes
}

/// `GET /.well-known/jwks.json` back to back.
async fn jwks_fetches(client: &Client, args: &Args) -> Scenario {
    let url = format!("{}/.well-known/jwks.json", args.url);
    let client = client.clone();
    drive(args.concurrency, args.duration(), move |_, _| {
        let (client, url) = (client.clone(), url.clone());
        async move { expect(client.get(url), StatusCode::OK).await }
    })
    .await
}

#[derive(Serialize)]
struct Report<'a> {
    service: &'static str,
    machine: Machine,
    results: &'a [Row],
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
}

#[derive(Serialize)]
struct Row {
    metric: &'static str,
    value: f64,
    unit: &'static str,
    goal: Option<String>,
    ok: Option<bool>,
}

fn row(metric: &'static str, value: f64, unit: &'static str) -> Row {
    Row {
        metric,
        value: (value * 1000.0).round() / 1000.0,
        unit,
        goal: None,
        ok: None,
    }
}

fn with_goal(mut r: Row, goal: String, ok: bool) -> Row {
    r.goal = Some(goal);
    r.ok = Some(ok);
    r
}

/// Rate, p50, p99 and errors of a scenario, under the given metric names.
fn scenario_rows(
    rate: &'static str,
    p50: &'static str,
    p99: &'static str,
    errors: &'static str,
    s: &Scenario,
) -> [Row; 4] {
    [
        row(rate, s.per_second(), "1/s"),
        row(p50, s.quantile_ms(0.50), "ms"),
        row(p99, s.quantile_ms(0.99), "ms"),
        row(errors, s.errors as f64, "count"),
    ]
}

fn print_table(rows: &[Row]) {
    println!("| metric | value | goal | ok |");
    println!("|---|---:|---|---|");
    for r in rows {
        let ok = match r.ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "| {} ({}) | {} | {} | {ok} |",
            r.metric,
            r.unit,
            r.value,
            r.goal.as_deref().unwrap_or("-"),
        );
    }
}

fn write_json(path: &PathBuf, cores: usize, rows: &[Row]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let report = Report {
        service: "authenticator",
        machine: Machine { cores },
        results: rows,
    };
    let mut bytes = serde_json::to_vec_pretty(&report)?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let client = Client::builder()
        .pool_max_idle_per_host(args.concurrency + 1)
        .timeout(Duration::from_secs(30))
        .build()?;

    eprintln!("measuring one bcrypt hash at cost {BCRYPT_COST} (median of 5)");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let hash_ms = measure_hash_ms().await?;
    let login_limit = cores as f64 * 1000.0 / hash_ms;

    let (c, n) = (args.concurrency, args.seconds);
    eprintln!("registrations: {c} workers for {n} s");
    let (registered, users) = registrations(&client, &args).await;
    registered.report_first_error("registrations");

    eprintln!("login storm over {} users, probing /healthz", users.len());
    let probe = tokio::spawn(probe_healthz(
        client.clone(),
        format!("{}/healthz", args.url),
        args.duration(),
    ));
    let logins = login_storm(&client, &args, Arc::new(users)).await;
    let healthz = probe.await?;
    logins.report_first_error("logins");
    healthz.report_first_error("healthz");

    eprintln!("JWKS fetches: {c} workers for {n} s");
    let jwks = jwks_fetches(&client, &args).await;
    jwks.report_first_error("jwks");

    let login_ratio = logins.per_second() / login_limit;
    let healthz_p99 = healthz.quantile_ms(0.99);
    let mut rows = vec![
        row("cores", cores as f64, "count"),
        row("hash_ms", hash_ms, "ms"),
        row("login_limit_per_s", login_limit, "1/s"),
    ];
    rows.extend(scenario_rows(
        "registrations_per_s",
        "registration_p50_ms",
        "registration_p99_ms",
        "registration_errors",
        &registered,
    ));
    rows.extend(scenario_rows(
        "logins_per_s",
        "login_p50_ms",
        "login_p99_ms",
        "login_errors",
        &logins,
    ));
    rows.push(with_goal(
        row("login_ratio", login_ratio, "ratio"),
        format!(">= {LOGIN_RATIO_GOAL}"),
        login_ratio >= LOGIN_RATIO_GOAL,
    ));
    rows.push(row("healthz_p50_ms", healthz.quantile_ms(0.50), "ms"));
    rows.push(with_goal(
        row("healthz_p99_ms", healthz_p99, "ms"),
        format!("< {HEALTHZ_P99_GOAL_MS}"),
        healthz.ok > 0 && healthz_p99 < HEALTHZ_P99_GOAL_MS,
    ));
    rows.push(row("healthz_max_ms", healthz.max_ms(), "ms"));
    rows.push(row("healthz_errors", healthz.errors as f64, "count"));
    rows.extend(scenario_rows(
        "jwks_per_s",
        "jwks_p50_ms",
        "jwks_p99_ms",
        "jwks_errors",
        &jwks,
    ));

    print_table(&rows);
    write_json(&args.out, cores, &rows)?;
    Ok(())
}
