//! The accounting dashboard: HTML pages behind a sign-in through the
//! safekeeper (authorization code with PKCE, a confidential client, the
//! session in an HttpOnly cookie). Driven over plain HTTP with a cookie
//! jar, as a browser without JavaScript would, and once in headless
//! Chromium.

use chrono::Utc;
use dashboard::sealed::{Kind, Sealer};
use diesel::{Connection, ExpressionMethods, PgConnection, QueryDsl, RunQueryDsl};
use reqwest::{header, StatusCode};
use serde_json::Value;
use testkit::dashboard::{hidden_field, sign_in, Jar, CLIENT_SECRET};

use crate::helpers::{eventually, spawn_with_dashboard, PricedTask, TestPlatform};

const SESSION: &str = "accounting-dashboard";
const LOGIN: &str = "accounting-dashboard-login";

fn sessions(p: &TestPlatform) -> Vec<(String, Option<String>)> {
    use dashboard::store::dashboard_sessions::dsl as s;
    let mut c = PgConnection::establish(&p.db_url).expect("the service's database");
    s::dashboard_sessions
        .select((s::subject, s::refresh_token))
        .load(&mut c)
        .expect("the sessions")
}

fn logins(p: &TestPlatform) -> i64 {
    use dashboard::store::dashboard_logins::dsl as l;
    let mut c = PgConnection::establish(&p.db_url).expect("the service's database");
    l::dashboard_logins
        .count()
        .get_result(&mut c)
        .expect("the sign-ins")
}

