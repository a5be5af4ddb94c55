//! `bench safekeeper`: token issuance by client credentials, session
//! exchanges at `/v1/authorize`, introspections and code exchanges, beside
//! the Ed25519 signatures per second this machine manages in-process.
//!
//! Setup goes through the services' public APIs: the bootstrap superuser
//! (`admin`) waits for its `admin` role to arrive by event, creates a
//! confidential and a public first-party client, and registers an Employer.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, bail, Context};
use platform::jwt::{AccessClaims, KeyRing, SigningKey, ACCESS_TYP};
use reqwest::{header, Client, RequestBuilder, StatusCode, Url};
use serde_json::{json, Value};

use crate::{
    load::{drive, expect, fetch, Scenario},
    report::{cores, print_table, row, scenario_rows, with_goal, write_json},
    wire, Load,
};

pub(crate) const ADMIN_USER: &str = "admin";
pub(crate) const ADMIN_PASSWORD: &str = "Admin-Passw0rd!";
const ADMIN_SCOPES: &str = "admin:rbac,admin:client,admin:user";
pub(crate) const PASSWORD: &str = "Bench-Passw0rd!";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const TASK_SCOPES: [&str; 6] = [
    "read:task",
    "edit:task",
    "create:task",
    "delete:task",
    "su_read:task",
    "su_edit:task",
];
pub(crate) const SERVICE_SCOPE: &str = "su_read:task";
/// Lets the confidential client (a resource server) introspect the
/// Employer's tokens, issued to another client.
const INTROSPECT_SCOPE: &str = "introspect:token";
const FORM: &str = "application/x-www-form-urlencoded";
/// What the Employer asks `/v1/authorize` (and the code flow) for.
pub(crate) const USER_SCOPES: &str = "read:task,su_read:task";
/// RFC 7636's example verifier and its S256 challenge; every code is bound
/// to this pair.
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Longest wait for an event to be applied (a role, a user in the read model).
const EVENT_WAIT: Duration = Duration::from_secs(60);
const SIGN_FOR: Duration = Duration::from_secs(2);
/// Codes minted before each round of exchanges...
const CODE_BATCH: usize = 2000;
/// ...for at most this long, so every code is exchanged well inside its 60 s.
const CODE_MINT_FOR: Duration = Duration::from_secs(25);
/// Client-credentials tokens per second over what the cores can sign.
const ISSUANCE_RATIO_GOAL: f64 = 0.5;

/// What setup created: the clients and the Employer's session.
pub(crate) struct Setup {
    pub(crate) sk: String,
    pub(crate) service_id: String,
    pub(crate) service_secret: String,
    pub(crate) spa_id: String,
    pub(crate) username: String,
    pub(crate) session: String,
}

impl Setup {
    /// A form `POST` to the safekeeper with the confidential client's
    /// Basic credentials, as bytes to send again and again.
    pub(crate) fn service_form(&self, path: &str, form: &[(&str, &str)]) -> Arc<[u8]> {
        let auth = wire::basic(&self.service_id, &self.service_secret);
        let headers = [("Authorization", auth.as_str()), ("Content-Type", FORM)];
        let body = wire::form(form);
        wire::request("POST", &self.sk, path, &headers, body.as_bytes()).into()
    }
}

/// `fetch`, failing with the status and body, answering the JSON body.
pub(crate) async fn json_of(request: RequestBuilder, want: StatusCode) -> anyhow::Result<Value> {
    let (_, body) = fetch(request, want).await.map_err(|e| anyhow!(e))?;
    serde_json::from_slice(&body).context("a JSON body")
}

pub(crate) fn text(v: &Value, field: &str) -> anyhow::Result<String> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {field} in {v}"))
}

/// Polls `check` until it succeeds, for at most [`EVENT_WAIT`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                bail!("waited {EVENT_WAIT:?} for {what}; the last answer: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub(crate) async fn login(
    client: &Client,
    auth: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let body = json!({"username": username, "password": password});
    let v = json_of(
        client.post(format!("{auth}/v1/login")).json(&body),
        StatusCode::OK,
    )
    .await
    .with_context(|| format!("logging in {username}"))?;
    text(&v, "session_token")
}

/// An access token for `session` with `scopes` (comma-separated).
pub(crate) async fn authorize(
    client: &Client,
    sk: &str,
    session: &str,
    scopes: &str,
) -> Result<String, String> {
    let request = client
        .post(format!("{sk}/v1/authorize"))
        .bearer_auth(session)
        .json(&json!({ "scopes": scopes }));
    let (_, body) = fetch(request, StatusCode::OK).await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    text(&v, "access_token").map_err(|e| e.to_string())
}

