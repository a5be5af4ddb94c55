//! Revocations made at the safekeeper reach the task service through
//! `oauth.revocation.v1`: a revoked token, the tokens of a replayed code,
//! and a replica that starts after the revocation all refuse them.

use std::collections::BTreeMap;

use reqwest::{header, Response, StatusCode, Url};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, eventually, spawn, task_options, TestPlatform, PASSWORD, READER, READER_SECRET,
};

/// A PKCE verifier and its S256 challenge.
const VERIFIER: &str = "revocation-test-code-verifier-0123456789-abcdefghijklmnopqrstuv";
const CHALLENGE: &str = "w8ZIIaIOGaawKblnrfb2-xMUyyOMe_X89Vv3lGVYW7w";
const REDIRECT: &str = "https://app.example/callback";

/// `POST /v1/task/all` with `token`, at the task service at `base`.
async fn read_all(p: &TestPlatform, base: &str, token: &str) -> Response {
    p.http
        .post(format!("{base}/v1/task/all"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

/// Waits until the task service at `base` refuses `token` with 401, and
/// checks the refusal says why.
async fn refused_soon(p: &TestPlatform, base: &str, token: &str) {
    let r = eventually(
        15,
        "the task service to refuse the revoked token",
        || async {
            let r = read_all(p, base, token).await;
            (r.status() == StatusCode::UNAUTHORIZED).then_some(r)
        },
    )
    .await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}

async fn revoke(p: &TestPlatform, token: &str) {
    let r = p
        .http
        .post(format!("{}/oauth2/revoke", p.sk))
        .basic_auth(READER, Some(READER_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_revoked_at_the_safekeeper_is_refused_by_the_task_service() {
    let p = spawn().await;
    let token = p.client_token().await;
    assert_eq!(read_all(&p, &p.task, &token).await.status(), StatusCode::OK);

    revoke(&p, &token).await;
    refused_soon(&p, &p.task, &token).await;

    // Only that token: the client's other tokens still work.
    assert_eq!(
        read_all(&p, &p.task, &p.reader).await.status(),
        StatusCode::OK
    );
    let fresh = p.client_token().await;
    assert_eq!(read_all(&p, &p.task, &fresh).await.status(), StatusCode::OK);
}

/// The cookies a response sets, kept as a browser keeps them.
fn keep_cookies(jar: &mut BTreeMap<String, String>, r: &Response) {
    for v in r.headers().get_all(header::SET_COOKIE) {
        let v = v.to_str().unwrap();
        let Some((name, value)) = v.split(';').next().and_then(|c| c.split_once('=')) else {
            continue;
        };
        if v.contains("Max-Age=0") {
            jar.remove(name.trim());
        } else {
            jar.insert(name.trim().to_owned(), value.to_owned());
        }
    }
}

fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the hidden field") + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

fn location(r: &Response) -> String {
    r.headers()
        .get(header::LOCATION)
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Signs `username` in on the safekeeper's page, as a browser would, and
/// returns the authorization code issued to the first-party `client`.
async fn authorization_code(p: &TestPlatform, client: &str, username: &str) -> String {
    let http = testkit::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar = BTreeMap::new();
    let query = Url::parse_with_params(
        "http://x/oauth2/authorize",
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("scope", "read:task"),
            ("state", "xyz"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let authorize = format!("/oauth2/authorize?{}", query.query().unwrap());
    let r = http
        .get(format!("{}{authorize}", p.sk))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    keep_cookies(&mut jar, &r);
    let page = r.text().await.unwrap();
    let r = http
        .post(format!("{}/oauth2/login", p.sk))
        .header(header::COOKIE, cookie_header(&jar))
        .header("origin", &p.sk)
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("username", username.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("return_to", hidden_field(&page, "return_to")),
            ("csrf", hidden_field(&page, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    keep_cookies(&mut jar, &r);
    let back = location(&r);
    let r = http
        .get(format!("{}{back}", p.sk))
        .header(header::COOKIE, cookie_header(&jar))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let to = Url::parse(&location(&r)).unwrap();
    to.query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned()
}

async fn exchange(p: &TestPlatform, client: &str, code: &str) -> Response {
    p.http
        .post(format!("{}/oauth2/token", p.sk))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replayed_code_gets_the_first_access_token_refused_by_the_task_service() {
    let p = spawn().await;
    let client = format!("spa-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    p.create_client(
        json!({"client_id": client, "name": "Revocation SPA", "public": true,
                        "first_party": true, "redirect_uris": [REDIRECT],
                        "grant_types": ["authorization_code", "refresh_token"],
                        "scopes": ["read:task"]}),
    )
    .await;
    let person = p.person(Some("Employee")).await;
    let code = authorization_code(&p, &client, &person.username).await;
    let r = exchange(&p, &client, &code).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first: Value = r.json().await.unwrap();
    let token = first["access_token"].as_str().unwrap().to_owned();
    let own = |t: String| {
        let p = &p;
        async move { p.post(&t, "/v1/task/own", json!({})).await.status() }
    };
    assert_eq!(own(token.clone()).await, StatusCode::OK);

    // The code comes back (stolen, say): refused, and its grant revoked.
    let r = exchange(&p, &client, &code).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    refused_soon(&p, &p.task, &token).await;
    // The person's other grants are untouched.
    let other = p.token(&person, "read:task").await;
    let r = p.post(&other, "/v1/task/own", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_replica_started_after_a_revocation_refuses_the_revoked_token_once_ready() {
    let p = spawn().await;
    let token = p.client_token().await;
    revoke(&p, &token).await;
    // Published: the running replica refuses it.
    refused_soon(&p, &p.task, &token).await;

    let replica = testkit::task::spawn(task_options(&p.brokers, &p.task_db, &p.sk)).await;
    let base = replica.address.clone();
    let ready = eventually(30, "the new replica to be ready", || async {
        let r = p.http.get(format!("{base}/readyz")).send().await.unwrap();
        let ok = r.status() == StatusCode::OK;
        let body: Value = r.json().await.unwrap();
        ok.then_some(body)
    })
    .await;
    assert_eq!(ready["checks"]["revocations"], "ok", "{ready}");
    // Ready means caught up: refused at once, no waiting.
    let body = assert_problem(read_all(&p, &base, &token).await, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert_eq!(
        read_all(&p, &base, &p.reader).await.status(),
        StatusCode::OK
    );
    replica.stop().await;
}
