//! The authorization-code flow driven as a browser would: follow each
//! redirect by hand, keep the cookie, submit the forms.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use reqwest::{header, Response, StatusCode, Url};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    assert_oauth_error, spawn, spawn_with, TestPlatform, Tweaks, PASSWORD, RESOURCE_SERVER,
    RESOURCE_SERVER_SECRET, SPA, SPA_REDIRECT, THIRD_PARTY,
};

pub(crate) const VERIFIER: &str = "a-very-long-code-verifier-of-at-least-43-characters-0123456789";

pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The value of a hidden form field in a page.
pub(crate) fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

pub(crate) fn location(r: &Response) -> String {
    r.headers()
        .get(header::LOCATION)
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn query(url: &str) -> std::collections::HashMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The `name=value` cookies a response sets (`Max-Age=0` as `None`: deleted).
pub(crate) fn set_cookies(r: &Response) -> Vec<(String, Option<String>)> {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| {
            let v = v.to_str().ok()?;
            let (name, value) = v.split(';').next()?.split_once('=')?;
            let deleted = v.contains("Max-Age=0");
            Some((name.trim().to_owned(), (!deleted).then(|| value.to_owned())))
        })
        .collect()
}

/// A browser on the safekeeper's own pages: it keeps the cookies it is
/// given and, as browsers do, says where its form posts come from.
pub(crate) struct Browser<'a> {
    p: &'a TestPlatform,
    http: reqwest::Client,
    pub(crate) cookies: std::collections::BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(p: &'a TestPlatform) -> Self {
        Self::with_client(p, p.http.clone())
    }

    /// A browser whose connections use `http` (a local address of its own, say).
    pub(crate) fn with_client(p: &'a TestPlatform, http: reqwest::Client) -> Self {
        Self {
            p,
            http,
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep(&mut self, r: &Response) {
        for (name, value) in set_cookies(r) {
            match value {
                Some(v) => self.cookies.insert(name, v),
                None => self.cookies.remove(&name),
            };
        }
    }

    pub(crate) async fn get(&mut self, path_and_query: &str) -> Response {
        let mut r = self.http.get(self.p.sk(path_and_query));
        if let Some(c) = self.cookie_header() {
            r = r.header(header::COOKIE, c);
        }
        let r = r.send().await.unwrap();
        self.keep(&r);
        r
    }

    /// Posts a form from one of the safekeeper's pages.
    pub(crate) async fn post_form(&mut self, path: &str, form: &[(String, String)]) -> Response {
        let origin = self.p.sk.clone();
        self.post_form_with(
            path,
            form,
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await
    }

    /// Posts a form with these request headers (and the cookies) only.
    pub(crate) async fn post_form_with(
        &mut self,
        path: &str,
        form: &[(String, String)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut r = self.http.post(self.p.sk(path)).form(form);
        if let Some(c) = self.cookie_header() {
            r = r.header(header::COOKIE, c);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.unwrap();
        self.keep(&r);
        r
    }

    /// The sign-in form of `page`, filled in.
    pub(crate) fn login_form(page: &str, username: &str, password: &str) -> Vec<(String, String)> {
        vec![
            ("username".to_owned(), username.to_owned()),
            ("password".to_owned(), password.to_owned()),
            ("return_to".to_owned(), hidden_field(page, "return_to")),
            ("csrf".to_owned(), hidden_field(page, "csrf")),
        ]
    }

    /// Opens the authorization URL and returns the sign-in page it shows.
    pub(crate) async fn sign_in_page(&mut self, params: &[(&str, &str)]) -> String {
        let q = Url::parse_with_params("http://x/oauth2/authorize", params).unwrap();
        let first = self
            .get(&format!("/oauth2/authorize?{}", q.query().unwrap()))
            .await;
        assert_eq!(first.status(), StatusCode::OK);
        let page = first.text().await.unwrap();
        assert!(
            page.contains("<form method=\"post\" action=\"/oauth2/login\">"),
            "{page}"
        );
        page
    }

    /// Opens the authorization URL, signs in on the page it shows, and
    /// returns the answer to the authorization request after sign-in.
    pub(crate) async fn authorize_as(
        &mut self,
        params: &[(&str, &str)],
        username: &str,
    ) -> Response {
        let page = self.sign_in_page(params).await;
        let form = Self::login_form(&page, username, PASSWORD);
        let signed_in = self.post_form("/oauth2/login", &form).await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let set_cookie = signed_in
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with("sk_session="))
            .expect("the login cookie")
            .to_owned();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
            "{set_cookie}"
        );
        let back = location(&signed_in);
        assert!(back.starts_with("/oauth2/authorize?"));
        self.get(&back).await
    }
}

pub(crate) fn spa_params<'a>(scope: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", SPA),
        ("redirect_uri", SPA_REDIRECT),
        ("scope", scope),
        ("state", "st4te-42"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

pub(crate) async fn exchange(
    p: &TestPlatform,
    code: &str,
    verifier: &str,
    redirect: &str,
) -> Response {
    p.http
        .post(p.sk("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
            ("client_id", SPA),
        ])
        .send()
        .await
        .unwrap()
}

async fn refresh(p: &TestPlatform, token: &str) -> Response {
    p.http
        .post(p.sk("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", SPA),
        ])
        .send()
        .await
        .unwrap()
}

/// Introspection by a resource server (`introspect:token`).
async fn introspect(p: &TestPlatform, token: &str) -> Value {
    p.http
        .post(p.sk("/oauth2/introspect"))
        .basic_auth(RESOURCE_SERVER, Some(RESOURCE_SERVER_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Signs in as a new Employer and returns the authorization code.
async fn code_for(p: &TestPlatform, scope: &str, role: &str) -> String {
    let (name, _) = p.user_with_role(Some(role)).await;
    let ch = challenge(VERIFIER);
    let r = Browser::new(p)
        .authorize_as(&spa_params(scope, &ch), &name)
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let to = location(&r);
    assert!(to.starts_with(SPA_REDIRECT), "{to}");
    let q = query(&to);
    assert_eq!(q["state"], "st4te-42");
    assert_eq!(q["iss"], "http://127.0.0.1:5001");
    q["code"].clone()
}

#[tokio::test]
async fn the_full_code_flow_with_pkce_issues_tokens_and_refresh_rotates() {
    let p = spawn().await;
    let code = code_for(&p, "read:task create:task", "Employer").await;
    let r = exchange(&p, &code, VERIFIER, SPA_REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "create:task read:task");
    assert_eq!(
        introspect(&p, t["access_token"].as_str().unwrap()).await["active"],
        true
    );

    let first_refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(&p, &first_refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t2: Value = r.json().await.unwrap();
    let second_refresh = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first_refresh, second_refresh);

    // Reusing a spent refresh token revokes the whole family.
    assert_oauth_error(
        refresh(&p, &first_refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        refresh(&p, &second_refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        introspect(&p, t2["access_token"].as_str().unwrap()).await["active"],
        false
    );
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_invalid_grant_and_burns_the_code() {
    let p = spawn().await;
    let code = code_for(&p, "read:task", "Employee").await;
    let wrong = "another-code-verifier-that-is-long-enough-to-be-valid-000000";
    assert_oauth_error(
        exchange(&p, &code, wrong, SPA_REDIRECT).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        exchange(&p, &code, VERIFIER, SPA_REDIRECT).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let p = spawn().await;
    let code = code_for(&p, "read:task", "Employee").await;
    let t: Value = exchange(&p, &code, VERIFIER, SPA_REDIRECT)
        .await
        .json()
        .await
        .unwrap();
    assert_oauth_error(
        exchange(&p, &code, VERIFIER, SPA_REDIRECT).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        introspect(&p, t["access_token"].as_str().unwrap()).await["active"],
        false
    );
    assert_oauth_error(
        refresh(&p, t["refresh_token"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let p = spawn_with(Tweaks {
        code_ttl: std::time::Duration::ZERO,
    })
    .await;
    let code = code_for(&p, "read:task", "Employee").await;
    let v = assert_oauth_error(
        exchange(&p, &code, VERIFIER, SPA_REDIRECT).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(v["error_description"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn redirect_uris_must_match_exactly() {
    let p = spawn().await;
    let ch = challenge(VERIFIER);
    let mut params = spa_params("read:task", &ch);
    params[2] = ("redirect_uri", "http://127.0.0.1:8765/callback/../evil");
    let q = Url::parse_with_params("http://x/a", &params).unwrap();
    let r = Browser::new(&p)
        .get(&format!("/oauth2/authorize?{}", q.query().unwrap()))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "an error page, never a redirect"
    );
    assert!(r.headers().get(header::LOCATION).is_none());
    assert!(r.text().await.unwrap().contains("not registered"));
    // A code is bound to the redirect URI it was issued for.
    let code = code_for(&p, "read:task", "Employee").await;
    let r = exchange(&p, &code, VERIFIER, "http://127.0.0.1:8765/other").await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_public_client_without_pkce_is_sent_back_with_invalid_request() {
    let p = spawn().await;
    let params = [
        ("response_type", "code"),
        ("client_id", SPA),
        ("redirect_uri", SPA_REDIRECT),
        ("state", "s1"),
    ];
    let q = Url::parse_with_params("http://x/a", params).unwrap();
    let r = Browser::new(&p)
        .get(&format!("/oauth2/authorize?{}", q.query().unwrap()))
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let back = query(&location(&r));
    assert_eq!(back["error"], "invalid_request");
    assert_eq!(back["state"], "s1");
}

#[tokio::test]
async fn a_grant_is_downscoped_to_what_the_user_holds() {
    let p = spawn().await;
    let code = code_for(&p, "read:task su_read:task", "Employee").await;
    let t: Value = exchange(&p, &code, VERIFIER, SPA_REDIRECT)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["scope"], "read:task");
}

#[tokio::test]
async fn a_third_party_client_needs_consent_and_a_denial_goes_back_as_access_denied() {
    let p = spawn().await;
    let (name, _) = p.user_with_role(Some("Employee")).await;
    let ch = challenge(VERIFIER);
    let params = [
        ("response_type", "code"),
        ("client_id", THIRD_PARTY),
        ("redirect_uri", "https://app.example/cb"),
        ("scope", "read:task"),
        ("state", "s2"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let mut b = Browser::new(&p);
    let r = b.authorize_as(&params, &name).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("x-frame-options").unwrap(), "DENY");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Third Party App") && page.contains("<code>read:task</code>"),
        "{page}"
    );
    let fields: Vec<(String, String)> = [
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
    // Without the CSRF token the decision is refused.
    let forged: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .cloned()
        .chain([("decision".to_owned(), "allow".to_owned())])
        .collect();
    assert_eq!(
        b.post_form("/oauth2/consent", &forged).await.status(),
        StatusCode::FORBIDDEN
    );

    let mut deny = fields.clone();
    deny.push(("decision".into(), "deny".into()));
    let r = b.post_form("/oauth2/consent", &deny).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(query(&location(&r))["error"], "access_denied");

    let mut allow = fields;
    allow.push(("decision".into(), "allow".into()));
    let r = b.post_form("/oauth2/consent", &allow).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(query(&location(&r)).contains_key("code"));
}

#[tokio::test]
async fn a_wrong_password_on_the_login_page_shows_the_page_again_with_an_error() {
    let p = spawn().await;
    let ch = challenge(VERIFIER);
    let q = Url::parse_with_params("http://x/a", spa_params("read:task", &ch)).unwrap();
    let mut b = Browser::new(&p);
    let page = b
        .get(&format!("/oauth2/authorize?{}", q.query().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    let form = Browser::login_form(&page, "nobody-here", "Wrong-Passw0rd!");
    let r = b.post_form("/oauth2/login", &form).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("role=\"alert\""));
    // The page shown again can be submitted again.
    let r = b
        .post_form(
            "/oauth2/login",
            &Browser::login_form(&page, "nobody-here", "Wrong-Passw0rd!"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Expired grants are deleted, a few rows per statement; what is still
/// valid, or expired for less than the grace, survives the pruning.
#[tokio::test]
async fn pruning_removes_expired_grants_in_batches_and_keeps_live_ones() {
    use diesel::{Connection, RunQueryDsl};
    use platform::retention::{Pruner, Settings};
    use std::time::Duration;
    let p = spawn().await;
    let code = code_for(&p, "read:task", "Employee").await;
    let t: Value = exchange(&p, &code, VERIFIER, SPA_REDIRECT)
        .await
        .json()
        .await
        .unwrap();
    let expired_refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let code = code_for(&p, "read:task", "Employee").await;
    let live: Value = exchange(&p, &code, VERIFIER, SPA_REDIRECT)
        .await
        .json()
        .await
        .unwrap();

    let mut conn = diesel::PgConnection::establish(&p.sk_database_url()).unwrap();
    let run = |conn: &mut diesel::PgConnection, sql: &str, hash: &str| {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(hash)
            .execute(conn)
            .unwrap()
    };
    // Age the first grant past the grace: its refresh token and code
    // expired two hours ago, its family is old.
    let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(expired_refresh.as_bytes()));
    for sql in [
        "UPDATE grant_family SET created_at = now() - interval '2 days'
          WHERE id = (SELECT family_id FROM refresh_token WHERE token_hash = $1)",
        "UPDATE refresh_token SET expires_at = now() - interval '2 hours' WHERE token_hash = $1",
        "UPDATE authorization_code SET expires_at = now() - interval '2 hours'
          WHERE family_id = (SELECT family_id FROM refresh_token WHERE token_hash = $1)",
    ] {
        run(&mut conn, sql, &hash);
    }
    // The live grant's spent code expired half an hour ago: within the grace.
    let live_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(
        live["refresh_token"].as_str().unwrap().as_bytes(),
    ));
    let live_family_codes = "SELECT 1 FROM authorization_code
          WHERE family_id = (SELECT family_id FROM refresh_token WHERE token_hash = $1)";
    run(
        &mut conn,
        "UPDATE authorization_code SET expires_at = now() - interval '30 minutes'
          WHERE family_id = (SELECT family_id FROM refresh_token WHERE token_hash = $1)",
        &live_hash,
    );
    // Three revocation-list entries of tokens expired, one of a live token.
    diesel::sql_query(
        "INSERT INTO revoked_access_token (jti, client_id, expires_at)
         SELECT gen_random_uuid(), 'gone', now() - interval '1 minute' FROM generate_series(1, 3)
         UNION ALL SELECT gen_random_uuid(), 'live', now() + interval '5 minutes'",
    )
    .execute(&mut conn)
    .unwrap();

    let pool = platform::db::build_pool(&p.sk_database_url(), 2, Duration::from_secs(5)).unwrap();
    let settings = Settings {
        interval: Duration::from_secs(3600),
        batch: 2,
        pause: Duration::ZERO,
        outbox: None,
    };
    let steps =
        safekeeper::grants::retention_steps(Duration::from_secs(300), Duration::from_secs(3600));
    let pruned = Pruner::new(pool, settings, steps)
        .prune_once()
        .await
        .unwrap();
    assert_eq!(pruned["refresh_token"], 1, "{pruned:?}");
    assert_eq!(pruned["authorization_code"], 1, "{pruned:?}");
    assert_eq!(pruned["grant_family"], 1, "{pruned:?}");
    assert_eq!(
        pruned["revoked_access_token"], 3,
        "three rows, two statements: {pruned:?}"
    );
    assert_eq!(
        run(&mut conn, live_family_codes, &live_hash),
        1,
        "within the grace"
    );
    assert_eq!(
        run(
            &mut conn,
            "SELECT 1 FROM revoked_access_token WHERE client_id <> $1",
            "nobody"
        ),
        1,
        "only the live token's entry is left"
    );

    assert_oauth_error(
        refresh(&p, &expired_refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // An access token of the pruned family counts as revoked.
    assert_eq!(
        introspect(&p, t["access_token"].as_str().unwrap()).await["active"],
        false
    );
    // The other grant is untouched.
    assert_eq!(
        introspect(&p, live["access_token"].as_str().unwrap()).await["active"],
        true
    );
    let r = refresh(&p, live["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
}
