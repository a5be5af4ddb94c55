//! Group commit: concurrent events share transactions, yet each is applied
//! exactly once, durably, and one failing event sinks no other.

use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_user_id, spawn_app, spawn_app_with, spawn_on, TestApp};

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(app: &TestApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

fn flag(user: &str, id: &str) -> Value {
    json!({"name": "flag_scam_message", "event_id": id, "event_properties": {"user_id": user}})
}

#[tokio::test]
async fn a_burst_of_events_from_many_users_is_applied_exactly_once_and_durably() {
    // Every user of the burst is restricted: keep the tripwire out of it.
    // 480 requests at once, all to be applied: no admission limit either
    // (tests/api/overload.rs covers that).
    let app = spawn_app_with(|o| {
        o.rules.tripwire.min_population = 1_000_000;
        o.max_in_flight = Some(0);
    })
    .await;
    let users: Vec<String> = (0..60).map(|_| new_user_id()).collect();
    // Four flags per user, each sent twice at the same time, all at once.
    let bodies: Vec<Value> = users
        .iter()
        .flat_map(|u| (0..4).map(move |i| flag(u, &format!("{u}-{i}"))))
        .flat_map(|b| [b.clone(), b])
        .collect();
    let before = metrics(&app).await;
    let answers: Vec<(StatusCode, Value)> = join_all(bodies.iter().map(|b| async {
        let r = app.post_event(b).await;
        (r.status(), r.json::<Value>().await.unwrap())
    }))
    .await;
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}"
    );
    let fresh: Vec<&Value> = answers
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o["replayed"] == false)
        .collect();
    assert_eq!(
        fresh.len(),
        240,
        "each event applied once, its twin replayed"
    );
    for u in &users {
        let mut counts: Vec<i64> = fresh
            .iter()
            .filter(|o| o["user_id"] == u.as_str())
            .map(|o| o["facts"]["scam_flags"].as_i64().unwrap())
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, [1, 2, 3, 4], "each saw the user's earlier flags");
        assert!(!app.can_message(u).await);
    }
    assert_eq!(app.count("events"), 240);
    // Shared transactions: fewer commits than events.
    let after = metrics(&app).await;
    let batches = metric(&after, "access_rule_event_batches_total")
        - metric(&before, "access_rule_event_batches_total");
    let events = metric(&after, "access_rule_batched_events_total")
        - metric(&before, "access_rule_batched_events_total");
    assert_eq!(events, 480.0);
    assert!(batches < events, "{batches} batches for {events} events");

    // Durable: another instance on the same database sees every flag.
    app.app.stop().await;
    let again = spawn_on(app.db.share(), |_| {}).await;
    for u in &users {
        assert_eq!(again.user(u).await["facts"]["scam_flags"], 4);
    }
    let replay = again
        .event(flag(&users[0], &format!("{}-0", users[0])))
        .await;
    assert_eq!(replay["replayed"], true);
}

#[tokio::test]
async fn an_event_that_fails_in_the_middle_of_a_batch_fails_alone() {
    let app = spawn_app().await;
    let poisoned = new_user_id();
    // The database refuses this one user's events (a fault no validation
    // can see), whichever batch they fall in.
    let mut c = PgConnection::establish(&app.db.url).unwrap();
    sql_query(format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.user_id = '{poisoned}' THEN RAISE EXCEPTION 'refused'; END IF; \
           RETURN NEW; END $$"
    ))
    .execute(&mut c)
    .unwrap();
    sql_query(
        "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    .execute(&mut c)
    .unwrap();
    let taken = new_user_id();
    app.event(flag(&taken, "taken-id")).await;

    let users: Vec<String> = (0..80).map(|_| new_user_id()).collect();
    let mut bodies: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({"name": "chargeback", "event_id": format!("cb-{u}"),
            "event_properties": {"user_id": u, "chargebacks": 1.5}})
        })
        .collect();
    let middle = bodies.len() / 2;
    bodies.insert(middle, flag(&poisoned, "poisoned-id"));
    // A reused event_id for a user not seen yet: 409, nothing stored.
    let stranger = new_user_id();
    bodies.insert(middle + 1, flag(&stranger, "taken-id"));
    let responses = join_all(bodies.iter().map(|b| app.post_event(b))).await;
    let mut statuses = Vec::new();
    for (i, r) in responses.into_iter().enumerate() {
        let status = r.status();
        statuses.push(status);
        if i == middle {
            let p = assert_problem(r, StatusCode::INTERNAL_SERVER_ERROR).await;
            assert!(!p.to_string().contains("refused"), "no internals: {p}");
        } else if i == middle + 1 {
            let p = assert_problem(r, StatusCode::CONFLICT).await;
            assert_eq!(p["event_id"], "taken-id");
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    for u in &users {
        assert_eq!(app.user(u).await["facts"]["chargeback_cents"], 150);
    }
    assert_eq!(app.count("events"), 81, "the 80 and the first taken-id");
    for nobody in [&poisoned, &stranger] {
        assert_problem(app.check("canmessage", nobody).await, StatusCode::NOT_FOUND).await;
    }
    assert_eq!(app.user(&taken).await["facts"]["scam_flags"], 1);
}

#[tokio::test]
async fn stored_events_past_their_retention_are_pruned_and_their_ids_free_again() {
    let first = spawn_app().await;
    let u = new_user_id();
    first.event(flag(&u, "old-event")).await;
    first.event(flag(&u, "new-event")).await;
    first.app.stop().await;
    let mut c = PgConnection::establish(&first.db.url).unwrap();
    sql_query(
        "UPDATE events SET received_at = now() - interval '31 days' WHERE event_id = 'old-event'",
    )
    .execute(&mut c)
    .unwrap();

    // The default retention is 30 days; pruning runs an interval after
    // start, then every interval.
    let app = spawn_on(first.db.share(), |o| {
        o.retention_interval = Some(std::time::Duration::from_millis(200))
    })
    .await;
    crate::helpers::eventually(30, "the old event to be pruned", || async {
        (app.count("events") == 1).then_some(())
    })
    .await;
    assert_eq!(app.event(flag(&u, "new-event")).await["replayed"], true);
    let again = app.event(flag(&u, "old-event")).await;
    assert_eq!(
        again["replayed"], false,
        "past its retention, an id is new again"
    );
    assert_eq!(again["facts"]["scam_flags"], 3);
}
