//! Signing in at the safekeeper as an attacker would try it: a login form
//! posted from another site, a lockout of someone else's account by
//! guessing from one address, and a stolen session that should have ended.

use reqwest::{Response, StatusCode, Url};
use serde_json::json;
use testkit::authenticator::{ROOT_PASSWORD, ROOT_USER};

use crate::{
    code_flow::{
        challenge, hidden_field, location, query, set_cookies, spa_params, Browser, VERIFIER,
    },
    helpers::{eventually, spawn, TestPlatform, PASSWORD, SPA_REDIRECT, THIRD_PARTY},
};

/// The authorization request of the third-party client (it shows consent).
fn third_party_params(ch: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", THIRD_PARTY.into()),
        ("redirect_uri", "https://app.example/cb".into()),
        ("scope", "read:task".into()),
        ("state", "xyz".into()),
        ("code_challenge", ch.to_owned()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn authorize_url(params: &[(&str, &str)]) -> String {
    let q = Url::parse_with_params("http://x/oauth2/authorize", params).unwrap();
    format!("/oauth2/authorize?{}", q.query().unwrap())
}

/// A refused form: 403, the error page, and no login cookie.
async fn assert_refused(r: Response, what: &str) {
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
    assert!(
        set_cookies(&r).iter().all(|(name, _)| name != "sk_session"),
        "{what} set the login cookie"
    );
    let page = r.text().await.unwrap();
    assert!(
        page.contains("did not come from this site"),
        "{what}: {page}"
    );
}

/// The browser is not signed in: the authorization shows the sign-in page
/// (or, for a deactivated account, returns `access_denied` to the client)
/// rather than going on to consent or a code.
async fn assert_still_signed_out(b: &mut Browser<'_>, params: &[(&str, &str)], what: &str) {
    let r = b.get(&authorize_url(params)).await;
    if r.status() == StatusCode::FOUND {
        let q = query(&location(&r));
        assert_eq!(
            q.get("error").map(String::as_str),
            Some("access_denied"),
            "{what}: {q:?}"
        );
        assert!(!q.contains_key("code"), "{what}");
        return;
    }
    assert_eq!(r.status(), StatusCode::OK, "{what}");
    let page = r.text().await.unwrap();
    assert!(page.contains("action=\"/oauth2/login\""), "{what}: {page}");
}

#[tokio::test]
async fn a_login_form_without_the_pages_csrf_token_signs_no_one_in_even_with_the_right_password() {
    let p = spawn().await;
    let (username, _) = p.user_with_role(Some("Employee")).await;
    let ch = challenge(VERIFIER);
    let params = spa_params("read:task", &ch);

    for (what, tamper) in [
        ("a wrong token", "wrong"),
        ("no token", "missing"),
        ("a token from another browser", "foreign"),
        ("no sign-in cookie", "cookieless"),
    ] {
        let mut b = Browser::new(&p);
        let page = b.sign_in_page(&params).await;
        let mut form = Browser::login_form(&page, &username, PASSWORD);
        let own = hidden_field(&page, "csrf");
        form.retain(|(k, _)| k != "csrf");
        match tamper {
            "wrong" => form.push(("csrf".into(), "A".repeat(43))),
            "missing" => {}
            "foreign" => {
                let theirs = Browser::new(&p).sign_in_page(&params).await;
                form.push(("csrf".into(), hidden_field(&theirs, "csrf")));
            }
            _ => {
                form.push(("csrf".into(), own));
                b.cookies.clear();
            }
        }
        assert_refused(b.post_form("/oauth2/login", &form).await, what).await;
        assert_still_signed_out(&mut b, &params, what).await;
    }
}

#[tokio::test]
async fn a_login_form_posted_from_another_origin_or_cross_site_signs_no_one_in() {
    let p = spawn().await;
    let (username, _) = p.user_with_role(Some("Employee")).await;
    let ch = challenge(VERIFIER);
    let params = spa_params("read:task", &ch);
    let own = p.sk.clone();

    for (what, headers) in [
        (
            "Origin of another site",
            vec![("origin", "http://evil.example")],
        ),
        ("an opaque Origin", vec![("origin", "null")]),
        (
            "Sec-Fetch-Site cross-site",
            vec![("origin", own.as_str()), ("sec-fetch-site", "cross-site")],
        ),
        (
            "Sec-Fetch-Site same-site",
            vec![("sec-fetch-site", "same-site")],
        ),
    ] {
        // The attacker's page even carries a valid token: only the
        // browser's word on where the post comes from gives it away.
        let mut b = Browser::new(&p);
        let page = b.sign_in_page(&params).await;
        let form = Browser::login_form(&page, &username, PASSWORD);
        assert_refused(
            b.post_form_with("/oauth2/login", &form, &headers).await,
            what,
        )
        .await;
        assert_still_signed_out(&mut b, &params, what).await;
    }

    // The same form from the safekeeper's own page signs in.
    let mut b = Browser::new(&p);
    let page = b.sign_in_page(&params).await;
    let r = b
        .post_form_with(
            "/oauth2/login",
            &Browser::login_form(&page, &username, PASSWORD),
            &[("origin", &own), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(b.cookies.contains_key("sk_session"));
}

#[tokio::test]
async fn refused_login_forms_count_no_failed_attempt_against_the_account() {
    let p = spawn().await;
    let (username, _) = p.user_with_role(Some("Employee")).await;
    let ch = challenge(VERIFIER);
    let params = spa_params("read:task", &ch);
    let mut attacker = Browser::new(&p);
    let page = attacker.sign_in_page(&params).await;
    // More wrong guesses than the authenticator allows per account, each
    // from a form another site posted.
    let form = Browser::login_form(&page, &username, "Wrong-Passw0rd!");
    for _ in 0..8 {
        let r = attacker
            .post_form_with("/oauth2/login", &form, &[("origin", "http://evil.example")])
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let mut user = Browser::new(&p);
    let r = user.authorize_as(&params, &username).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(location(&r).starts_with(SPA_REDIRECT));
}

/// A browser whose connections come from `addr` (a loopback address).
fn client_from(addr: [u8; 4]) -> reqwest::Client {
    testkit::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from(addr))
        .build()
        .unwrap()
}

#[tokio::test]
async fn sixty_wrong_passwords_from_one_address_do_not_lock_the_user_out_from_another() {
    let p = spawn().await;
    let (username, _) = p.user_with_role(Some("Employee")).await;
    let ch = challenge(VERIFIER);
    let params = spa_params("read:task", &ch);

    let mut attacker = Browser::with_client(&p, client_from([127, 0, 0, 2]));
    let page = attacker.sign_in_page(&params).await;
    let form = Browser::login_form(&page, &username, "Wrong-Passw0rd!");
    for i in 0..60 {
        let r = attacker.post_form("/oauth2/login", &form).await;
        assert!(
            matches!(
                r.status(),
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ),
            "guess {i}: {}",
            r.status()
        );
    }

    let mut victim = Browser::with_client(&p, client_from([127, 0, 0, 3]));
    let page = victim.sign_in_page(&params).await;
    let r = victim
        .post_form(
            "/oauth2/login",
            &Browser::login_form(&page, &username, PASSWORD),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the victim was locked out: {}",
        r.text().await.unwrap_or_default()
    );
    assert!(victim.cookies.contains_key("sk_session"));
    let back = location(&r);
    assert!(back.starts_with("/oauth2/authorize?"), "{back}");
    let r = victim.get(&back).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(location(&r).starts_with(SPA_REDIRECT));
}

/// A user signed in at the consent page of the third-party client: the
/// browser (holding the login cookie), its session token, and the consent
/// form's fields with `decision=allow`.
struct SignedIn<'a> {
    browser: Browser<'a>,
    token: String,
    id: String,
    username: String,
    allow: Vec<(String, String)>,
    params: Vec<(&'static str, String)>,
}

async fn signed_in_at_consent(p: &TestPlatform) -> SignedIn<'_> {
    let (username, id) = p.user_with_role(Some("Employee")).await;
    let ch = challenge(VERIFIER);
    let params = third_party_params(&ch);
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut browser = Browser::new(p);
    let r = browser.authorize_as(&borrowed, &username).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("Authorize access"), "{page}");
    let mut allow: Vec<(String, String)> = [
        "client_id",
        "code_challenge",
        "code_challenge_method",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "csrf",
    ]
    .iter()
    .map(|f| (f.to_string(), hidden_field(&page, f)))
    .collect();
    allow.push(("decision".into(), "allow".into()));
    let token = browser.cookies["sk_session"].clone();
    assert_eq!(
        p.authorize(&token, "read:task").await.status(),
        StatusCode::OK
    );
    SignedIn {
        browser,
        token,
        id,
        username,
        allow,
        params,
    }
}

impl SignedIn<'_> {
    /// The login cookie no longer reaches consent: the authorization and
    /// the consent form both show the sign-in page, and no code is issued.
    async fn assert_cookie_ended(&mut self, what: &str) {
        let borrowed: Vec<(&str, &str)> =
            self.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_still_signed_out(&mut self.browser, &borrowed, what).await;
        let r = self.browser.post_form("/oauth2/consent", &self.allow).await;
        assert_eq!(r.status(), StatusCode::OK, "{what}: consent went on");
        assert!(
            r.text().await.unwrap().contains("action=\"/oauth2/login\""),
            "{what}: consent did not ask to sign in again"
        );
    }
}

/// The old session token comes to be refused with `status`: the change
/// travels on `iam.user.v1` (about a second on an idle machine; the time
/// is a figure to measure, not to assert, so a loaded CI machine does not
/// fail it).
async fn refused_soon(p: &TestPlatform, token: &str, status: StatusCode, what: &str) {
    let started = std::time::Instant::now();
    eventually(15, what, || async {
        (p.authorize(token, "read:task").await.status() == status).then_some(())
    })
    .await;
    eprintln!("{what} after {:?}", started.elapsed());
}

async fn root_call(p: &TestPlatform, path: &str, body: Option<serde_json::Value>) -> Response {
    let root = p.session(ROOT_USER, ROOT_PASSWORD).await;
    let mut r = p.http.post(format!("{}{path}", p.auth)).bearer_auth(root);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn a_password_reset_by_an_administrator_ends_the_users_sessions() {
    let p = spawn().await;
    let mut s = signed_in_at_consent(&p).await;
    let r = root_call(
        &p,
        &format!("/v1/users/{}/password", s.id),
        Some(json!({"password": "Brand-New-Passw0rd!"})),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    refused_soon(
        &p,
        &s.token,
        StatusCode::UNAUTHORIZED,
        "the old session ended by the password reset",
    )
    .await;
    s.assert_cookie_ended("after a password reset").await;
    let r = p
        .http
        .get(p.sk("/v1/permission"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["detail"], "the session has ended; log in again");
    // The user, with the new password, is in again.
    let fresh = p.session(&s.username, "Brand-New-Passw0rd!").await;
    assert_eq!(
        p.authorize(&fresh, "read:task").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_deactivation_ends_the_users_sessions_for_good() {
    let p = spawn().await;
    let mut s = signed_in_at_consent(&p).await;
    p.deactivate(&s.id).await;
    // A deactivated account is refused as such.
    refused_soon(
        &p,
        &s.token,
        StatusCode::FORBIDDEN,
        "the session of the deactivated account refused",
    )
    .await;
    s.assert_cookie_ended("after a deactivation").await;

    // Reactivated, the account signs in afresh; the old session stays ended.
    let r = root_call(&p, &format!("/v1/users/{}/activate", s.id), None).await;
    assert!(r.status().is_success(), "{}", r.status());
    let fresh = p.session(&s.username, PASSWORD).await;
    eventually(5, "the reactivation applied", || async {
        (p.authorize(&fresh, "read:task").await.status() == StatusCode::OK).then_some(())
    })
    .await;
    let r = p.authorize(&s.token, "read:task").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("session has ended"),
        "{body}"
    );
    s.assert_cookie_ended("after a reactivation").await;
}

async fn logout(p: &TestPlatform, token: &str, all: bool) {
    let path = if all {
        "/v1/logout?all=true"
    } else {
        "/v1/logout"
    };
    let r = p
        .http
        .post(format!("{}{path}", p.auth))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "logout: {}", r.status());
}

#[tokio::test]
async fn a_logout_ends_that_session_and_no_other() {
    let p = spawn().await;
    let mut s = signed_in_at_consent(&p).await;
    let other_device = p.session(&s.username, PASSWORD).await;
    logout(&p, &s.token, false).await;
    refused_soon(
        &p,
        &s.token,
        StatusCode::UNAUTHORIZED,
        "the logged-out session refused",
    )
    .await;
    s.assert_cookie_ended("after a logout").await;
    assert_eq!(
        p.authorize(&other_device, "read:task").await.status(),
        StatusCode::OK,
        "the other device was signed out too"
    );
}

#[tokio::test]
async fn a_logout_of_every_device_ends_every_session() {
    let p = spawn().await;
    let mut s = signed_in_at_consent(&p).await;
    let other_device = p.session(&s.username, PASSWORD).await;
    logout(&p, &other_device, true).await;
    refused_soon(
        &p,
        &s.token,
        StatusCode::UNAUTHORIZED,
        "the first device's session refused",
    )
    .await;
    refused_soon(
        &p,
        &other_device,
        StatusCode::UNAUTHORIZED,
        "the second device's session refused",
    )
    .await;
    s.assert_cookie_ended("after a logout of every device")
        .await;
}
