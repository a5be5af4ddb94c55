//! Nothing is lost across a restart; nothing is flushed at start-up.

use serde_json::json;

use crate::helpers::{eventually, new_user_id, spawn_app, spawn_on};

#[tokio::test]
async fn nothing_is_lost_across_a_restart() {
    let first = spawn_app().await;
    let u = new_user_id();
    first.flag(&u).await;
    first.flag(&u).await;
    first.card(&u, "10001", "1111", 5000.0).await;
    let body = json!({"name": "chargeback", "event_id": "before-restart",
        "event_properties": {"user_id": u, "chargebacks": 600}});
    first.event(body.clone()).await;
    assert!(!first.can_message(&u).await);
    assert!(!first.can_purchase(&u).await);
    first.app.stop().await;
    assert!(first.http.get(first.url("/healthz")).send().await.is_err());

    let second = spawn_on(first.db.share(), |_| {}).await;
    assert!(!second.can_message(&u).await);
    assert!(!second.can_purchase(&u).await);
    let again = second.event(body).await;
    assert_eq!(again["replayed"], true, "the event log survived");
    let user = second.user(&u).await;
    assert_eq!(user["facts"]["scam_flags"], 2);
    assert_eq!(user["facts"]["chargeback_cents"], 60_000);
    assert_eq!(user["cards"].as_array().unwrap().len(), 1);
    // Counting goes on where it stopped.
    assert_eq!(second.flag(&u).await["facts"]["scam_flags"], 3);
}

#[tokio::test]
async fn a_change_made_by_one_replica_reaches_the_checks_of_another() {
    let a = spawn_app().await;
    let b = spawn_on(a.db.share(), |_| {}).await;
    let u = new_user_id();
    a.flag(&u).await;
    a.card(&u, "1", "0001", 10.0).await;
    // Replica b has read (and cached) the user before the changes.
    assert!(b.can_message(&u).await && b.can_purchase(&u).await);
    assert!(b.can_message(&u).await);
    a.flag(&u).await;
    eventually(5, "b to see the restriction", || async {
        (!b.can_message(&u).await).then_some(())
    })
    .await;
    b.admin(
        reqwest::Method::POST,
        &format!("/v1/admin/users/{u}/lift"),
        Some(json!({"rule": "scam_flags"})),
    )
    .await;
    assert!(b.can_message(&u).await, "at once where it was lifted");
    eventually(5, "a to see the lift", || async {
        a.can_message(&u).await.then_some(())
    })
    .await;
}
