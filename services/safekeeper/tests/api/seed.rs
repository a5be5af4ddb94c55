use std::sync::Arc;

use platform::jwt::{AccessClaims, KeySource, RemoteJwks, Verifier, ACCESS_TYP};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_problem, eventually, spawn, PASSWORD};

#[tokio::test]
async fn an_employer_exchanges_a_session_for_an_access_token_with_exactly_the_asked_scopes() {
    let p = spawn().await;
    let (name, id) = p.user_with_role(Some("Employer")).await;
    let session = p.session(&name, PASSWORD).await;
    let r = p
        .authorize(
            &session,
            " create:task, su_read:task,su_edit:task ,create:task",
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 300);
    assert_eq!(v["scopes"], "create:task,su_edit:task,su_read:task");
    let verifier = Verifier::new(
        KeySource::Remote(Arc::new(RemoteJwks::new(
            p.sk("/.well-known/jwks.json"),
            testkit::http_client(),
        ))),
        "http://127.0.0.1:5001",
        ACCESS_TYP,
    )
    .with_audience("platform");
    let claims: AccessClaims = verifier
        .verify(v["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub, id);
    assert_eq!(claims.username.as_deref(), Some(name.as_str()));
    assert_eq!(claims.scope, "create:task su_edit:task su_read:task");
    assert_eq!(claims.exp - claims.iat, 300);
    let header = jsonwebtoken::decode_header(v["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
}

#[tokio::test]
async fn an_employee_asking_for_su_read_gets_403_naming_the_missing_scope() {
    let p = spawn().await;
    let (name, _) = p.user_with_role(Some("Employee")).await;
    let session = p.session(&name, PASSWORD).await;
    let body = assert_problem(
        p.authorize(&session, "read:task,su_read:task").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["missing_scopes"], serde_json::json!(["su_read:task"]));
    assert!(body["detail"].as_str().unwrap().contains("su_read:task"));
    assert_eq!(
        p.authorize(&session, "read:task,edit:task").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_access_token_is_refused_where_a_session_token_is_required() {
    let p = spawn().await;
    let (name, _) = p.user_with_role(Some("Employee")).await;
    let session = p.session(&name, PASSWORD).await;
    let access: Value = p
        .authorize(&session, "read:task")
        .await
        .json()
        .await
        .unwrap();
    let r = p
        .authorize(access["access_token"].as_str().unwrap(), "read:task")
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = p
        .http
        .post(p.sk("/v1/authorize"))
        .json(&serde_json::json!({"scopes": "read:task"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = p
        .http
        .post(p.sk("/v1/authorize"))
        .bearer_auth(&session)
        .json(&serde_json::json!({"scope": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn the_task_management_designs_bare_session_token_is_taken_on_authorize_only() {
    let p = spawn().await;
    let (name, _) = p.user_with_role(Some("Employee")).await;
    let session = p.session(&name, PASSWORD).await;
    let authorize = |value: String| {
        p.http
            .post(p.sk("/v1/authorize"))
            .header("Authorization", value)
            .json(&serde_json::json!({"scopes": "read:task"}))
            .send()
    };
    let r = authorize(session.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the bare token, as the design sends it"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scopes"], "read:task");
    // The bare form is a session token like any other: a made-up one, or
    // another scheme, is refused.
    assert_problem(
        authorize("not-a-token".into()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        authorize(format!("Basic {session}")).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Elsewhere only Bearer counts.
    let r = p
        .http
        .get(p.sk("/v1/permission"))
        .header("Authorization", session.clone())
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn permission_lists_the_callers_roles_and_scopes() {
    let p = spawn().await;
    let (name, id) = p.user_with_role(Some("Employee")).await;
    let session = p.session(&name, PASSWORD).await;
    let v: Value = p
        .http
        .get(p.sk("/v1/permission"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["user_id"], id.as_str());
    assert_eq!(v["roles"], serde_json::json!(["Employee"]));
    assert_eq!(
        v["scopes"],
        serde_json::json!(["edit:task", "read:accounting", "read:task"])
    );
}

#[tokio::test]
async fn a_user_deactivated_in_the_authenticator_is_refused_once_the_event_arrives() {
    let p = spawn().await;
    let (name, id) = p.user_with_role(Some("Employee")).await;
    let session = p.session(&name, PASSWORD).await;
    assert_eq!(
        p.authorize(&session, "read:task").await.status(),
        StatusCode::OK
    );
    p.deactivate(&id).await;
    eventually(10, "the deactivation to reach the safekeeper", || async {
        (p.authorize(&session, "read:task").await.status() == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
}
