//! Accounting's ledger and analytics' reports (the task-management
//! design's money side).
//!
//! `bench accounting-events --brokers B --tasks N` writes N tasks' events on
//! `task.v1` as the task service's outbox would (created, assigned, in
//! progress, completed: four events, a fee and a reward each), before the
//! accounting service starts. `bench accounting --db URL --tasks N --out F`
//! then waits for accounting, started on that backlog, to apply them, and
//! reports how fast it did from the ledger's own timestamps: the first
//! entry's to the last's, so neither the start-up nor the polling counts.
//! That span includes the broker's fetches, which on tansu (sqlite) slow
//! down as the partition grows; the goal is held against the consumer's
//! own rate, the events it applied over its busy time (its `/metrics`:
//! `events_applied_total` over `consumer_busy_microseconds_total`).
//!
//! `bench analytics --url URL --auth-url URL --sk-url URL --out F` loads an
//! analytics service whose database holds 1,000,000 ledger rows (bench.sh
//! loads them with the service's `reports_bench` example) over HTTP with the
//! superuser's `read:analytics` token: its three reports, one after the
//! other in each worker, for `--seconds`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use contracts::{
    envelope::Envelope,
    topics::{
        self,
        task::{Change, Task, TaskEvent, COMPLETED},
    },
};
use rdkafka::producer::FutureRecord;
use reqwest::{Client, StatusCode};
use uuid::Uuid;

use crate::{
    load::{drive, expect, Scenario},
    report::{cores, print_table, row, scenario_rows, with_goal, write_json},
    safekeeper::{authorize, login},
    task::psql,
    Load,
};

/// Goal: task events applied per second by one accounting replica.
const APPLY_GOAL: f64 = 10_000.0;
/// Goal: p99 of each analytics report at 1,000,000 ledger rows.
const REPORT_GOAL_MS: f64 = 50.0;
/// The price of every bench task: fee 500 and reward 1000 at the default
/// ratios.
const PRICE_CENTS: i64 = 1000;
/// Events per task: created, assigned, in progress, completed.
const EVENTS_PER_TASK: u64 = 4;
/// Ledger entries per task: the fee and the reward.
const ENTRIES_PER_TASK: u64 = 2;

/// The bench's task ids: `i` under a fixed prefix, so that their ledger
/// entries are told apart from any other task's with a range.
fn task_id(i: u64) -> Uuid {
    Uuid::from_u128((0xbe9c_u128 << 112) | u128::from(i))
}

/// The id range `[first, last]` of `tasks` bench tasks.
fn task_range(tasks: u64) -> (Uuid, Uuid) {
    (task_id(0), task_id(tasks.saturating_sub(1)))
}

fn event(task: Task, version: i64, change: Change) -> anyhow::Result<Envelope> {
    Ok(TaskEvent { task, change }.envelope(version)?)
}

/// The four events of bench task `i`, assigned to one of 1,000 workers.
fn events_of(i: u64, employer: Uuid) -> anyhow::Result<[Envelope; 4]> {
    let worker = Uuid::from_u128((0xbe9d_u128 << 112) | u128::from(i % 1000));
    let state = |assignee: Option<Uuid>, status: &str| Task {
        id: task_id(i),
        title: format!("bench task {i}"),
        price_cents: PRICE_CENTS,
        assignment_fee_cents: PRICE_CENTS / 2,
        completion_reward_cents: PRICE_CENTS,
        assignee_id: assignee,
        status: status.into(),
        updated_at: chrono::Utc::now(),
    };
    Ok([
        event(state(None, "To Do"), 1, Change::Created { by: employer })?,
        event(
            state(Some(worker), "To Do"),
            2,
            Change::Assigned {
                from: None,
                to: Some(worker),
                by: employer,
            },
        )?,
        event(
            state(Some(worker), "In Progress"),
            3,
            Change::StatusChanged {
                from: "To Do".into(),
                to: "In Progress".into(),
                by: worker,
            },
        )?,
        event(
            state(Some(worker), COMPLETED),
            4,
            Change::StatusChanged {
                from: "In Progress".into(),
                to: COMPLETED.into(),
                by: worker,
            },
        )?,
    ])
}

