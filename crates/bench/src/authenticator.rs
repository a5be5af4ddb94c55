//! `bench authenticator`: registrations, a login storm against the bcrypt
//! limit of the machine's cores with `/healthz` probed meanwhile, and JWKS
//! fetches.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::{
    load::{drive, expect, Scenario},
    report::{cores, metric_counters, print_table, row, scenario_rows, with_goal, write_json},
    Load,
};

/// The cost the authenticator under test hashes with.
const BCRYPT_COST: u32 = 12;
const PASSWORD: &str = "Bench-Passw0rd!";
const HEALTHZ_EVERY: Duration = Duration::from_millis(10);
/// Logins must reach this share of what the machine's cores can hash
/// (the figure before the throttle was made shared and atomic).
const LOGIN_RATIO_GOAL: f64 = 0.89;
/// `GET /healthz` p99 during the login storm must stay at or under this.
const HEALTHZ_P99_GOAL_MS: f64 = 4.5;
/// The throttle's counters in the authenticator's `/metrics`.
const THROTTLE_COUNTERS: [&str; 2] = [
    "authenticator_throttle_checks_total",
    "authenticator_throttle_microseconds_total",
];

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
async fn registrations(client: &Client, url: &str, load: &Load) -> (Scenario, Vec<String>) {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let registered = Arc::new(Mutex::new(Vec::new()));
    let url = format!("{url}/v1/user");
    let (client, kept) = (client.clone(), registered.clone());
    let scenario = drive(load.concurrency, load.duration(), move |worker, n| {
        let (client, url, kept) = (client.clone(), url.clone(), kept.clone());
        let username = format!("bench.{run}.{worker}-{n}");
        Some(async move {
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
        })
    })
    .await;
    let users = std::mem::take(&mut *registered.lock().expect("not poisoned"));
    (scenario, users)
}

/// `POST /v1/login` with correct passwords, spread over `users`.
async fn login_storm(client: &Client, url: &str, load: &Load, users: Arc<Vec<String>>) -> Scenario {
    if users.is_empty() {
        let mut none = Scenario::new();
        none.record(Err("no registered users to log in".into()), Duration::ZERO);
        return none;
    }
    let url = format!("{url}/v1/login");
    let (client, concurrency) = (client.clone(), load.concurrency);
    drive(concurrency, load.duration(), move |worker, n| {
        let (client, url) = (client.clone(), url.clone());
        let index = (n as usize * concurrency + worker) % users.len();
        let body = json!({ "username": users[index], "password": PASSWORD });
        Some(async move { expect(client.post(url).json(&body), StatusCode::OK).await })
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
async fn jwks_fetches(client: &Client, url: &str, load: &Load) -> Scenario {
    let url = format!("{url}/.well-known/jwks.json");
    let client = client.clone();
    drive(load.concurrency, load.duration(), move |_, _| {
        let (client, url) = (client.clone(), url.clone());
        Some(async move { expect(client.get(url), StatusCode::OK).await })
    })
    .await
}

pub async fn run(client: &Client, url: &str, load: &Load) -> anyhow::Result<()> {
    eprintln!("measuring one bcrypt hash at cost {BCRYPT_COST} (median of 5)");
    let cores = cores();
    let hash_ms = measure_hash_ms().await?;
    let login_limit = cores as f64 * 1000.0 / hash_ms;

    let (c, n) = (load.concurrency, load.seconds);
    eprintln!("registrations: {c} workers for {n} s");
    let (registered, users) = registrations(client, url, load).await;
    registered.report_first_error("registrations");

    eprintln!("login storm over {} users, probing /healthz", users.len());
    let probe = tokio::spawn(probe_healthz(
        client.clone(),
        format!("{url}/healthz"),
        load.duration(),
    ));
    let throttle_before = metric_counters(url, &THROTTLE_COUNTERS).await?;
    let logins = login_storm(client, url, load, Arc::new(users)).await;
    let healthz = probe.await?;
    let throttle_after = metric_counters(url, &THROTTLE_COUNTERS).await?;
    let checks = throttle_after[0] - throttle_before[0];
    anyhow::ensure!(
        checks > 0.0,
        "the login storm went through no throttle check"
    );
    let throttle_us = (throttle_after[1] - throttle_before[1]) / checks;
    logins.report_first_error("logins");
    healthz.report_first_error("healthz");

    eprintln!("JWKS fetches: {c} workers for {n} s");
    let jwks = jwks_fetches(client, url, load).await;
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
        format!("<= {HEALTHZ_P99_GOAL_MS}"),
        healthz.ok > 0 && healthz_p99 <= HEALTHZ_P99_GOAL_MS,
    ));
    rows.push(row("throttle_us_per_login", throttle_us, "us"));
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
    write_json(&load.out, "authenticator", cores, rows)
}
