//! Beyond `MAX_IN_FLIGHT` requests at once, the service answers 503
//! problem+json with `Retry-After` at once; its probes and metrics still
//! answer, and it serves again as soon as the flood stops.

use std::time::{Duration, Instant};

use diesel::{connection::SimpleConnection, Connection, PgConnection};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, new_user_id, spawn_app_with, TestApp};

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_millis(1500);
/// Clients sending back to back during the flood.
const CLIENTS: usize = 24;

/// What one answer was: 200, or a 503 as a client must see it.
async fn judge(r: reqwest::Response) -> Result<bool, String> {
    let status = r.status();
    if status == StatusCode::OK {
        return Ok(false);
    }
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let media = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = r.text().await.unwrap_or_default();
    if status != StatusCode::SERVICE_UNAVAILABLE {
        return Err(format!("{status}: {body}"));
    }
    if retry_after.is_none_or(|s| s < 1) {
        return Err(format!("503 without a Retry-After: {body}"));
    }
    if media != "application/problem+json" {
        return Err(format!("503 as {media:?}: {body}"));
    }
    let problem: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if problem["status"] != 503 {
        return Err(format!("503 with the problem {problem}"));
    }
    Ok(true)
}

#[tokio::test]
async fn beyond_its_capacity_the_service_refuses_at_once_and_still_answers_its_probes() {
    let app = spawn_app_with(|o| {
        o.max_in_flight = Some(1);
        o.admission_wait = Some(Duration::ZERO);
    })
    .await;
    let users: Vec<String> = (0..4).map(|_| new_user_id()).collect();
    for u in &users {
        app.flag(u).await;
    }
    // Ready first (its revocation list read up to the topic's end, which on
    // the tests' shared broker can take a moment): then no refusal of a
    // probe below can be anything but the flood's.
    eventually(30, "the service is ready", || async {
        let r = app.http.get(app.url("/readyz")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;

    // A flood of events and checks from many clients at once.
    let deadline = Instant::now() + FLOOD;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, base) = (testkit::http_client(), app.url(""));
            let (producer, user) = (app.producer.clone(), users[c % users.len()].clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    let r = if (c + i) % 2 == 0 {
                        http.post(format!("{base}/event"))
                            .bearer_auth(&producer)
                            .json(&json!({"name": "flag_scam_message",
                                          "event_properties": {"user_id": user}}))
                            .send()
                            .await
                    } else {
                        http.get(format!("{base}/canmessage"))
                            .query(&[("user_id", &user)])
                            .send()
                            .await
                    };
                    answers.push(match r {
                        Ok(r) => judge(r).await,
                        Err(e) => Err(format!("no answer: {e}")),
                    });
                    i += 1;
                }
                answers
            })
        })
        .collect();

    // Meanwhile an orchestrator probes: never refused.
    let mut probes = 0;
    while Instant::now() < deadline {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let r = app.http.get(app.url(path)).send().await.unwrap();
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            assert_eq!(status, StatusCode::OK, "{path} during the flood: {body}");
        }
        probes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(probes > 0);

    let mut refused = 0;
    let mut served = 0;
    for c in clients {
        for answer in c.await.unwrap() {
            match answer {
                Ok(true) => refused += 1,
                Ok(false) => served += 1,
                Err(e) => panic!("neither a success nor a proper 503: {e}"),
            }
        }
    }
    assert!(
        refused > 0,
        "{CLIENTS} clients at once never met the limit of 1"
    );
    assert!(served > 0, "nothing was served during the flood");

    // The refusals are counted where an operator looks.
    let metrics = testkit::text_of(&app.url("/metrics")).await;
    let counted: u64 = metrics
        .lines()
        .find(|l| l.starts_with("http_requests_refused_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(counted >= refused, "{counted} counted, {refused} seen");

    // Once the flood is over, the service serves again.
    let u = new_user_id();
    app.flag(&u).await;
    assert!(app.can_message(&u).await);
}

/// Stalls the writer (a lock on the events table holds the first event's
/// transaction) while a second event of `user` waits behind it for 500 ms,
/// against a bound of 200 ms: the answers to `stalled-first` and
/// `stalled-second`.
async fn stall_behind_a_lock(app: &TestApp, user: &str) -> (reqwest::Response, reqwest::Response) {
    let mut lock = PgConnection::establish(&app.db.url).unwrap();
    lock.batch_execute("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
        .unwrap();
    let post = |id: &str| {
        let body = json!({"name": "flag_scam_message", "event_id": id,
                          "event_properties": {"user_id": user}});
        let (http, url, token) = (app.http.clone(), app.url("/event"), app.producer.clone());
        tokio::spawn(async move { http.post(url).bearer_auth(token).json(&body).send().await })
    };
    let first = post("stalled-first");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = post("stalled-second");
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.batch_execute("COMMIT").unwrap();
    (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    )
}

#[tokio::test]
async fn an_event_that_waited_too_long_in_a_full_batch_is_refused_unapplied_and_can_be_resent() {
    // Batches of one: every batch is full, as under a flood (a queue
    // stands behind it).
    let app = spawn_app_with(|o| {
        o.event_queue_wait = Some(Duration::from_millis(200));
        o.event_batch_max = Some(1);
    })
    .await;
    let user = new_user_id();
    app.flag(&user).await;
    let (first, second) = stall_behind_a_lock(&app, &user).await;
    assert_eq!(first.status(), StatusCode::OK, "the event being applied");
    assert_eq!(
        judge(second).await,
        Ok(true),
        "an event that waited 500 ms against a bound of 200 ms"
    );
    let stored = |id: &str| app.count(&format!("events WHERE event_id = '{id}'"));
    assert_eq!(stored("stalled-first"), 1);
    assert_eq!(stored("stalled-second"), 0, "the refused event was stored");

    // Resent once the database is free, it is applied.
    let body = json!({"name": "flag_scam_message", "event_id": "stalled-second",
                      "event_properties": {"user_id": user}});
    let again = app.post_event(&body).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(stored("stalled-second"), 1);
}

#[tokio::test]
async fn an_event_that_waited_behind_a_stall_with_no_queue_behind_it_is_applied() {
    // The default batch (64): the writer takes the one event waiting, so
    // refusing it would shorten no queue, only turn a slow success into a
    // failure.
    let app = spawn_app_with(|o| o.event_queue_wait = Some(Duration::from_millis(200))).await;
    let user = new_user_id();
    app.flag(&user).await;
    let (first, second) = stall_behind_a_lock(&app, &user).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let stored = |id: &str| app.count(&format!("events WHERE event_id = '{id}'"));
    assert_eq!(stored("stalled-first"), 1);
    assert_eq!(stored("stalled-second"), 1);
}
