//! `bench task`: `/v1/task/own` throughput at 100,000 tasks over 1,000
//! users, `/v1/task/summary` latency at 10,000, 100,000 and 1,000,000
//! tasks (and at a million over a range whose edge months are partial), how long an account change takes to reach the task service's
//! read model, and how long a deactivation takes to refuse a live token.
//!
//! Setup reuses the safekeeper scenario's: the superuser's admin token, an
//! Employer and an Employee registered and granted their roles. Tasks and
//! the synthetic users they are assigned to are seeded with SQL (`psql`)
//! straight into the task service's database.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::{
    load::{drive, expect, fetch, Scenario},
    report::{cores, print_table, row, scenario_rows, with_goal, write_json},
    safekeeper::{admin_token, authorize, eventually, login, register_with_role, PASSWORD},
    Load,
};

pub(crate) const EMPLOYEE_SCOPES: &str = "read:task,edit:task";
pub(crate) const EMPLOYER_SCOPES: &str = "create:task,su_read:task,su_edit:task";
const SYNTHETIC_USERS: usize = 1000;
const EMPLOYEE_TASKS: usize = 1000;
const OWN_AT: usize = 100_000;
const SUMMARY_AT: [usize; 3] = [10_000, 100_000, 1_000_000];
const SUMMARY_REQUESTS: usize = 50;
const PROPAGATIONS: usize = 50;
const REVOCATIONS: usize = 10;
const OWN_GOAL: f64 = 8000.0;
const SUMMARY_GOAL_MS: f64 = 50.0;
const PROPAGATION_GOAL_MS: f64 = 250.0;
const REVOCATION_GOAL_MS: f64 = 1000.0;
const RANGE: (&str, &str) = ("2020-01-01 00:00:00", "2100-01-01 00:00:00");

/// Where the services are and the task service's database.
pub struct Urls {
    pub auth: String,
    pub sk: String,
    pub task: String,
    pub db: String,
}

pub(crate) struct Actors {
    pub(crate) admin_session: String,
    pub(crate) admin: String,
    pub(crate) employer_id: String,
    pub(crate) employer_session: String,
    pub(crate) employee_id: String,
    pub(crate) employee_session: String,
}

