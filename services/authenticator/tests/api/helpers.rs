use std::{collections::HashSet, time::Duration};

use platform::events::Envelope;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
pub use testkit::assert_problem;
use testkit::TestDatabase;

pub use testkit::authenticator::{ROOT_PASSWORD, ROOT_USER};

pub struct TestApp {
    pub address: String,
    pub brokers: String,
    pub http: reqwest::Client,
    pub db: TestDatabase,
    _app: testkit::authenticator::Running,
}

#[derive(Default)]
pub struct Options {
    pub brokers: Option<String>,
    pub db: Option<TestDatabase>,
    pub signing_key: Option<String>,
    pub previous_keys: Option<String>,
    /// Count the throttle in the machine's Redis under this key prefix.
    pub redis_prefix: Option<String>,
    pub signups_per_address: Option<u32>,
    pub hashing: Option<authenticator::hashing::HashLimits>,
    pub registration_notices_per_hour: Option<u32>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(o: Options) -> TestApp {
    let db = o.db.unwrap_or_else(testkit::authenticator::database);
    let brokers = o.brokers.unwrap_or_else(testkit::shared_brokers);
    let mut opts = testkit::authenticator::Options::new(brokers.clone(), &db);
    opts.signing_key = o.signing_key;
    opts.previous_keys = o.previous_keys;
    opts.redis = o.redis_prefix.map(|p| {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        (url, p)
    });
    if let Some(n) = o.signups_per_address {
        opts.signups_per_address = n;
    }
    opts.hashing = o.hashing;
    if let Some(n) = o.registration_notices_per_hour {
        opts.registration_notices_per_hour = n;
    }
    let app = testkit::authenticator::spawn(opts).await;
    TestApp {
        address: app.address.clone(),
        brokers,
        http: testkit::http_client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        db,
        _app: app,
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
        testkit::collect_events(
            &self.brokers,
            "iam.user.v1",
            &keys,
            want,
            Duration::from_secs(30),
        )
        .await
    }
}