/// An Employee known to accounting, signed in on the dashboard.
async fn signed_in_worker(p: &TestPlatform) -> (testkit::Person, Jar) {
    let (worker, _) = p.worker().await;
    let mut jar = Jar::default();
    let r = sign_in(
        &p.http,
        &mut jar,
        &p.accounting,
        &p.sk,
        &worker.username,
        testkit::PASSWORD,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/dashboard");
    assert!(jar.0.contains_key(SESSION), "a session cookie: {jar:?}");
    assert!(!jar.0.contains_key(LOGIN), "the login cookie is spent");
    (worker, jar)
}

async fn dashboard_page(p: &TestPlatform, jar: &mut Jar) -> (StatusCode, String) {
    let r = jar.get(&p.http, &p.url("/dashboard")).await;
    let status = r.status();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn the_landing_page_links_the_task_docs_and_both_dashboards() {
    let p = spawn_with_dashboard().await;
    let r = p.http.get(p.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("<html lang=\"en\">"));
    assert!(page.contains("Task tracker API documentation"));
    assert!(page.contains(">Accounting</a>") && page.contains(">Analytics</a>"));
    assert!(!page.contains("<script"));
}

#[tokio::test]
async fn a_worker_signs_in_and_sees_their_balance_and_ledger() {
    let p = spawn_with_dashboard().await;
    let (worker, mut jar) = signed_in_worker(&p).await;
    let id = worker.id.parse().unwrap();
    let task = PricedTask::new(300, 2000, Utc::now());
    p.publish(&task.assigned(1, id)).await;
    p.publish(&task.completed(2, id)).await;
    let page = eventually(30, "the balance on the dashboard", || async {
        let (status, page) = dashboard_page(&p, &mut jar.clone()).await;
        (status == StatusCode::OK && page.contains("17.00")).then_some(page)
    })
    .await;
    assert!(page.contains("Your balance"));
    assert!(
        page.contains("<caption>"),
        "the ledger is a captioned table"
    );
    assert!(page.contains("<th scope=\"col\">Amount</th>"));
    assert!(page.contains("-3.00") && page.contains("20.00"));
    assert!(page.contains(&worker.username), "greets them");
    // A worker is not management.
    assert!(!page.contains("Management's earnings"));
    let (status, _) = dashboard_page(&p, &mut jar).await;
    assert_eq!(status, StatusCode::OK);
    // Nor may they read someone else's ledger.
    let other = uuid::Uuid::new_v4();
    let r = jar
        .get(&p.http, &p.url(&format!("/dashboard?account={other}")))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_and_holds_only_a_random_id() {
    let p = spawn_with_dashboard().await;
    let (worker, _) = p.worker().await;
    let mut jar = Jar::default();
    let r = sign_in(
        &p.http,
        &mut jar,
        &p.accounting,
        &p.sk,
        &worker.username,
        testkit::PASSWORD,
    )
    .await;
    let set: Vec<String> = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let cookie = set
        .iter()
        .find(|c| c.starts_with(&format!("{SESSION}=")))
        .unwrap_or_else(|| panic!("a session cookie in {set:?}"));
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    // Only the digest is stored: the cookie's value is in no row.
    let value = &jar.0[SESSION];
    let stored = sessions(&p);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, worker.id);
    let mut c = PgConnection::establish(&p.db_url).unwrap();
    use dashboard::store::dashboard_sessions::dsl as s;
    let n: i64 = s::dashboard_sessions
        .filter(s::id_hash.eq(value))
        .count()
        .get_result(&mut c)
        .unwrap();
    assert_eq!(n, 0);
    // The tokens are stored sealed: what a copy of the table holds is no
    // bearer token, nor a refresh token the safekeeper takes.
    let (access, refresh): (String, Option<String>) = s::dashboard_sessions
        .select((s::access_token, s::refresh_token))
        .first(&mut c)
        .unwrap();
    let refresh = refresh.expect("a refresh token");
    assert!(access.starts_with("v1.") && refresh.starts_with("v1."));
    let r = p
        .http
        .get(p.url("/v1/accounting/accounts/me/ledger"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh_grant(&p, &refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    // The page still works from the cookie.
    let (status, page) = dashboard_page(&p, &mut jar).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Sign out"), "{page}");
}

#[tokio::test]
async fn a_callback_with_a_wrong_or_missing_state_is_refused_and_stores_nothing() {
    let p = spawn_with_dashboard().await;
    let mut jar = Jar::default();
    let r = jar.get(&p.http, &p.url("/dashboard/signin")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = testkit::dashboard::location(&p.accounting, &r);
    let q: std::collections::HashMap<String, String> = reqwest::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["response_type"], "code");
    let state = q["state"].clone();
    assert_eq!(jar.0[LOGIN], state);

    for query in [
        "code=anything&state=not-the-state".to_owned(),
        "code=anything".to_owned(),
        "code=anything&state=".to_owned(),
    ] {
        let r = jar
            .get(&p.http, &p.url(&format!("/dashboard/callback?{query}")))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(r.text().await.unwrap().contains("Sign-in refused"));
    }
    // The right state from another browser (no login cookie).
    let r = p
        .http
        .get(p.url(&format!("/dashboard/callback?code=anything&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The right state, but an answer naming another issuer, or none
    // (RFC 9207): a mix-up, whose code is not redeemed.
    for iss in ["&iss=https%3A%2F%2Fevil.example", ""] {
        let query = format!("code=anything&state={state}{iss}");
        let r = jar
            .get(&p.http, &p.url(&format!("/dashboard/callback?{query}")))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(r.text().await.unwrap().contains("did not come from"));
    }
    assert!(sessions(&p).is_empty(), "no session stored");
    assert_eq!(logins(&p), 1, "the real sign-in is still pending");
}

#[tokio::test]
async fn a_forged_or_unknown_session_cookie_shows_the_sign_in() {
    let p = spawn_with_dashboard().await;
    let mut jar = Jar::default();
    let (status, page) = dashboard_page(&p, &mut jar).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("href=\"/dashboard/signin\""));
    jar.0.insert(
        SESSION.into(),
        "Zm9yZ2VkLXNlc3Npb24taWQtdGhhdC1uZXZlci1leGlzdGVk".into(),
    );
    let (status, page) = dashboard_page(&p, &mut jar).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You are not signed in"));
    assert!(!page.contains("Sign out"));
}

#[tokio::test]
async fn signing_out_without_the_pages_csrf_token_is_refused() {
    let p = spawn_with_dashboard().await;
    let (_, mut jar) = signed_in_worker(&p).await;
    for form in [vec![], vec![("csrf", "forged")]] {
        let r = jar.post(&p.http, &p.url("/dashboard/signout"), &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{form:?}");
    }
    assert_eq!(sessions(&p).len(), 1, "the session lives on");
    let (status, page) = dashboard_page(&p, &mut jar).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Sign out"));
}

#[tokio::test]
async fn after_signing_out_the_old_cookie_no_longer_works_and_the_refresh_token_is_revoked() {
    let p = spawn_with_dashboard().await;
    let (_, mut jar) = signed_in_worker(&p).await;
    let old = jar.clone();
    let (_, page) = dashboard_page(&p, &mut jar).await;
    let csrf = hidden_field(&page, "csrf");
    let refresh = sessions(&p)[0].1.clone().expect("a refresh token");

    let r = jar
        .post(&p.http, &p.url("/dashboard/signout"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/");
    assert!(!jar.0.contains_key(SESSION), "the cookie is cleared");
    assert!(sessions(&p).is_empty());

    let (status, page) = dashboard_page(&p, &mut old.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You are not signed in"));

    let r = refresh_grant(&p, &refresh).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_grant");
}

#[tokio::test]
async fn an_access_token_no_longer_good_is_refreshed_and_a_refused_refresh_ends_the_session() {
    let p = spawn_with_dashboard().await;
    let (_, mut jar) = signed_in_worker(&p).await;
    let first = sessions(&p)[0].1.clone().expect("a refresh token");
    let mut c = PgConnection::establish(&p.db_url).unwrap();
    use dashboard::store::dashboard_sessions::dsl as s;
    // As if it had expired: it no longer verifies (sealed as the service
    // seals them, under the key the session's cookie gives).
    let sealer = Sealer::of_session(&jar.0[SESSION]);
    let expired = sealer.seal(Kind::Access, "expired").unwrap();
    store_access_token(&p, &expired);
    let (status, page) = dashboard_page(&p, &mut jar).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Your balance"), "{page}");
    let second = sessions(&p)[0].1.clone().expect("a refresh token");
    assert_ne!(first, second, "the refresh token was rotated");

    // Once the refresh token is refused too, the person signs in again.
    diesel::update(s::dashboard_sessions)
        .set((
            s::access_token.eq(&expired),
            s::refresh_token.eq(sealer.seal(Kind::Refresh, "unknown")),
        ))
        .execute(&mut c)
        .unwrap();
    assert_session_ended(&p, &mut jar).await;
}

#[tokio::test]
async fn a_session_whose_stored_tokens_were_tampered_with_ends() {
    let p = spawn_with_dashboard().await;
    let (worker, mut jar) = signed_in_worker(&p).await;
    // A valid access token (another worker's), written in by someone who
    // can write the table but holds no cookie: it is not sealed under the
    // session's key, so it is not used.
    let (_, token) = p.worker().await;
    store_access_token(&p, &token);
    let page = assert_session_ended(&p, &mut jar).await;
    assert!(!page.contains(&worker.username), "{page}");
}

/// The dashboard client's refresh grant with `refresh`, at the safekeeper.
async fn refresh_grant(p: &TestPlatform, refresh: &str) -> reqwest::Response {
    p.http
        .post(p.sk("/oauth2/token"))
        .basic_auth("accounting-dashboard", Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap()
}

/// Writes `value` as the stored session's access token, as someone who can
/// write the table could.
fn store_access_token(p: &TestPlatform, value: &str) {
    use dashboard::store::dashboard_sessions::dsl as s;
    let mut c = PgConnection::establish(&p.db_url).unwrap();
    diesel::update(s::dashboard_sessions)
        .set(s::access_token.eq(value))
        .execute(&mut c)
        .unwrap();
}

/// The dashboard asks `jar`'s browser to sign in, and its session is gone;
/// answers the page.
async fn assert_session_ended(p: &TestPlatform, jar: &mut Jar) -> String {
    let (status, page) = dashboard_page(p, jar).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You are not signed in"), "{page}");
    assert!(sessions(p).is_empty(), "the session ended");
    page
}

#[tokio::test]
async fn management_sees_todays_earnings_and_any_workers_ledger() {
    let p = spawn_with_dashboard().await;
    let (worker, _) = p.worker().await;
    let (boss, _) = p
        .worker_with("Accountant", "read:accounting,su_read:accounting")
        .await;
    let id = worker.id.parse().unwrap();
    let task = PricedTask::new(450, 1000, Utc::now());
    p.publish(&task.assigned(1, id)).await;
    let mut jar = Jar::default();
    let r = sign_in(
        &p.http,
        &mut jar,
        &p.accounting,
        &p.sk,
        &boss.username,
        testkit::PASSWORD,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = eventually(30, "the worker's fee on their ledger", || async {
        let r = jar
            .clone()
            .get(
                &p.http,
                &p.url(&format!("/dashboard?account={}", worker.id)),
            )
            .await;
        let page = r.text().await.ok()?;
        page.contains("-4.50").then_some(page)
    })
    .await;
    assert!(page.contains("Management's earnings"));
    assert!(page.contains(&format!("Balance of {}", worker.username)));
    assert!(page.contains("Earnings per day"));
}

#[tokio::test]
async fn an_employee_sees_their_balance_after_a_completed_task_in_headless_chromium() {
    let Some(browser) = testkit::Browser::start().await else {
        return;
    };
    let p = spawn_with_dashboard().await;
    let (worker, token) = p.worker().await;
    let id = worker.id.parse().unwrap();
    let task = PricedTask::new(300, 2000, Utc::now());
    p.publish(&task.assigned(1, id)).await;
    p.publish(&task.completed(2, id)).await;
    eventually(30, "the balance", || async {
        let v = p.get_json(&token, "/v1/accounting/accounts/me").await;
        (v["balance_cents"] == 1700).then_some(())
    })
    .await;

    browser.open(&p.url("/dashboard")).await;
    assert!(browser.page_text().await.contains("You are not signed in"));
    browser.click("a[href=\"/dashboard/signin\"]").await;
    browser.wait_for_url(&p.sk("/oauth2/authorize"), 10).await;
    browser.type_into("#username", &worker.username).await;
    browser.type_into("#password", testkit::PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url(&p.url("/dashboard"), 10).await;
    let mut text = String::new();
    for _ in 0..50 {
        text = browser.page_text().await;
        if text.contains("17.00") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let url = browser.current_url().await;
    browser.quit().await;
    assert_eq!(url, p.url("/dashboard"));
    assert!(text.contains("Your balance"), "{text}");
    assert!(text.contains("17.00"), "{text}");
    assert!(text.contains(&worker.username), "{text}");
}
