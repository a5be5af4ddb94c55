use std::{collections::HashSet, path::PathBuf, time::Duration};

use platform::events::Envelope;
use reqwest::{Method, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use testkit::{
    authenticator::{ROOT_PASSWORD, ROOT_USER},
    user_directory::{self as testing, Options, Running},
    TempDir, TestDatabase,
};
use user_directory::config::ProviderSettings;

use crate::fake_workos::{self, FakeWorkOs};
pub use testkit::{assert_problem, eventually, session};

pub const PASSWORD: &str = "Acme-Passw0rd!";
pub const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";
pub const CLIENT_SECRET: &str = "directory-test-secret-0123456789";

/// A name no other test uses (organization names allow `_` and `-`).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// The roles and organizations file of one test.
pub struct ConfigFile {
    pub path: PathBuf,
    _dir: TempDir,
}

impl ConfigFile {
    pub fn new(roles: &[&str], orgs: &[(&str, Option<&str>)]) -> Self {
        let dir = TempDir::new("ud-config");
        let path = dir.0.join("directory.toml");
        let f = Self { path, _dir: dir };
        f.write(roles, orgs);
        f
    }

    pub fn write(&self, roles: &[&str], orgs: &[(&str, Option<&str>)]) {
        let mut text = format!("roles = {}\n", serde_json::to_string(roles).unwrap());
        for (name, workos) in orgs {
            text.push_str(&format!("[[organizations]]\nname = \"{name}\"\n"));
            if let Some(w) = workos {
                text.push_str(&format!("workos_id = \"{w}\"\n"));
            }
        }
        // Write to a new file and rename, with a later mtime each time.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        let stamp = std::time::SystemTime::now() + Duration::from_millis(rand_ms());
        f.set_modified(stamp).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

fn rand_ms() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 1000
}

pub struct TestApp {
    pub address: String,
    pub brokers: String,
    pub http: reqwest::Client,
    pub config: ConfigFile,
    pub _app: Running,
    /// The authenticator, when it is the provider.
    pub auth: Option<String>,
    pub workos: Option<FakeWorkOs>,
    pub db: TestDatabase,
    _others: Vec<Box<dyn std::any::Any + Send>>,
}

pub struct Tweaks {
    pub roles: Vec<&'static str>,
    /// Organization names in the config file besides each test's own.
    pub orgs: Vec<(String, Option<String>)>,
    pub tweak: Box<dyn FnOnce(&mut Options)>,
}

impl Default for Tweaks {
    fn default() -> Self {
        Self {
            roles: vec!["admin", "member", "viewer"],
            orgs: vec![],
            tweak: Box::new(|_| {}),
        }
    }
}

fn config_for(t: &Tweaks) -> ConfigFile {
    let orgs: Vec<(&str, Option<&str>)> = t
        .orgs
        .iter()
        .map(|(n, w)| (n.as_str(), w.as_deref()))
        .collect();
    ConfigFile::new(&t.roles, &orgs)
}

/// The directory with our authenticator as provider: an authenticator, a
/// safekeeper, an OAuth2 client with `provision:user` and `login:relay` for the
/// directory (it administers accounts, and relays its admins' sign-ins
/// with their addresses).
pub async fn spawn_with_authenticator(t: Tweaks) -> TestApp {
    let platform = testkit::TestPlatform::builder().build().await;
    let client_id = unique("directory");
    platform
        .create_client(
            json!({"client_id": client_id, "name": "Directory", "client_secret": CLIENT_SECRET,
                   "grant_types": ["client_credentials"], "scopes": ["provision:user", "login:relay"]}),
        )
        .await;
    let provider = ProviderSettings::Authenticator {
        authenticator_url: platform.auth.clone(),
        safekeeper_url: platform.sk.clone(),
        client_id,
        client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
    };
    let mut app = spawn_directory(t, provider, platform.brokers.clone()).await;
    app.auth = Some(platform.auth.clone());
    app._others.push(Box::new(platform));
    app
}

/// The directory with WorkOS (a local fake) as provider and webhooks on.
pub async fn spawn_with_workos(t: Tweaks) -> TestApp {
    let fake = fake_workos::start().await;
    let provider = ProviderSettings::WorkOs {
        base_url: fake.url.clone(),
        api_key: SecretString::from(fake_workos::API_KEY.to_owned()),
        client_id: fake_workos::CLIENT_ID.to_owned(),
    };
    let mut app = spawn_directory(t, provider, testkit::shared_brokers()).await;
    app.workos = Some(fake);
    app
}

async fn spawn_directory(t: Tweaks, provider: ProviderSettings, brokers: String) -> TestApp {
    let config = config_for(&t);
    let db = testkit::user_directory::database();
    let mut o = Options::new(brokers.clone(), &db, provider, config.path.clone());
    o.webhook_secret = Some(WEBHOOK_SECRET.to_owned());
    (t.tweak)(&mut o);
    let app = testing::spawn(o).await;
    TestApp {
        address: app.address.clone(),
        brokers,
        http: testkit::http_client(),
        config,
        _app: app,
        auth: None,
        workos: None,
        db,
        _others: vec![],
    }
}

/// The session token of a new ordinary account at the authenticator.
pub async fn new_account_session(http: &reqwest::Client, auth: &str) -> String {
    let name = format!("user.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let r = http
        .post(format!("{auth}/v1/user"))
        .json(
            &json!({"username": name, "password": PASSWORD, "email": format!("{name}@example.com"),
                      "firstname": "Stranger", "lastname": "Danger"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    session(http, auth, &name, PASSWORD).await
}

/// An organization this test made, with its admin's token.
pub struct Org {
    pub name: String,
    pub email: String,
    pub id: String,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// `POST /org/create` as the operators do: with a superuser's session
    /// of the authenticator, or (WorkOS) the one-time bootstrap token,
    /// rotated after each use as an operator would. Only organizations
    /// named in the configuration need either.
    pub async fn create_org(&self, name: &str, email: &str, password: &str) -> Response {
        let operator = match &self.auth {
            Some(auth) => {
                session(
                    &self.http,
                    auth,
                    testkit::authenticator::ROOT_USER,
                    testkit::authenticator::ROOT_PASSWORD,
                )
                .await
            }
            None => testkit::user_directory::BOOTSTRAP_TOKEN.to_owned(),
        };
        let r = self
            .call(
                Method::POST,
                "/org/create",
                Some(&operator),
                Some(json!({"organization_name": name, "email": email, "password": password})),
            )
            .await;
        if self.auth.is_none() {
            use diesel::{Connection, RunQueryDsl};
            let mut c = diesel::PgConnection::establish(&self.db.url).unwrap();
            diesel::sql_query("DELETE FROM bootstrap_token_uses")
                .execute(&mut c)
                .unwrap();
        }
        r
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.call(
            Method::POST,
            "/admin/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let r = self.login(email, password).await;
        assert_eq!(r.status(), StatusCode::OK, "admin login of {email}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["token_type"], "bearer");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates an organization (listed in the config file, so users may
    /// join it) and logs its admin in.
    pub async fn org(&self) -> Org {
        self.org_with_workos(None).await
    }

    pub async fn org_with_workos(&self, workos_id: Option<&str>) -> Org {
        let name = unique("org");
        let email = format!("admin@{name}.example");
        self.add_config_org(&name, workos_id);
        let r = self.create_org(&name, &email, PASSWORD).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = self.token(&email, PASSWORD).await;
        Org {
            name,
            email,
            id,
            token,
        }
    }

    pub fn add_config_org(&self, name: &str, workos_id: Option<&str>) {
        let text = std::fs::read_to_string(&self.config.path).unwrap();
        let mut text = text;
        text.push_str(&format!("[[organizations]]\nname = \"{name}\"\n"));
        if let Some(w) = workos_id {
            text.push_str(&format!("workos_id = \"{w}\"\n"));
        }
        let tmp = self.config.path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(std::time::SystemTime::now() + Duration::from_millis(rand_ms()))
            .unwrap();
        std::fs::rename(&tmp, &self.config.path).unwrap();
    }

    pub async fn create_user(&self, org: &Org, email: &str, role: &str) -> Response {
        self.call(
            Method::POST,
            "/v1/users",
            Some(&org.token),
            Some(
                json!({"email": email, "first_name": "Ada", "last_name": "Lovelace",
                        "organization": org.name, "role": role}),
            ),
        )
        .await
    }

    pub async fn users(&self, org: &Org, query: &str) -> Value {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/users?{query}"),
                Some(&org.token),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn events_for(&self, topic: &str, keys: &[&str], want: usize) -> Vec<Envelope> {
        let keys: HashSet<String> = keys.iter().map(|k| k.to_string()).collect();
        testkit::collect_events(&self.brokers, topic, &keys, want, Duration::from_secs(60)).await
    }

    /// The authenticator's superuser session (authenticator tests only).
    pub async fn root(&self) -> String {
        session(
            &self.http,
            self.auth.as_ref().unwrap(),
            ROOT_USER,
            ROOT_PASSWORD,
        )
        .await
    }

    /// `GET path` of the authenticator as its superuser (authenticator
    /// tests only).
    pub async fn authenticator_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.auth.as_ref().unwrap()))
            .bearer_auth(self.root().await)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `POST /v1/users/import` as `org`'s admin.
    pub async fn import(&self, org: &Org, content_type: &str, body: String) -> Response {
        self.http
            .post(self.url("/v1/users/import"))
            .bearer_auth(&org.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub fn fake(&self) -> &FakeWorkOs {
        self.workos.as_ref().unwrap()
    }

    pub async fn webhook(&self, body: &str, signature: Option<String>) -> Response {
        let mut r = self
            .http
            .post(self.url("/v1/webhooks/workos"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(s) = signature {
            r = r.header("WorkOS-Signature", s);
        }
        r.send().await.unwrap()
    }

    /// Sends `event` signed as WorkOS would, now.
    pub async fn signed_webhook(&self, event: &Value) -> Response {
        let body = event.to_string();
        let t = chrono::Utc::now().timestamp_millis();
        self.webhook(&body, Some(sign(WEBHOOK_SECRET, t, &body)))
            .await
    }

    /// Runs SQL against the directory's database (for state a black box
    /// cannot reach: a crash between two steps, say).
    pub fn sql(&self, statement: &str) -> usize {
        use diesel::{Connection, RunQueryDsl};
        let mut c = diesel::PgConnection::establish(&self.db.url).unwrap();
        diesel::sql_query(statement).execute(&mut c).unwrap()
    }

    pub fn count(&self, table_and_filter: &str) -> i64 {
        use diesel::{Connection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut c = diesel::PgConnection::establish(&self.db.url).unwrap();
        diesel::sql_query(format!("SELECT count(*) AS n FROM {table_and_filter}"))
            .get_result::<N>(&mut c)
            .unwrap()
            .n
    }
}

pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t}, v1={}", hex::encode(tag.as_ref()))
}

/// Each row's outcome in an import's answer, in order.
pub fn outcomes(import: &Value) -> Vec<&str> {
    import["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect()
}