/// Writes `tasks` tasks' events on `task.v1`, each task's in order under
/// its key, many in flight at once.
pub async fn produce(brokers: &str, tasks: u64) -> anyhow::Result<()> {
    let producer = platform::events::producer(brokers)?;
    let employer = Uuid::now_v7();
    let started = Instant::now();
    let mut in_flight = Vec::with_capacity(4096);
    for i in 0..tasks {
        for e in events_of(i, employer)? {
            let payload = serde_json::to_vec(&e)?;
            let producer = producer.clone();
            in_flight.push(tokio::spawn(async move {
                producer
                    .send(
                        FutureRecord::to(topics::TASK).key(&e.key).payload(&payload),
                        Duration::from_secs(60),
                    )
                    .await
                    .map(drop)
                    .map_err(|(e, _)| anyhow!("the broker refused an event: {e}"))
            }));
        }
        if in_flight.len() >= 4096 {
            for sent in in_flight.drain(..) {
                sent.await??;
            }
        }
    }
    for sent in in_flight {
        sent.await??;
    }
    eprintln!(
        "wrote {} task.v1 events in {:.1} s",
        tasks * EVENTS_PER_TASK,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits (at most `timeout`) for accounting to have applied the fee and
/// the reward of every bench task, then reports the rate from the ledger's
/// timestamps.
pub async fn applied(
    db: &str,
    url: &str,
    tasks: u64,
    out: &std::path::PathBuf,
) -> anyhow::Result<()> {
    let (first, last) = task_range(tasks);
    let want = tasks * ENTRIES_PER_TASK;
    let query = format!(
        "SELECT count(*), coalesce(extract(epoch FROM max(created_at) - min(created_at)), 0) \
         FROM ledger_entry WHERE task_id BETWEEN '{first}' AND '{last}'"
    );
    let timeout = Duration::from_secs(600);
    let started = Instant::now();
    let (entries, seconds) = loop {
        let out = psql(db, &query)?;
        let mut cells = out.trim().split('|');
        let entries: u64 = cells
            .next()
            .unwrap_or("0")
            .trim()
            .parse()
            .context("count")?;
        let seconds: f64 = cells.next().unwrap_or("0").trim().parse().context("span")?;
        if entries >= want {
            break (entries, seconds);
        }
        if started.elapsed() > timeout {
            bail!("accounting applied {entries} of {want} ledger entries in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The first entry is written after its task's first two events: the
    // span misses at most those, which the rate does not count either.
    let span = seconds.max(0.001);
    let events = (tasks * EVENTS_PER_TASK) as f64;
    let events_rate = events / span;
    // The consumer's own rate: the events it applied over the time it
    // spent applying them, the broker's fetches excluded (on tansu those
    // take most of the span above, and grow with the partition).
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let applied = counter_sum(&metrics, "events_applied_total");
    let busy = counter_sum(&metrics, "consumer_busy_microseconds_total") / 1e6;
    let own_rate = applied / busy.max(0.001);
    let rows = vec![
        row("cores", cores() as f64, "count"),
        row("tasks", tasks as f64, "count"),
        row("ledger_entries", entries as f64, "count"),
        row("apply_seconds", span, "s"),
        row("task_events_per_s_from_the_backlog", events_rate, "1/s"),
        row("ledger_entries_per_s", entries as f64 / span, "1/s"),
        row("consumer_busy_seconds", busy, "s"),
        with_goal(
            row("events_applied_per_busy_s", own_rate, "1/s"),
            format!(">= {APPLY_GOAL}"),
            own_rate >= APPLY_GOAL,
        ),
    ];
    print_table(&rows);
    write_json(out, "accounting", cores(), rows)
}

/// Waits until the service at `url` has applied no event for two seconds
/// (its `events_applied_total` unchanged over three readings a second
/// apart, at most five minutes), and returns how many it had applied.
async fn quiet_consumer(client: &Client, url: &str) -> anyhow::Result<f64> {
    let mut last = f64::NAN;
    let mut steady = 0;
    for _ in 0..300 {
        let metrics = client
            .get(format!("{url}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let applied = counter_sum(&metrics, "events_applied_total");
        steady = if applied == last { steady + 1 } else { 0 };
        if steady == 2 {
            return Ok(applied);
        }
        last = applied;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("the consumer at {url} was still applying events after five minutes")
}

/// The sum of the counter `name` over all its labels in a Prometheus text
/// exposition.
fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Where the analytics part finds its services and the superuser.
pub struct AnalyticsUrls {
    pub auth: String,
    pub sk: String,
    pub analytics: String,
}

/// The reports, as `(metric prefix, path)`.
const REPORTS: [(&str, &str); 3] = [
    ("earnings_today", "/v1/analytics/earnings/today"),
    ("negative_balance", "/v1/analytics/workers/negative-balance"),
    (
        "most_expensive_month",
        "/v1/analytics/tasks/most-expensive?period=month&from=2025-01-01&to=2025-12-31",
    ),
];

pub async fn analytics(client: &Client, u: &AnalyticsUrls, load: &Load) -> anyhow::Result<()> {
    let session = login(client, &u.auth, "admin", "Admin-Passw0rd!").await?;
    let mut token = None;
    for _ in 0..300 {
        match authorize(client, &u.sk, &session, "read:analytics").await {
            Ok(t) => {
                token = Some(t);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let token: Arc<str> = token
        .context("the safekeeper never gave the superuser read:analytics")?
        .into();
    // Until analytics knows the superuser (iam.user.v1), it answers 401.
    let first = format!("{}{}", u.analytics, REPORTS[0].1);
    let mut known = false;
    for _ in 0..300 {
        if expect(client.get(&first).bearer_auth(&*token), StatusCode::OK)
            .await
            .is_ok()
        {
            known = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !known {
        bail!("analytics never accepted the superuser's token at {first}");
    }
    // In a full run the broker holds the other parts' events (users, task
    // events), which analytics reads from the start: measured while it
    // catches up, the reports paid for that work, not their own.
    let caught_up = quiet_consumer(client, &u.analytics).await?;

    let mut rows = vec![
        row("cores", cores() as f64, "count"),
        row("events_applied_before_measuring", caught_up, "count"),
    ];
    let mut all = Scenario::new();
    for (name, path) in REPORTS {
        eprintln!(
            "{path}: {} workers for {} s",
            load.concurrency, load.seconds
        );
        let url: Arc<str> = format!("{}{path}", u.analytics).into();
        let (client, token) = (client.clone(), token.clone());
        let s = drive(load.concurrency, load.duration(), move |_, _| {
            let request = client.get(&*url).bearer_auth(&*token);
            Some(expect(request, StatusCode::OK))
        })
        .await;
        s.report_first_error(name);
        let p99 = s.quantile_ms(0.99);
        let [rate, p50, _, errors] = scenario_rows(
            &format!("{name}_per_s"),
            &format!("{name}_p50_ms"),
            &format!("{name}_p99_ms"),
            &format!("{name}_errors"),
            &s,
        );
        rows.extend([
            rate,
            p50,
            with_goal(
                row(&format!("{name}_p99_ms"), p99, "ms"),
                format!("< {REPORT_GOAL_MS}"),
                p99 < REPORT_GOAL_MS && s.errors == 0,
            ),
            errors,
        ]);
        all.merge(s);
    }
    rows.push(row("requests", (all.ok + all.errors) as f64, "count"));
    print_table(&rows);
    write_json(&load.out, "analytics", cores(), rows)
}
