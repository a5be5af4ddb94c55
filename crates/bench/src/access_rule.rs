//! `bench access-rule`: against a running access-rule whose database holds
//! `--users` seeded users named `u1` .. `uN` (scripts/bench.sh seeds them
//! with SQL), measures checks (`/canmessage` and `/canpurchase` alternately,
//! after a short warm-up), durable events (`POST /event`
//! `flag_scam_message`) and a mixed run shaped like the Locust file of the
//! User Access Management design, see docs/architecture.md (70 % checks,
//! 10 % each of `flag_scam_message`, `add_credit_card` and `chargeback`),
//! counting its errors.
//!
//! Checks run with `--concurrency` workers. Durable events are bound by the
//! disk's flush (about 2 ms here): each worker waits for its commit, so
//! events per second can never exceed workers ÷ commit latency, whatever the
//! server does. The events and the mixed run therefore use
//! `BENCH_EVENT_CONCURRENCY` workers (default 64, many producers), reported
//! in the table, with `events_per_commit`: how many events the service's
//! group commits applied per transaction during the events run (from its
//! `/metrics`; 0 when it commits each event alone, `EVENT_WRITERS=0`).
//!
//! Then the overload of `/canmessage` and of `POST /event`
//! ([`crate::overload`]): each at half its saturation rate (the checks' and
//! the events' closed-loop rates above) and at twice it, open loop, a
//! second of each in turn for `BENCH_OVERLOAD_ROUNDS` rounds (default 5),
//! over `BENCH_OVERLOAD_CONNECTIONS` connections (the most requests
//! outstanding; default twice the service's `MAX_IN_FLIGHT`, read from its
//! `/metrics`, or 512 when it has no limit); the goals: the admitted requests' p99 within
//! twice the unsaturated p99, and no error but 503 with `Retry-After`.
//!
//! Events are posted as a producer: `BENCH_EVENT_TOKEN` holds a safekeeper
//! access token with `write:event` (scripts/bench.sh obtains it by client
//! credentials, and makes it outlive the run), sent on every event.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};

use crate::{
    load::Scenario,
    overload,
    report::{cores, metric_counters, print_table, row, scenario_rows, with_goal, write_json},
    wire, Load,
};

const CHECKS_GOAL: f64 = 20_000.0;
const CHECK_P99_GOAL_MS: f64 = 5.0;
const EVENTS_GOAL: f64 = 5_000.0;
const WARM_UP: Duration = Duration::from_secs(3);
const EVENT_CONCURRENCY: usize = 64;

