//! The check cache warms up from the database at start and stays coherent.

use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{eventually, spawn_app, spawn_on};

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
        let m = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
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
