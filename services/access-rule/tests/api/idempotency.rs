//! An event resent with the same id is applied once.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_user_id, spawn_app};

#[tokio::test]
async fn an_event_resent_with_the_same_id_is_applied_once() {
    let app = spawn_app().await;
    let u = new_user_id();
    let body = json!({"name": "chargeback", "event_id": "cb-1",
        "event_properties": {"user_id": u, "chargebacks": 12.5}});
    let first = app.event(body.clone()).await;
    assert_eq!(first["replayed"], false);
    let again = app.event(body.clone()).await;
    assert_eq!(again["replayed"], true);
    assert_eq!(again["facts"], first["facts"], "the original outcome");
    assert_eq!(app.user(&u).await["facts"]["chargeback_cents"], 1250);
    // The amount may be written differently and still be the same event.
    let same = app
        .event(json!({"name": "chargeback", "event_id": "cb-1",
            "event_properties": {"user_id": u, "chargebacks": 12.50, "note": "resent"}}))
        .await;
    assert_eq!(same["replayed"], true);

    // Resent concurrently: still once.
    let id = format!("flag-{}", new_user_id());
    let body = json!({"name": "flag_scam_message", "event_id": id,
        "event_properties": {"user_id": u}});
    let outcomes: Vec<Value> = join_all((0..20).map(|_| app.event(body.clone()))).await;
    assert_eq!(
        outcomes.iter().filter(|o| o["replayed"] == false).count(),
        1
    );
    assert_eq!(app.user(&u).await["facts"]["scam_flags"], 1);
}

#[tokio::test]
async fn an_event_id_reused_for_a_different_event_is_a_conflict_and_stores_nothing() {
    let app = spawn_app().await;
    let (u, v) = (new_user_id(), new_user_id());
    app.event(json!({"name": "flag_scam_message", "event_id": "e-1",
        "event_properties": {"user_id": u}}))
        .await;
    let events = app.count("events");
    for body in [
        json!({"name": "flag_scam_message", "event_id": "e-1", "event_properties": {"user_id": v}}),
        json!({"name": "chargeback", "event_id": "e-1",
            "event_properties": {"user_id": u, "chargebacks": 1}}),
    ] {
        let p = assert_problem(app.post_event(&body).await, StatusCode::CONFLICT).await;
        assert_eq!(p["event_id"], "e-1");
    }
    assert_eq!(app.count("events"), events);
    assert_problem(app.check("canmessage", &v).await, StatusCode::NOT_FOUND).await;
    assert_eq!(app.user(&u).await["facts"]["scam_flags"], 1);
}