/// A well-mixed 64-bit hash (splitmix64): the workers' randomness, from
/// (salt, worker, iteration) so that no state is shared.
fn mix(salt: u64, worker: usize, iteration: u64) -> u64 {
    let mut z = salt
        .wrapping_add((worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(iteration.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Target {
    url: String,
    users: u64,
    /// Distinguishes this run's event ids from earlier runs'.
    run: u128,
    /// `Bearer <producer token>`.
    authorization: String,
}

impl Target {
    fn user(&self, r: u64) -> String {
        format!("u{}", r % self.users + 1)
    }

    fn check(&self, r: u64, purchase: bool) -> Vec<u8> {
        let route = if purchase {
            "canpurchase"
        } else {
            "canmessage"
        };
        let path = format!("/{route}?user_id={}", self.user(r));
        wire::request("GET", &self.url, &path, &[], b"")
    }

    fn event(&self, name: &str, mut props: Value, r: u64, id: (usize, u64)) -> Vec<u8> {
        props["user_id"] = json!(self.user(r));
        let body = json!({
            "name": name,
            "event_id": format!("bench-{}-{}-{}-{}", self.run, name, id.0, id.1),
            "event_properties": props,
        });
        let json = [
            ("Content-Type", "application/json"),
            ("Authorization", self.authorization.as_str()),
        ];
        wire::request(
            "POST",
            &self.url,
            "/event",
            &json,
            body.to_string().as_bytes(),
        )
    }

    /// One request of the mixed run, chosen by `r`.
    fn mixed(&self, r: u64, id: (usize, u64)) -> Vec<u8> {
        let spend = (r >> 20) % 100_000;
        match (r >> 40) % 10 {
            0..=6 => self.check(r, (r >> 40) % 2 == 1),
            7 => self.event("flag_scam_message", json!({}), r, id),
            8 => {
                let card = json!({
                    "zip_code": format!("{:05}", (r >> 24) % 100_000),
                    "last_four_digits": format!("{:04}", (r >> 8) % 10_000),
                    "total_spend": spend as f64 / 100.0,
                });
                self.event("add_credit_card", card, r, id)
            }
            _ => {
                let amount = json!({"chargebacks": (spend % 5_000) as f64 / 100.0});
                self.event("chargeback", amount, r, id)
            }
        }
    }
}

fn salt() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn checks(t: &Arc<Target>, c: usize, duration: Duration) -> Scenario {
    let s = salt() as u64;
    let t = Arc::clone(t);
    let url = t.url.clone();
    let ok = wire::status_is(200);
    wire::drive(
        &url,
        c,
        duration,
        move |w, i| Some(t.check(mix(s, w, i), i % 2 == 1)),
        ok,
    )
    .await
}

pub async fn run(url: &str, users: u64, load: &Load) -> anyhow::Result<()> {
    anyhow::ensure!(users > 0, "--users must be at least 1");
    let token = std::env::var("BENCH_EVENT_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "BENCH_EVENT_TOKEN must hold a safekeeper access token with write:event \
                 (scripts/bench.sh obtains one)"
            )
        })?;
    let t = Arc::new(Target {
        url: url.to_owned(),
        users,
        run: salt(),
        authorization: format!("Bearer {}", token.trim()),
    });
    let c = load.concurrency;
    let ce = match std::env::var("BENCH_EVENT_CONCURRENCY") {
        Ok(v) => v.parse().map_err(|_| {
            anyhow::anyhow!("BENCH_EVENT_CONCURRENCY must be a positive number, not {v:?}")
        })?,
        Err(_) => EVENT_CONCURRENCY,
    };
    anyhow::ensure!(ce > 0, "BENCH_EVENT_CONCURRENCY must be at least 1");
    let d = load.duration();

    eprintln!("warming up the checks for {}s", WARM_UP.as_secs());
    let warm = checks(&t, c, WARM_UP).await;
    warm.report_first_error("warm-up");

    eprintln!("checks: {}s, {c} workers, {users} users", load.seconds);
    let check = checks(&t, c, d).await;
    check.report_first_error("checks");

    eprintln!("durable events: {}s, {ce} workers", load.seconds);
    let commits_before = group_commits(url).await?;
    let s = salt() as u64;
    let te = Arc::clone(&t);
    let events = wire::drive(
        url,
        ce,
        d,
        move |w, i| Some(te.event("flag_scam_message", json!({}), mix(s, w, i), (w, i))),
        wire::status_is(200),
    )
    .await;
    events.report_first_error("events");
    let commits = group_commits(url).await?;
    let per_commit = (commits.1 - commits_before.1) / (commits.0 - commits_before.0).max(1.0);

    eprintln!("mixed run: {}s, {ce} workers", load.seconds);
    let s = salt() as u64;
    let tm = Arc::clone(&t);
    let mixed = wire::drive(
        url,
        ce,
        d,
        move |w, i| Some(tm.mixed(mix(s, w, i), (w, 1_000_000_000 + i))),
        wire::status_is(200),
    )
    .await;
    mixed.report_first_error("mixed");

    let ov_rounds = env_number("BENCH_OVERLOAD_ROUNDS", 5)?.clamp(1, 1000) as u32;
    // More connections than the service admits requests, so that its
    // admission, not the client, decides what is refused.
    let limit = metric_counters(url, &["http_max_in_flight"]).await?[0] as u64;
    let default_connections = if limit > 0 { 2 * limit } else { 512 };
    let ov_c = env_number("BENCH_OVERLOAD_CONNECTIONS", default_connections)?.max(1) as usize;
    let plan = |saturation: f64| overload::Plan {
        saturation,
        rounds: ov_rounds,
        connections: ov_c,
        want: 200,
    };
    let s = salt() as u64;
    let to = Arc::clone(&t);
    let check_overload = overload::scenario(
        url,
        "canmessage_overload",
        plan(check.per_second()),
        move |i| to.check(mix(s, 0, i), false),
    )
    .await;
    let to = Arc::clone(&t);
    let event_overload =
        overload::scenario(url, "event_overload", plan(events.per_second()), move |i| {
            to.event(
                "flag_scam_message",
                json!({}),
                mix(s, 1, i),
                (2_000_000_000, i),
            )
        })
        .await;

    let [c_rate, c_p50, c_p99, c_err] = scenario_rows(
        "checks_per_s",
        "check_p50_ms",
        "check_p99_ms",
        "check_errors",
        &check,
    );
    let [e_rate, e_p50, e_p99, e_err] = scenario_rows(
        "events_per_s",
        "event_p50_ms",
        "event_p99_ms",
        "event_errors",
        &events,
    );
    let [m_rate, _, m_p99, m_err] = scenario_rows(
        "mixed_per_s",
        "mixed_p50_ms",
        "mixed_p99_ms",
        "mixed_errors",
        &mixed,
    );
    let rows = vec![
        with_goal(
            c_rate,
            format!(">= {CHECKS_GOAL}/s"),
            check.per_second() >= CHECKS_GOAL,
        ),
        c_p50,
        with_goal(
            c_p99,
            format!("<= {CHECK_P99_GOAL_MS} ms"),
            check.quantile_ms(0.99) <= CHECK_P99_GOAL_MS,
        ),
        c_err,
        with_goal(
            e_rate,
            format!(">= {EVENTS_GOAL}/s"),
            events.per_second() >= EVENTS_GOAL,
        ),
        e_p50,
        e_p99,
        e_err,
        row("events_per_commit", per_commit, "events"),
        m_rate,
        m_p99,
        with_goal(m_err, "0".to_owned(), mixed.errors == 0),
        row("users", users as f64, "count"),
        row("concurrency", c as f64, "workers"),
        row("event_concurrency", ce as f64, "workers"),
    ];
    let rows: Vec<_> = rows
        .into_iter()
        .chain(check_overload)
        .chain(event_overload)
        .chain([
            row("max_in_flight", limit as f64, "requests"),
            row("overload_connections", ov_c as f64, "connections"),
        ])
        .collect();
    print_table(&rows);
    write_json(&load.out, "access-rule", cores(), rows)
}

/// `name` as a number, or `default` when unset.
fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} must be a number, not {v:?}")),
        _ => Ok(default),
    }
}

/// The service's group-commit counters from `GET /metrics`: (transactions,
/// events they applied).
async fn group_commits(url: &str) -> anyhow::Result<(f64, f64)> {
    let c = metric_counters(
        url,
        &[
            "access_rule_event_batches_total",
            "access_rule_batched_events_total",
        ],
    )
    .await?;
    Ok((c[0], c[1]))
}
