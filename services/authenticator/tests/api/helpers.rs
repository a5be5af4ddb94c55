use std::{collections::HashSet, time::Duration};

use authenticator::{config::Settings, startup::Application};
use platform::{events::Envelope, testkit::TestDatabase};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};

pub const ROOT_USER: &str = "root";
pub const ROOT_PASSWORD: &str = "Root-Passw0rd!";

pub struct TestApp {
    pub address: String,
    pub brokers: String,
    pub http: reqwest::Client,
    pub db: TestDatabase,
    _state_dir: TempDir,
}

/// A folder removed when the test ends.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Options {
    pub brokers: Option<String>,
    pub db: Option<TestDatabase>,
    pub signing_key: Option<String>,
    pub previous_keys: Option<String>,
    pub max_failures: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            brokers: None,
            db: None,
            signing_key: None,
            previous_keys: None,
            max_failures: 5,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(o: Options) -> TestApp {
    platform::telemetry::init_for_tests();
    let db =
        o.db.unwrap_or_else(|| TestDatabase::create("authenticator"));
    let state_dir =
        TempDir(std::env::temp_dir().join(format!("auth-test-{}", uuid::Uuid::new_v4().simple())));
    let brokers = o.brokers.unwrap_or_else(platform::testkit::shared_brokers);
    let mut s = Settings::from_env().expect("settings");
    s.common.port = 0;
    s.common.database_url = db.url.clone();
    s.common.database_pool_size = 4;
    s.common.kafka_brokers = brokers.clone();
    s.common.state_dir = state_dir.0.clone();
    s.bcrypt_cost = 4;
    s.http_workers = 2;
    s.outbox_poll = Duration::from_millis(100);
    s.login_limits.per_username = o.max_failures;
    s.signing_key_pem = o.signing_key.map(SecretString::from);
    s.previous_keys_pem = o.previous_keys.map(SecretString::from);
    s.require_signing_key = false;
    s.bootstrap_admin = Some(authenticator::config::BootstrapAdmin {
        username: ROOT_USER.into(),
        email: "root@example.com".into(),
        password: SecretString::from(ROOT_PASSWORD.to_owned()),
    });
    let app = Application::build(s).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        brokers,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        db,
        _state_dir: state_dir,
    }
}

/// A registration body whose username and email are unique to this call.
pub fn new_user() -> Value {
    let n = uuid::Uuid::new_v4().simple().to_string();
    json!({
        "username": format!("user.{}", &n[..12]),
        "password": "Sturdy-Passw0rd!",
        "email": format!("{}@Example.com", &n[..12]),
        "firstname": "Ada",
        "lastname": "Lovelace",
        "phone": "+44 20 7946 0000",
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn register(&self, body: &Value) -> Response {
        self.http
            .post(self.url("/v1/user"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.http
            .post(self.url("/v1/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        let r = self.login(username, password).await;
        assert_eq!(r.status(), StatusCode::OK, "login of {username}");
        r.json::<Value>().await.unwrap()["session_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn root_token(&self) -> String {
        self.token(ROOT_USER, ROOT_PASSWORD).await
    }

    /// Registers a fresh user and returns (body sent, account answered).
    pub async fn registered_user(&self) -> (Value, Value) {
        let body = new_user();
        let r = self.register(&body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        (body, r.json().await.unwrap())
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// How many accounts exist (through the admin API).
    pub async fn account_count(&self) -> i64 {
        let t = self.root_token().await;
        let r = self
            .admin(reqwest::Method::GET, "/v1/users?limit=1", &t, None)
            .await;
        r.json::<Value>().await.unwrap()["total"].as_i64().unwrap()
    }

    pub async fn events_for(&self, keys: &[&str], want: usize) -> Vec<Envelope> {
        let keys: HashSet<String> = keys.iter().map(|k| k.to_string()).collect();
        platform::testkit::collect_events(
            &self.brokers,
            "iam.user.v1",
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
    let ct = r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "{body}"
    );
    body
}