/// The bootstrap superuser's session at the authenticator and, once its
/// `admin` role has arrived by event, its admin access token.
pub(crate) async fn admin_token(
    client: &Client,
    auth: &str,
    sk: &str,
) -> anyhow::Result<(String, String)> {
    let admin_session = login(client, auth, ADMIN_USER, ADMIN_PASSWORD).await?;
    eprintln!("waiting for the admin role of {ADMIN_USER} to arrive by event");
    let admin = eventually("the superuser's admin role", || {
        authorize(client, sk, &admin_session, ADMIN_SCOPES)
    })
    .await?;
    Ok((admin_session, admin))
}

/// Registers `username` (password [`PASSWORD`]) at the authenticator, waits
/// for it in the safekeeper's read model and grants it `role`; answers its id.
pub(crate) async fn register_with_role(
    client: &Client,
    auth: &str,
    sk: &str,
    admin: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<String> {
    let body = json!({"username": username, "password": PASSWORD,
                      "email": format!("{username}@bench.example"),
                      "firstname": "Bench", "lastname": role});
    let account = json_of(
        client.post(format!("{auth}/v1/user")).json(&body),
        StatusCode::CREATED,
    )
    .await
    .with_context(|| format!("registering {username}"))?;
    let id = text(&account, "id")?;
    eprintln!("waiting for {username} to reach the safekeeper's read model");
    eventually("the user in the read model", || async {
        let request = client
            .get(format!("{sk}/v1/admin/users"))
            .query(&[("username", username)])
            .bearer_auth(admin);
        let (_, body) = fetch(request, StatusCode::OK).await?;
        let found: Vec<Value> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if found.is_empty() {
            Err("not there yet".to_owned())
        } else {
            Ok(())
        }
    })
    .await?;
    let request = client
        .post(format!("{sk}/v1/admin/users/{id}/roles"))
        .bearer_auth(admin)
        .json(&json!({"role": role}));
    fetch(request, StatusCode::OK)
        .await
        .map_err(|e| anyhow!("granting {role}: {e}"))?;
    Ok(id)
}

pub(crate) async fn setup(client: &Client, auth: &str, sk: &str) -> anyhow::Result<Setup> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (_, admin) = admin_token(client, auth, sk).await?;

    let (service_id, spa_id) = (format!("bench-service-{run}"), format!("bench-spa-{run}"));
    let service_secret = format!("bench-secret-{}", uuid::Uuid::new_v4().simple());
    for body in [
        json!({"client_id": service_id, "name": "Bench Service", "client_secret": service_secret,
               "grant_types": ["client_credentials"], "scopes": [SERVICE_SCOPE, INTROSPECT_SCOPE]}),
        json!({"client_id": spa_id, "name": "Bench SPA", "public": true, "first_party": true,
               "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
               "scopes": TASK_SCOPES}),
    ] {
        let request = client
            .post(format!("{sk}/v1/admin/clients"))
            .bearer_auth(&admin)
            .json(&body);
        fetch(request, StatusCode::CREATED)
            .await
            .map_err(|e| anyhow!("creating a client: {e}"))?;
    }

    let username = format!("bench.sk.{run}");
    register_with_role(client, auth, sk, &admin, &username, "Employer").await?;
    let session = login(client, auth, &username, PASSWORD).await?;
    Ok(Setup {
        sk: sk.to_owned(),
        service_id,
        service_secret,
        spa_id,
        username,
        session,
    })
}

/// Ed25519 signatures of a representative access token per second, on one
/// thread, as the safekeeper signs them.
async fn measure_signing(issuer: String, client_id: String) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || {
        let (key, _) = SigningKey::generate()?;
        let ring = KeyRing::new(key, vec![]);
        let start = Instant::now();
        let mut signed = 0u64;
        while start.elapsed() < SIGN_FOR {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
            let claims = AccessClaims {
                iss: issuer.clone(),
                sub: uuid::Uuid::new_v4().to_string(),
                aud: "platform".into(),
                client_id: client_id.clone(),
                scope: "read:task su_read:task".into(),
                iat: now,
                exp: now + 300,
                jti: uuid::Uuid::new_v4().to_string(),
                username: Some("bench.user".into()),
                sid: None,
            };
            std::hint::black_box(ring.sign(ACCESS_TYP, &claims)?);
            signed += 1;
        }
        Ok(signed as f64 / start.elapsed().as_secs_f64())
    })
    .await?
}

/// `POST /oauth2/token` with `client_credentials` (Basic auth).
async fn client_credentials(s: &Arc<Setup>, load: &Load) -> Scenario {
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", SERVICE_SCOPE),
    ];
    let request = s.service_form("/oauth2/token", &form);
    repeat(s, load, request, wire::status_is(200)).await
}

