//! NUL bytes and other control characters in forms, queries and JSON:
//! 400 problem+json naming the rule, never a 500 (PostgreSQL refuses NUL
//! in text) or a 503 page, and nothing changes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, spawn, TestPlatform, SERVICE, SERVICE_SECRET, SPA, SPA_REDIRECT,
};

async fn assert_refused(r: reqwest::Response, place: &str) -> Value {
    let p = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["rule"], "no_control_characters", "{p}");
    assert_eq!(p["in"], place, "{p}");
    p
}

async fn client_credentials(p: &TestPlatform, client_id: &str) -> reqwest::Response {
    p.http
        .post(p.sk("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", SERVICE_SECRET),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_nul_byte_in_a_form_field_of_the_token_introspection_or_consent_endpoint_is_400() {
    let p = spawn().await;
    for id in [
        format!("{SERVICE}\u{0}"),
        format!("\u{0}{SERVICE}"),
        format!("{SERVICE}\u{1}"),
    ] {
        assert_refused(client_credentials(&p, &id).await, "body").await;
    }
    // The client itself is untouched and still gets its token.
    let r = client_credentials(&p, SERVICE).await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let introspect = |client_id: String| {
        p.http
            .post(p.sk("/oauth2/introspect"))
            .form(&[
                ("token", token.as_str()),
                ("client_id", client_id.as_str()),
                ("client_secret", SERVICE_SECRET),
            ])
            .send()
    };
    for id in [format!("{SERVICE}\u{0}"), format!("{SERVICE}\u{7f}")] {
        assert_refused(introspect(id).await.unwrap(), "body").await;
    }
    let i: Value = introspect(SERVICE.into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(i["active"], true, "{i}");
    // The consent form once answered a 503 "Cannot continue" page here.
    let r = p
        .http
        .post(p.sk("/oauth2/consent"))
        .form(&[
            ("client_id", format!("{SPA}\u{0}")),
            ("redirect_uri", SPA_REDIRECT.to_owned()),
            ("response_type", "code".to_owned()),
            ("decision", "allow".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_refused(r, "body").await;
}

#[tokio::test]
async fn a_nul_byte_in_a_query_or_a_json_field_is_400_and_creates_nothing() {
    let p = spawn().await;
    let r = p
        .http
        .get(p.sk("/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &format!("{SPA}\u{0}")),
            ("redirect_uri", SPA_REDIRECT),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_refused(r, "query").await;
    let r = p
        .admin_call(Method::GET, "/v1/admin/users?username=%00", None)
        .await;
    assert_refused(r, "query").await;
    let r = p
        .admin_call(Method::GET, "/v1/admin/clients/%1B", None)
        .await;
    assert_refused(r, "path").await;

    let client = json!({"client_id": "nul-client", "name": "Nul\u{0}Client", "public": true,
        "redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code"],
        "scopes": ["read:task"]});
    let r = p
        .admin_call(Method::POST, "/v1/admin/clients", Some(client))
        .await;
    assert_refused(r, "body").await;
    let mut client = json!({"client_id": "nul-client\u{8}", "name": "Nul Client", "public": true,
        "redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code"],
        "scopes": ["read:task"]});
    let r = p
        .admin_call(Method::POST, "/v1/admin/clients", Some(client.clone()))
        .await;
    assert_refused(r, "body").await;
    let r = p
        .admin_call(Method::GET, "/v1/admin/clients/nul-client", None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The same client without the control character is created.
    client["client_id"] = json!("nul-client");
    p.create_client(client).await;
}

/// What a fuzzer sends the browser endpoints (bad escapes, bytes that are
/// not UTF-8, an overlong client id, the wrong media type): a 4xx, never
/// the 503 "try again" page, which would tell the browser to send the
/// same again.
#[tokio::test]
async fn malformed_authorization_forms_are_4xx_never_a_503_page() {
    let p = spawn().await;
    let long = format!("client_id={}&response_type=code", "a".repeat(10_000));
    let bodies: [(&str, Vec<u8>); 6] = [
        (
            "application/x-www-form-urlencoded",
            b"client_id=%ZZ&x=%".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"client_id=%FF%FE&response_type=code".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"client_id=\xff\xfe".to_vec(),
        ),
        ("application/x-www-form-urlencoded", long.into_bytes()),
        (
            "application/x-www-form-urlencoded",
            format!("client_id={SPA}&client_id=other&response_type=code&decision=allow")
                .into_bytes(),
        ),
        (
            "application/json",
            format!(r#"{{"client_id":"{SPA}"}}"#).into_bytes(),
        ),
    ];
    for path in ["/oauth2/consent", "/oauth2/login"] {
        for (media_type, body) in &bodies {
            let r = p
                .http
                .post(p.sk(path))
                .header("Content-Type", *media_type)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            assert!(
                status.is_client_error(),
                "{path} {:?}: {status} {text}",
                String::from_utf8_lossy(body)
            );
        }
    }
    // The same through the authorization request's query string.
    for query in ["client_id=%FF%FE&response_type=code", "client_id=%ZZ"] {
        let r = p
            .http
            .get(format!("{}?{query}", p.sk("/oauth2/authorize")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let r = p
        .http
        .post(p.sk("/oauth2/consent"))
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"client_id":"{SPA}"}}"#))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST).await;
}