pub(crate) fn psql(db: &str, sql: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("psql")
        .args([db, "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The read model's view of `id`, through `GET /v1/users/{id}`.
async fn read_model_user(
    client: &Client,
    u: &Urls,
    token: &str,
    id: &str,
) -> Result<Value, String> {
    let request = client
        .get(format!("{}/v1/users/{id}", u.task))
        .bearer_auth(token);
    let (_, body) = fetch(request, StatusCode::OK).await?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn own_body() -> Value {
    json!({"start_date": RANGE.0, "end_date": RANGE.1, "_size": 20})
}

pub(crate) async fn setup(client: &Client, u: &Urls) -> anyhow::Result<Actors> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (admin_session, admin) = admin_token(client, &u.auth, &u.sk).await?;
    let employer = format!("bench.task.employer.{run}");
    let employee = format!("bench.task.employee.{run}");
    let employer_id =
        register_with_role(client, &u.auth, &u.sk, &admin, &employer, "Employer").await?;
    let employee_id =
        register_with_role(client, &u.auth, &u.sk, &admin, &employee, "Employee").await?;
    let employer_session = login(client, &u.auth, &employer, PASSWORD).await?;
    let employee_session = login(client, &u.auth, &employee, PASSWORD).await?;
    eprintln!("waiting for both to reach the task service's read model");
    let token = eventually("the Employer's task scopes", || {
        authorize(client, &u.sk, &employer_session, EMPLOYER_SCOPES)
    })
    .await?;
    for id in [&employer_id, &employee_id] {
        eventually("the user in the task read model", || async {
            let v = read_model_user(client, u, &token, id).await?;
            if v["active"] == true && v["role_version"].as_i64().unwrap_or(0) > 0 {
                Ok(())
            } else {
                Err(format!("not yet: {v}"))
            }
        })
        .await?;
    }
    Ok(Actors {
        admin_session,
        admin,
        employer_id,
        employer_session,
        employee_id,
        employee_session,
    })
}

/// Empties the tasks and seeds `total`: [`EMPLOYEE_TASKS`] to the
/// Employee, the rest spread over [`SYNTHETIC_USERS`] synthetic users.
fn seed(u: &Urls, a: &Actors, total: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let sql = format!(
        "TRUNCATE task, task_status_history;
         INSERT INTO users (id, username, is_active, roles, scopes, user_version, role_version)
           SELECT md5('bench-synthetic-' || g)::uuid, 'bench.synthetic.' || g, TRUE,
                  '{{Employee}}', '{{read:task,edit:task}}', 1, 1
           FROM generate_series(1, {SYNTHETIC_USERS}) g
           ON CONFLICT (id) DO NOTHING;
         INSERT INTO task (id, title, creator, assignee, type_id, severity_id, status_id,
                           created_at, updated_at)
           SELECT md5('bench-task-' || g)::uuid, 'Bench task ' || g, '{employer}',
                  CASE WHEN g <= {EMPLOYEE_TASKS} THEN '{employee}'::uuid
                       ELSE md5('bench-synthetic-' || (1 + g % {SYNTHETIC_USERS}))::uuid END,
                  1 + g % 3, 1 + g % 3, 1 + g % 4,
                  now() - (g % 730) * interval '1 day' - (g % 86400) * interval '1 second',
                  now()
           FROM generate_series(1, {total}) g;",
        employer = a.employer_id,
        employee = a.employee_id,
    );
    psql(&u.db, &sql)?;
    // Outside a transaction block, so apart: fresh statistics and a
    // visibility map, as a long-lived table would have.
    psql(&u.db, "VACUUM ANALYZE task")?;
    psql(&u.db, "VACUUM ANALYZE users")?;
    eprintln!("seeded {total} tasks in {:?}", started.elapsed());
    Ok(())
}

/// `POST /v1/task/own` as the Employee, back to back: the same page over
/// and over (`distinct: false`, a client polling its list: the service
/// answers from its page cache), or a request no one sent before each
/// time (its `end_date` a second apart: every one reads the database).
async fn own(client: &Client, u: &Urls, token: String, load: &Load, distinct: bool) -> Scenario {
    let (client, url, token) = (
        client.clone(),
        format!("{}/v1/task/own", u.task),
        Arc::new(token),
    );
    let body = Arc::new(own_body());
    drive(load.concurrency, load.duration(), move |worker, i| {
        let request = client.post(&url).bearer_auth(token.as_str());
        let request = if distinct {
            request.json(
                &json!({"start_date": RANGE.0, "end_date": unique_end(worker, i),
                                 "_size": 20}),
            )
        } else {
            request.json(&*body)
        };
        Some(expect(request, StatusCode::OK))
    })
    .await
}

/// An end date after every seeded task, distinct for each worker and
/// iteration (up to 29 million iterations).
fn unique_end(worker: usize, i: u64) -> String {
    let (day, rest) = (i / 86_400, i % 86_400);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        2100 + worker,
        1 + day / 28 % 12,
        1 + day % 28,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The summary over everything.
fn summary_body() -> Value {
    json!({"start_date": RANGE.0, "end_date": RANGE.1, "_from": 0, "_size": 100,
           "sort": "-total"})
}

/// The summary over a range that starts and ends inside months (about
/// 500 to 15 days ago), so that the partial months at its edges are
/// counted from the tasks and the rest from the rollup.
fn partial_summary_body(u: &Urls) -> anyhow::Result<Value> {
    let day = |ago: &str| {
        psql(
            &u.db,
            &format!("SELECT to_char(now() - interval '{ago}', 'YYYY-MM-DD HH24:MI:SS')"),
        )
    };
    Ok(
        json!({"start_date": day("500 days 3 hours")?, "end_date": day("15 days 5 hours")?,
               "_from": 0, "_size": 100, "sort": "-total"}),
    )
}

/// [`SUMMARY_REQUESTS`] sequential `POST /v1/task/summary` with `body`.
async fn summary(client: &Client, u: &Urls, token: &str, body: &Value) -> Scenario {
    let mut s = Scenario::new();
    let start = Instant::now();
    for _ in 0..SUMMARY_REQUESTS {
        let request = client
            .post(format!("{}/v1/task/summary", u.task))
            .bearer_auth(token)
            .json(&body);
        let sent = Instant::now();
        let outcome = expect(request, StatusCode::OK).await;
        s.record(outcome, sent.elapsed());
    }
    s.elapsed = start.elapsed();
    s
}

/// From each `PATCH /v1/users/{id}` at the authenticator to the task
/// service's read model showing a higher `user_version`.
async fn propagation(client: &Client, u: &Urls, a: &Actors, token: &str) -> Scenario {
    let mut s = Scenario::new();
    let start = Instant::now();
    for i in 0..PROPAGATIONS {
        let outcome = async {
            let before = read_model_user(client, u, token, &a.employee_id).await?["user_version"]
                .as_i64()
                .ok_or("no user_version")?;
            let request = client
                .patch(format!("{}/v1/users/{}", u.auth, a.employee_id))
                .bearer_auth(&a.admin_session)
                .json(&json!({"firstname": format!("Bench{i}")}));
            let sent = Instant::now();
            let response = request.send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("PATCH: {}", response.status()));
            }
            drop(response.bytes().await);
            let deadline = sent + Duration::from_secs(10);
            loop {
                let v = read_model_user(client, u, token, &a.employee_id).await?;
                if v["user_version"].as_i64().unwrap_or(0) > before {
                    return Ok(sent.elapsed());
                }
                if Instant::now() > deadline {
                    return Err(format!("no new version after 10 s: {v}"));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        .await;
        match outcome {
            Ok(took) => s.record(Ok(()), took),
            Err(e) => s.record(Err(e), Duration::ZERO),
        }
    }
    s.elapsed = start.elapsed();
    s
}

/// One revocation: a fresh Employee with a working token is deactivated;
/// answers the time from the deactivation to the first 401.
async fn revoke_once(
    client: &Client,
    u: &Urls,
    a: &Actors,
    username: &str,
) -> anyhow::Result<Duration> {
    let id = register_with_role(client, &u.auth, &u.sk, &a.admin, username, "Employee").await?;
    let session = login(client, &u.auth, username, PASSWORD).await?;
    let url = format!("{}/v1/task/own", u.task);
    let token = eventually("the Employee's task scopes", || {
        authorize(client, &u.sk, &session, EMPLOYEE_SCOPES)
    })
    .await?;
    eventually("the Employee accepted by the task service", || {
        expect(
            client.post(&url).bearer_auth(&token).json(&own_body()),
            StatusCode::OK,
        )
    })
    .await?;
    let request = client
        .post(format!("{}/v1/users/{id}/deactivate", u.auth))
        .bearer_auth(&a.admin_session);
    let sent = Instant::now();
    let response = request.send().await?;
    if !response.status().is_success() {
        bail!("deactivating: {}", response.status());
    }
    drop(response.bytes().await);
    let deadline = sent + Duration::from_secs(10);
    loop {
        let response = client
            .post(&url)
            .bearer_auth(&token)
            .json(&own_body())
            .send()
            .await?;
        let status = response.status();
        drop(response.bytes().await);
        if status == StatusCode::UNAUTHORIZED {
            return Ok(sent.elapsed());
        }
        if status != StatusCode::OK {
            bail!("{status} while waiting for a refusal");
        }
        if Instant::now() > deadline {
            bail!("still accepted 10 s after the deactivation");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn revocation(client: &Client, u: &Urls, a: &Actors) -> Scenario {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut s = Scenario::new();
    for i in 0..REVOCATIONS {
        match revoke_once(client, u, a, &format!("bench.task.rev.{run}.{i}")).await {
            Ok(took) => s.record(Ok(()), took),
            Err(e) => s.record(Err(format!("{e:#}")), Duration::ZERO),
        }
    }
    s
}

pub async fn run(client: &Client, u: &Urls, load: &Load) -> anyhow::Result<()> {
    let cores = cores();
    let a = setup(client, u).await?;
    let mut rows = vec![row("cores", cores as f64, "count")];

    let mut summaries = Vec::new();
    let mut partial = None;
    let mut own_run = None;
    for total in SUMMARY_AT {
        seed(u, &a, total)?;
        let employer = authorize(client, &u.sk, &a.employer_session, EMPLOYER_SCOPES)
            .await
            .map_err(|e| anyhow!("the Employer's token: {e}"))?;
        if total == OWN_AT {
            let employee = authorize(client, &u.sk, &a.employee_session, EMPLOYEE_SCOPES)
                .await
                .map_err(|e| anyhow!("the Employee's token: {e}"))?;
            eprintln!(
                "/v1/task/own at {total} tasks: {} workers for {} s",
                load.concurrency, load.seconds
            );
            let o = own(client, u, employee.clone(), load, false).await;
            o.report_first_error("own");
            eprintln!("/v1/task/own, every request a new one (no page cache hits)");
            let m = own(client, u, employee, load, true).await;
            m.report_first_error("own (distinct requests)");
            own_run = Some((o, m));
        }
        eprintln!("/v1/task/summary at {total} tasks: {SUMMARY_REQUESTS} sequential requests");
        let s = summary(client, u, &employer, &summary_body()).await;
        s.report_first_error("summary");
        summaries.push((total, s));
        if total == 1_000_000 {
            eprintln!("/v1/task/summary at {total} tasks, partial months at both edges");
            let s = summary(client, u, &employer, &partial_summary_body(u)?).await;
            s.report_first_error("summary (partial months)");
            partial = Some(s);
        }
    }
    if let Some((o, m)) = own_run {
        let rate = o.per_second();
        let [_, p50, p99, errors] =
            scenario_rows("own_per_s", "own_p50_ms", "own_p99_ms", "own_errors", &o);
        rows.push(with_goal(
            row("own_per_s", rate, "1/s"),
            format!(">= {OWN_GOAL}"),
            rate >= OWN_GOAL && o.errors == 0,
        ));
        rows.extend([p50, p99, errors]);
        rows.extend(scenario_rows(
            "own_uncached_per_s",
            "own_uncached_p50_ms",
            "own_uncached_p99_ms",
            "own_uncached_errors",
            &m,
        ));
    }
    for (total, s) in &summaries {
        let p99 = s.quantile_ms(0.99);
        rows.push(row(
            &format!("summary_{total}_p50_ms"),
            s.quantile_ms(0.5),
            "ms",
        ));
        let r = row(&format!("summary_{total}_p99_ms"), p99, "ms");
        rows.push(if *total == 1_000_000 {
            with_goal(
                r,
                format!("< {SUMMARY_GOAL_MS}"),
                p99 < SUMMARY_GOAL_MS && s.errors == 0,
            )
        } else {
            r
        });
        if s.errors > 0 {
            rows.push(row(
                &format!("summary_{total}_errors"),
                s.errors as f64,
                "count",
            ));
        }
    }
    if let Some(s) = partial {
        rows.push(row(
            "summary_1000000_partial_p50_ms",
            s.quantile_ms(0.5),
            "ms",
        ));
        rows.push(row(
            "summary_1000000_partial_p99_ms",
            s.quantile_ms(0.99),
            "ms",
        ));
        if s.errors > 0 {
            rows.push(row(
                "summary_1000000_partial_errors",
                s.errors as f64,
                "count",
            ));
        }
    }

    eprintln!("propagation: {PROPAGATIONS} profile changes");
    let employer = authorize(client, &u.sk, &a.employer_session, EMPLOYER_SCOPES)
        .await
        .map_err(|e| anyhow!("the Employer's token: {e}"))?;
    let p = propagation(client, u, &a, &employer).await;
    p.report_first_error("propagation");
    let p99 = p.quantile_ms(0.99);
    rows.push(row("propagation_p50_ms", p.quantile_ms(0.5), "ms"));
    rows.push(with_goal(
        row("propagation_p99_ms", p99, "ms"),
        format!("< {PROPAGATION_GOAL_MS}"),
        p99 < PROPAGATION_GOAL_MS && p.errors == 0,
    ));
    rows.push(row("propagation_errors", p.errors as f64, "count"));

    eprintln!("revocation: {REVOCATIONS} deactivations");
    let r = revocation(client, u, &a).await;
    r.report_first_error("revocation");
    let p99 = r.quantile_ms(0.99);
    rows.push(row("revocation_p50_ms", r.quantile_ms(0.5), "ms"));
    rows.push(with_goal(
        row("revocation_p99_ms", p99, "ms"),
        format!("< {REVOCATION_GOAL_MS}"),
        p99 < REVOCATION_GOAL_MS && r.errors == 0,
    ));
    rows.push(row("revocation_errors", r.errors as f64, "count"));

    print_table(&rows);
    write_json(&load.out, "task", cores, rows)
}