/// `POST /v1/authorize` with the Employer's session token.
async fn session_exchanges(s: &Arc<Setup>, load: &Load) -> Scenario {
    let auth = format!("Bearer {}", s.session);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = json!({ "scopes": USER_SCOPES }).to_string();
    let request = wire::request("POST", &s.sk, "/v1/authorize", &headers, body.as_bytes());
    repeat(s, load, request.into(), wire::status_is(200)).await
}

/// `POST /oauth2/introspect` of one live access token (Basic auth of the
/// confidential client); an answer saying inactive counts as an error.
async fn introspections(s: &Arc<Setup>, load: &Load, token: String) -> Scenario {
    let request = s.service_form("/oauth2/introspect", &[("token", &token)]);
    let check = |status, body: &[u8]| {
        wire::status_is(200)(status, body)?;
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if v["active"] == true {
            Ok(())
        } else {
            Err(format!("the token is inactive: {v}"))
        }
    };
    repeat(s, load, request, check).await
}

/// Sends one request again and again with `load`'s workers.
async fn repeat<C>(s: &Setup, load: &Load, request: Arc<[u8]>, check: C) -> Scenario
where
    C: Fn(u16, &[u8]) -> Result<(), String> + Clone + Send + 'static,
{
    let again = move |_, _| Some(request.clone());
    wire::drive(&s.sk, load.concurrency, load.duration(), again, check).await
}

