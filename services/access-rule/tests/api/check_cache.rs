//! The check cache warms up from the database at start and stays coherent.

use diesel::{sql_query, sql_types::Text, Connection, PgConnection, RunQueryDsl};
use platform::events::{enqueue, Envelope, Op, Source};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{eventually, new_user_id, spawn_app, spawn_on, RESTRICTIONS};

const USERS: usize = 400;

#[tokio::test]
async fn users_stored_before_a_start_are_answered_right_and_changes_still_show() {
    let first = spawn_app().await;
    first.app.stop().await;
    // Users written straight to the database (no notification): every
    // eighth scam-restricted, every tenth deactivated.
    let mut c = PgConnection::establish(&first.db.url).unwrap();
    sql_query(
        "INSERT INTO users (user_id, scam_flags, scam_restricted_at, is_active) \
         SELECT 'warm-' || i, CASE WHEN i % 8 = 0 THEN 2 ELSE 0 END, \
                CASE WHEN i % 8 = 0 THEN now() END, i % 10 <> 0 \
         FROM generate_series(1, $1) AS i",
    )
    .bind::<diesel::sql_types::Integer, _>(USERS as i32)
    .execute(&mut c)
    .unwrap();

    let app = spawn_on(first.db.share(), |_| {}).await;
    eventually(30, "the check cache to warm up", || async {
        let m = testkit::text_of(&app.url("/metrics")).await;
        m.lines()
            .any(|l| {
                l == format!("access_rule_check_cache_users{{service=\"access-rule\"}} {USERS}")
            })
            .then_some(())
    })
    .await;
    for i in 1..=USERS {
        let u = format!("warm-{i}");
        let active = i % 10 != 0;
        assert_eq!(app.can_message(&u).await, active && i % 8 != 0, "{u}");
        assert_eq!(app.can_purchase(&u).await, active, "{u}");
    }
    // Changes after the warm-up reach the checks at once.
    app.flag("warm-1").await;
    assert!(app.can_message("warm-1").await);
    app.flag("warm-1").await;
    assert!(!app.can_message("warm-1").await);
    app.admin(
        Method::POST,
        "/v1/admin/users/warm-8/lift",
        Some(json!({"rule": "scam_flags"})),
    )
    .await;
    assert!(app.can_message("warm-8").await);
}

/// A change committed without its cache notification, as a batch that died
/// between its commit and its notification leaves it, still reaches another
/// replica's cached answer: the outbox relay notifies each user whose access
/// event it publishes. (A change that is notified reaching another replica:
/// `restart::a_change_made_by_one_replica_reaches_the_checks_of_another`.)
#[tokio::test]
async fn a_lost_notification_is_made_up_by_the_outbox_relay() {
    let a = spawn_app().await;
    let b = spawn_on(a.db.share(), |_| {}).await;

    let lost = new_user_id();
    a.flag(&lost).await;
    assert!(b.can_message(&lost).await, "cached by b as allowed");
    // What such a batch commits: the user restricted and the access event
    // in the outbox; no notification.
    let mut c = PgConnection::establish(&a.db.url).unwrap();
    sql_query(
        "UPDATE users SET scam_flags = 2, scam_restricted_at = now(), version = version + 1 \
         WHERE user_id = $1",
    )
    .bind::<Text, _>(&lost)
    .execute(&mut c)
    .unwrap();
    assert!(
        b.can_message(&lost).await,
        "b answers from its cache until notified"
    );
    let event = Envelope::new(
        Op::Update,
        "user_access",
        lost.clone(),
        1,
        Source {
            service: "access-rule".into(),
            table: "users".into(),
        },
        None,
        Some(json!({"user_id": lost})),
    );
    enqueue(&mut c, RESTRICTIONS, &event).unwrap();
    eventually(
        10,
        "the relay's notification to reach replica b",
        || async { (!b.can_message(&lost).await).then_some(()) },
    )
    .await;
    assert!(!a.can_message(&lost).await);
}
