//! Bad input of every kind: 4xx problem+json, nothing stored.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, new_user_id, spawn_app};

#[tokio::test]
async fn bad_events_answer_4xx_problem_json_and_store_nothing() {
    let app = spawn_app().await;
    let u = new_user_id();
    let card = |zip: serde_json::Value, last4: serde_json::Value, spend: serde_json::Value| {
        json!({"name": "add_credit_card", "event_properties":
            {"user_id": u, "zip_code": zip, "last_four_digits": last4, "total_spend": spend}})
    };
    let invalid = [
        (
            json!({"name": "send_money", "event_properties": {"user_id": u}}),
            "name",
        ),
        (json!({"event_properties": {"user_id": u}}), "name"),
        (json!({"name": "flag_scam_message"}), "event_properties"),
        (
            json!({"name": "flag_scam_message", "event_properties": "u"}),
            "event_properties",
        ),
        (
            json!({"name": "flag_scam_message", "event_properties": {}}),
            "event_properties.user_id",
        ),
        (
            json!({"name": "flag_scam_message", "event_properties": {"user_id": null}}),
            "event_properties.user_id",
        ),
        (
            json!({"name": "flag_scam_message", "event_properties": {"user_id": ["u"]}}),
            "event_properties.user_id",
        ),
        (
            json!({"name": "flag_scam_message", "event_properties": {"user_id": "x".repeat(200)}}),
            "event_properties.user_id",
        ),
        (
            json!({"name": "flag_scam_message", "event_id": {}, "event_properties": {"user_id": u}}),
            "event_id",
        ),
        (
            json!({"name": "chargeback", "event_properties": {"user_id": u}}),
            "event_properties.chargebacks",
        ),
        (
            json!({"name": "chargeback", "event_properties": {"user_id": u, "chargebacks": -5}}),
            "event_properties.chargebacks",
        ),
        (
            json!({"name": "chargeback", "event_properties": {"user_id": u, "chargebacks": "5"}}),
            "event_properties.chargebacks",
        ),
        (
            json!({"name": "chargeback", "event_properties": {"user_id": u, "chargebacks": 0.001}}),
            "event_properties.chargebacks",
        ),
        (
            card(json!("10001"), json!("1234"), json!(-1)),
            "event_properties.total_spend",
        ),
        (
            card(json!("10001"), json!("12345"), json!(1)),
            "event_properties.last_four_digits",
        ),
        (
            card(json!("10001"), json!(true), json!(1)),
            "event_properties.last_four_digits",
        ),
        (
            card(json!(""), json!("1234"), json!(1)),
            "event_properties.zip_code",
        ),
        (
            card(json!({"zip": 1}), json!("1234"), json!(1)),
            "event_properties.zip_code",
        ),
        (
            card(json!("10001"), json!("1234"), json!(null)),
            "event_properties.total_spend",
        ),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in invalid {
        let p = assert_problem(app.post_event(&body).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(p["field"], field, "{body}");
    }
    let raw = |body: &'static str, ct: &'static str| {
        app.http
            .post(app.url("/event"))
            .bearer_auth(&app.producer)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    for body in ["{", "", "{\"name\": \"flag_scam_message\",}", "nul"] {
        let r = raw(body, "application/json").await.unwrap();
        assert_problem(r, StatusCode::BAD_REQUEST).await;
    }
    let r = raw("{}", "text/plain").await.unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = format!(
        r#"{{"name":"flag_scam_message","event_properties":{{"user_id":"{u}","pad":"{}"}}}}"#,
        "x".repeat(100_000)
    );
    let r = app
        .http
        .post(app.url("/event"))
        .bearer_auth(&app.producer)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;

    assert_eq!(app.count("events"), 0);
    assert_eq!(app.count("cards"), 0);
    assert_eq!(app.count("restriction_log"), 0);
    assert_problem(app.check("canmessage", &u).await, StatusCode::NOT_FOUND).await;
    let r = app
        .http
        .get(app.url("/canpurchase"))
        .query(&[("user_id", "x".repeat(200))])
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn the_operator_api_needs_an_operator() {
    let app = spawn_app().await;
    let u = new_user_id();
    app.flag(&u).await;
    let path = format!("/v1/admin/users/{u}");
    let r = app.http.get(app.url(&path)).send().await.unwrap();
    let p = assert_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(p["detail"].as_str().unwrap().contains("Bearer"));
    for token in ["wrong-token", "test-operator-token-012345678", "a.b.c"] {
        let r = app.admin_as(token, reqwest::Method::GET, &path, None).await;
        assert_problem(r, StatusCode::UNAUTHORIZED).await;
    }
    let r = app
        .admin_as(
            testkit::access_rule::OPERATOR_TOKEN,
            reqwest::Method::POST,
            &format!("{path}/lift"),
            Some(json!({"rule": "account_inactive"})),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    let r = app
        .admin_as(
            testkit::access_rule::OPERATOR_TOKEN,
            reqwest::Method::POST,
            "/v1/admin/rules/nope/reset",
            None,
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND).await;
    let r = app
        .admin_as(
            testkit::access_rule::OPERATOR_TOKEN,
            reqwest::Method::GET,
            &format!("/v1/admin/users/{}", new_user_id()),
            None,
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND).await;
}
