use std::{collections::HashSet, future::Future, time::Duration};

use authenticator::testing::{ROOT_PASSWORD, ROOT_USER};
use platform::testkit::TestDatabase;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

pub const PASSWORD: &str = "Sturdy-Passw0rd!";
pub const SPA: &str = "test-spa";
pub const SPA_REDIRECT: &str = "http://127.0.0.1:8765/callback";
pub const SERVICE: &str = "test-service";
pub const SERVICE_SECRET: &str = "test-service-secret-0123456789";
pub const THIRD_PARTY: &str = "third-party";
/// A resource server: it may introspect tokens issued to other clients.
pub const RESOURCE_SERVER: &str = "test-resource-server";
pub const RESOURCE_SERVER_SECRET: &str = "test-resource-server-secret-0123";

pub struct TestPlatform {
    pub auth: String,
    pub sk: String,
    pub brokers: String,
    /// No redirects followed, so tests see each step.
    pub http: reqwest::Client,
    pub admin: String,
    _auth: authenticator::testing::Running,
    _sk: safekeeper::testing::Running,
    _dbs: Vec<TestDatabase>,
}

/// Polls `check` until it answers `Some`, for at most `secs` seconds: the
/// way to wait for an event to be applied.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Tweaks {
    pub code_ttl: Duration,
}

impl Default for Tweaks {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(60),
        }
    }
}

pub async fn spawn() -> TestPlatform {
    spawn_with(Tweaks::default()).await
}

pub async fn spawn_with(t: Tweaks) -> TestPlatform {
    let brokers = platform::testkit::shared_brokers();
    let auth_db = TestDatabase::create("authenticator");
    let sk_db = TestDatabase::create("safekeeper");
    // The authenticator accepts the safekeeper's tokens, so it must know
    // where the safekeeper will listen.
    let sk_port = platform::testkit::free_port();
    let mut auth_opts = authenticator::testing::Options::new(brokers.clone(), &auth_db);
    auth_opts.safekeeper_url = Some(format!("http://127.0.0.1:{sk_port}"));
    let auth = authenticator::testing::spawn(auth_opts).await;
    let mut opts = safekeeper::testing::Options::new(brokers.clone(), &sk_db, &auth.address);
    opts.code_ttl = t.code_ttl;
    opts.port = sk_port;
    let app = safekeeper::testing::spawn(opts).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut p = TestPlatform {
        auth: auth.address.clone(),
        sk: app.address.clone(),
        brokers,
        http,
        admin: String::new(),
        _auth: auth,
        _sk: app,
        _dbs: vec![auth_db, sk_db],
    };
    // The superuser's admin role arrives through iam.user.v1.
    let session = p.session(ROOT_USER, ROOT_PASSWORD).await;
    p.admin = eventually(30, "the superuser's admin role", || async {
        let r = p
            .authorize(&session, "admin:rbac,admin:client,admin:user")
            .await;
        (r.status() == StatusCode::OK).then_some(())?;
        Some(
            r.json::<Value>().await.ok()?["access_token"]
                .as_str()?
                .to_owned(),
        )
    })
    .await;
    p.create_clients().await;
    p
}

impl TestPlatform {
    /// The safekeeper's own database, for tests that age rows.
    pub fn sk_database_url(&self) -> String {
        self._dbs[1].url.clone()
    }

    pub fn sk(&self, path: &str) -> String {
        format!("{}{}", self.sk, path)
    }

    pub async fn session(&self, username: &str, password: &str) -> String {
        let r = self
            .http
            .post(format!("{}/v1/login", self.auth))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login of {username}");
        r.json::<Value>().await.unwrap()["session_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn authorize(&self, session: &str, scopes: &str) -> Response {
        self.http
            .post(self.sk("/v1/authorize"))
            .bearer_auth(session)
            .json(&json!({"scopes": scopes}))
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = self
            .http
            .request(method, self.sk(path))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    async fn create_clients(&self) {
        for body in [
            json!({"client_id": SPA, "name": "Test SPA", "public": true, "first_party": true,
                   "redirect_uris": [SPA_REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
                   "scopes": ["read:task", "edit:task", "create:task", "su_read:task", "su_edit:task"]}),
            json!({"client_id": THIRD_PARTY, "name": "Third Party App", "public": true, "first_party": false,
                   "redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code"],
                   "scopes": ["read:task"]}),
            json!({"client_id": SERVICE, "name": "Test Service", "client_secret": SERVICE_SECRET,
                   "grant_types": ["client_credentials"], "scopes": ["su_read:task"]}),
            json!({"client_id": RESOURCE_SERVER, "name": "Test Resource Server", "client_secret": RESOURCE_SERVER_SECRET,
                   "grant_types": ["client_credentials"], "scopes": ["introspect:token"]}),
        ] {
            let r = self
                .admin_call(Method::POST, "/v1/admin/clients", Some(body))
                .await;
            assert_eq!(
                r.status(),
                StatusCode::CREATED,
                "{}",
                r.text().await.unwrap()
            );
        }
    }

    /// Registers a user in the authenticator, waits until the safekeeper
    /// knows them, grants `role`; returns (username, id).
    pub async fn user_with_role(&self, role: Option<&str>) -> (String, String) {
        let n = uuid::Uuid::new_v4().simple().to_string();
        let username = format!("u.{}", &n[..12]);
        let r = self
            .http
            .post(format!("{}/v1/user", self.auth))
            .json(&json!({"username": username, "password": PASSWORD, "email": format!("{username}@example.com"),
                          "firstname": "Test", "lastname": "User"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        eventually(30, "the user in the read model", || async {
            let r = self
                .admin_call(
                    Method::GET,
                    &format!("/v1/admin/users?username={username}"),
                    None,
                )
                .await;
            let v: Value = r.json().await.ok()?;
            (!v.as_array()?.is_empty()).then_some(())
        })
        .await;
        if let Some(role) = role {
            let r = self
                .admin_call(
                    Method::POST,
                    &format!("/v1/admin/users/{id}/roles"),
                    Some(json!({"role": role})),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        (username, id)
    }

    /// Deactivates an account in the authenticator (as its superuser).
    pub async fn deactivate(&self, id: &str) {
        let root = self.session(ROOT_USER, ROOT_PASSWORD).await;
        let r = self
            .http
            .post(format!("{}/v1/users/{id}/deactivate", self.auth))
            .bearer_auth(root)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    pub async fn user_role_events(
        &self,
        user_id: &str,
        want: usize,
    ) -> Vec<platform::events::Envelope> {
        let keys: HashSet<String> = [user_id.to_owned()].into();
        platform::testkit::collect_events(
            &self.brokers,
            "iam.user-role.v1",
            &keys,
            want,
            Duration::from_secs(30),
        )
        .await
    }
}

/// Asserts a problem+json answer with `status`; returns the body.
pub async fn assert_problem(r: Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    r.json().await.unwrap()
}

/// Asserts an RFC 6749 error answer; returns the body.
pub async fn assert_oauth_error(r: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], error, "{v}");
    v
}
