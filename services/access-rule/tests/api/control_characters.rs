//! NUL bytes and other control characters in events and checks: 400
//! problem+json naming the rule, never a 500 (PostgreSQL refuses NUL in
//! text), and nothing is stored or restricted.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_user_id, spawn_app};

async fn assert_refused(r: reqwest::Response, place: &str) -> Value {
    let p = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["rule"], "no_control_characters", "{p}");
    assert_eq!(p["in"], place, "{p}");
    p
}

#[tokio::test]
async fn a_nul_byte_in_an_event_or_a_check_is_400_and_stores_nothing() {
    let app = spawn_app().await;
    let u = new_user_id();
    for body in [
        json!({"name": "flag_scam_message", "event_properties": {"user_id": format!("{u}\u{0}")}}),
        json!({"name": "flag_scam_message\u{0}", "event_properties": {"user_id": u}}),
        json!({"name": "add_credit_card", "event_properties": {"user_id": u,
            "zip_code": "1000\u{1}", "last_four_digits": "4242", "total_spend": 10.0}}),
    ] {
        assert_refused(app.post_event(&body).await, "body").await;
    }
    assert_eq!(app.count("events"), 0);
    assert_eq!(app.count("cards"), 0);
    assert_eq!(app.count("restriction_log"), 0);

    for what in ["canmessage", "canpurchase"] {
        assert_refused(app.check(what, &format!("{u}\u{0}")).await, "query").await;
        assert_refused(app.check(what, &format!("{u}\u{9}")).await, "query").await;
    }
    // The refused events left no trace of the user; a clean one is taken.
    assert_eq!(
        app.check("canmessage", &u).await.status(),
        StatusCode::NOT_FOUND
    );
    app.card(&u, "10001", "4242", 10.0).await;
    assert!(app.can_message(&u).await);
    assert!(app.can_purchase(&u).await);
}