/// The authorization request of the code flow, as a URL.
pub(crate) fn authorize_url(s: &Setup) -> anyhow::Result<Url> {
    let scope = USER_SCOPES.replace(',', " ");
    Ok(Url::parse_with_params(
        &format!("{}/oauth2/authorize", s.sk),
        [
            ("response_type", "code"),
            ("client_id", s.spa_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", scope.as_str()),
            ("state", "bench"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )?)
}

/// Signs in on the safekeeper's login page; answers the login cookie.
pub(crate) async fn sign_in(client: &Client, s: &Setup, authorize: &Url) -> anyhow::Result<String> {
    // The sign-in page first, as a browser: its form carries a CSRF token
    // bound to the `sk_login` cookie it sets.
    let (headers, page) = fetch(client.get(authorize.clone()), StatusCode::OK)
        .await
        .map_err(|e| anyhow!("opening the sign-in page: {e}"))?;
    let login_cookie = cookie_named(&headers, "sk_login").context("no sk_login cookie")?;
    let page = String::from_utf8_lossy(&page);
    let (return_to, csrf) = (
        hidden_field(&page, "return_to").context("no return_to field")?,
        hidden_field(&page, "csrf").context("no csrf field")?,
    );
    let form = [
        ("username", s.username.as_str()),
        ("password", PASSWORD),
        ("return_to", return_to.as_str()),
        ("csrf", csrf.as_str()),
    ];
    let request = client
        .post(format!("{}/oauth2/login", s.sk))
        .header(header::COOKIE, &login_cookie)
        .form(&form);
    let (headers, _) = fetch(request, StatusCode::SEE_OTHER)
        .await
        .map_err(|e| anyhow!("signing in on /oauth2/login: {e}"))?;
    cookie_named(&headers, "sk_session").context("no login cookie")
}

/// `name=value` of the cookie `name` among a response's `Set-Cookie`s.
fn cookie_named(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of the hidden input `name` in a page of the safekeeper (its
/// values are HTML-escaped).
fn hidden_field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let value = &page[start..start + page[start..].find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// `GET /oauth2/authorize` with the login cookie, up to [`CODE_BATCH`]
/// times within [`CODE_MINT_FOR`]; answers the codes from the redirects.
async fn mint_codes(
    client: &Client,
    url: &Url,
    cookie: &str,
    concurrency: usize,
) -> (Scenario, Vec<String>) {
    let codes = Arc::new(Mutex::new(Vec::with_capacity(CODE_BATCH)));
    let started = Arc::new(AtomicUsize::new(0));
    let (client, url, cookie, kept) = (
        client.clone(),
        url.to_string(),
        cookie.to_owned(),
        codes.clone(),
    );
    let minted = drive(concurrency, CODE_MINT_FOR, move |_, _| {
        if started.fetch_add(1, Ordering::Relaxed) >= CODE_BATCH {
            return None;
        }
        let request = client.get(&url).header(header::COOKIE, &cookie);
        let kept = kept.clone();
        Some(async move {
            let (headers, _) = fetch(request, StatusCode::FOUND).await?;
            let code = code_of_redirect(&headers)?;
            kept.lock().expect("not poisoned").push(code);
            Ok(())
        })
    })
    .await;
    let codes = std::mem::take(&mut *codes.lock().expect("not poisoned"));
    (minted, codes)
}

/// The `code` of an authorization response's redirect (its `Location`).
pub(crate) fn code_of_redirect(headers: &header::HeaderMap) -> Result<String, String> {
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("a redirect without Location")?;
    let to = Url::parse(location).map_err(|e| format!("{e}: {location}"))?;
    to.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("no code in {location}"))
}

/// `POST /oauth2/token` with `authorization_code` and the PKCE verifier,
/// each code once, until they run out or `duration` has passed.
async fn exchange_codes(
    client: &Client,
    s: &Arc<Setup>,
    codes: Vec<String>,
    concurrency: usize,
    duration: Duration,
) -> Scenario {
    let (client, s, codes) = (client.clone(), s.clone(), Arc::new(codes));
    let next = Arc::new(AtomicUsize::new(0));
    drive(concurrency, duration, move |_, _| {
        let code = codes.get(next.fetch_add(1, Ordering::Relaxed))?;
        let request = client.post(format!("{}/oauth2/token", s.sk)).form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", s.spa_id.as_str()),
        ]);
        Some(expect(request, StatusCode::OK))
    })
    .await
}

/// Rounds of minting a batch of codes, then exchanging it, until the
/// exchanges have taken `load.duration()`; answers (minting, exchanges),
/// each timed over its own rounds only.
async fn code_flow(
    client: &Client,
    s: &Arc<Setup>,
    load: &Load,
) -> anyhow::Result<(Scenario, Scenario)> {
    let url = authorize_url(s)?;
    let cookie = sign_in(client, s, &url).await?;
    let (mut minted, mut exchanged) = (Scenario::new(), Scenario::new());
    while exchanged.elapsed < load.duration() {
        let (batch, codes) = mint_codes(client, &url, &cookie, load.concurrency).await;
        minted.merge(batch);
        if codes.is_empty() {
            break;
        }
        let left = load.duration() - exchanged.elapsed;
        let round = exchange_codes(client, s, codes, load.concurrency, left).await;
        let progress = round.ok > 0;
        exchanged.merge(round);
        if !progress {
            break;
        }
    }
    Ok((minted, exchanged))
}

pub async fn run(client: &Client, auth: &str, sk: &str, load: &Load) -> anyhow::Result<()> {
    let cores = cores();
    eprintln!("signing access tokens with Ed25519 on one thread for {SIGN_FOR:?}");
    let sign_per_core = measure_signing(sk.to_owned(), "bench-spa".to_owned()).await?;
    let signing_limit = sign_per_core * cores as f64;

    let s = Arc::new(setup(client, auth, sk).await?);
    let (c, n) = (load.concurrency, load.seconds);

    eprintln!("client credentials: {c} workers for {n} s");
    let cc = client_credentials(&s, load).await;
    cc.report_first_error("client_credentials");

    eprintln!("/v1/authorize: {c} workers for {n} s");
    let authorized = session_exchanges(&s, load).await;
    authorized.report_first_error("authorize");

    eprintln!("introspections: {c} workers for {n} s");
    let token = authorize(client, sk, &s.session, USER_SCOPES)
        .await
        .map_err(|e| anyhow!("a token to introspect: {e}"))?;
    let introspected = introspections(&s, load, token).await;
    introspected.report_first_error("introspections");

    eprintln!("code exchanges: batches of {CODE_BATCH} codes, {c} workers, {n} s of exchanges");
    let (minted, exchanged) = code_flow(client, &s, load).await?;
    minted.report_first_error("code minting");
    exchanged.report_first_error("code exchanges");

    let ratio = cc.per_second() / signing_limit;
    let mut rows = vec![
        row("cores", cores as f64, "count"),
        row("sign_per_s_per_core", sign_per_core, "1/s"),
        row("signing_limit_per_s", signing_limit, "1/s"),
    ];
    rows.extend(scenario_rows(
        "client_credentials_per_s",
        "client_credentials_p50_ms",
        "client_credentials_p99_ms",
        "client_credentials_errors",
        &cc,
    ));
    rows.push(with_goal(
        row("issuance_ratio", ratio, "ratio"),
        format!(">= {ISSUANCE_RATIO_GOAL}"),
        ratio >= ISSUANCE_RATIO_GOAL,
    ));
    rows.extend(scenario_rows(
        "code_exchanges_per_s",
        "code_exchange_p50_ms",
        "code_exchange_p99_ms",
        "code_exchange_errors",
        &exchanged,
    ));
    rows.extend(scenario_rows(
        "authorize_per_s",
        "authorize_p50_ms",
        "authorize_p99_ms",
        "authorize_errors",
        &authorized,
    ));
    rows.extend(scenario_rows(
        "introspections_per_s",
        "introspection_p50_ms",
        "introspection_p99_ms",
        "introspection_errors",
        &introspected,
    ));
    rows.extend(scenario_rows(
        "codes_minted_per_s",
        "code_mint_p50_ms",
        "code_mint_p99_ms",
        "code_mint_errors",
        &minted,
    ));

    print_table(&rows);
    write_json(&load.out, "safekeeper", cores, rows)
}
