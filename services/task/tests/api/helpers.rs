use std::{future::Future, time::Duration};

use authenticator::testing::{ROOT_PASSWORD, ROOT_USER};
use platform::testkit::TestDatabase;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

pub const PASSWORD: &str = "Sturdy-Passw0rd!";
pub const READER: &str = "task-reader";
pub const READER_SECRET: &str = "task-reader-secret-0123456789";
pub const EMPLOYEE_SCOPES: &str = "read:task,edit:task";

/// Status ids of the seeded catalogue.
pub const TO_DO: i64 = 1;
pub const IN_PROGRESS: i64 = 2;
pub const PENDING: i64 = 3;
pub const COMPLETED: i64 = 4;

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
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The authenticator, the safekeeper and the task service, each on a free
/// port with its own database, on the shared broker.
pub struct TestPlatform {
    pub auth: String,
    pub sk: String,
    pub task: String,
    pub brokers: String,
    pub http: reqwest::Client,
    /// The safekeeper's admin token (`admin:rbac`, `admin:client`, `admin:user`).
    pub admin: String,
    /// A client-credentials token with `su_read:task`: reads the task
    /// service without a user behind it.
    pub reader: String,
    pub task_db: TestDatabase,
    /// The consumer group of the task service's read model.
    pub task_group: String,
    pub task_app: Option<task::testing::Running>,
    _auth: authenticator::testing::Running,
    _sk: safekeeper::testing::Running,
    _dbs: Vec<TestDatabase>,
}

/// A user of the platform, known to all three services.
#[derive(Debug, Clone)]
pub struct Person {
    pub username: String,
    pub id: String,
    pub session: String,
}

pub async fn spawn() -> TestPlatform {
    let brokers = platform::testkit::shared_brokers();
    let auth_db = TestDatabase::create("authenticator");
    let sk_db = TestDatabase::create("safekeeper");
    let task_db = TestDatabase::create("task");
    // The authenticator verifies the safekeeper's tokens (its sign-in page
    // relays logins with one), so it must know where the safekeeper listens.
    let sk_port = platform::testkit::free_port();
    let mut auth_opts = authenticator::testing::Options::new(brokers.clone(), &auth_db);
    auth_opts.safekeeper_url = Some(format!("http://127.0.0.1:{sk_port}"));
    let auth = authenticator::testing::spawn(auth_opts).await;
    let mut sk_opts = safekeeper::testing::Options::new(brokers.clone(), &sk_db, &auth.address);
    sk_opts.port = sk_port;
    let sk = safekeeper::testing::spawn(sk_opts).await;
    let opts = task_options(&brokers, &task_db, &sk.address);
    let task_group = opts.consumer_group.clone();
    let task_app = task::testing::spawn(opts).await;
    let mut p = TestPlatform {
        auth: auth.address.clone(),
        sk: sk.address.clone(),
        task: task_app.address.clone(),
        brokers,
        http: reqwest::Client::new(),
        admin: String::new(),
        reader: String::new(),
        task_db,
        task_group,
        task_app: Some(task_app),
        _auth: auth,
        _sk: sk,
        _dbs: vec![auth_db, sk_db],
    };
    // The superuser's admin role arrives through iam.user.v1.
    let session = p.session(ROOT_USER, ROOT_PASSWORD).await;
    p.admin = eventually(60, "the superuser's admin role", || async {
        p.try_token(&session, "admin:rbac,admin:client,admin:user")
            .await
    })
    .await;
    let r = p
        .admin_call(
            Method::POST,
            "/v1/admin/clients",
            Some(
                json!({"client_id": READER, "name": "Task reader", "client_secret": READER_SECRET,
                        "grant_types": ["client_credentials"], "scopes": ["su_read:task"]}),
            ),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    p.reader = p.client_token().await;
    p
}

pub fn task_options(brokers: &str, db: &TestDatabase, sk: &str) -> task::testing::Options {
    let mut o = task::testing::Options::new(brokers.to_owned(), db, sk);
    o.issuer = safekeeper::testing::ISSUER.into();
    o.audience = safekeeper::testing::AUDIENCE.into();
    o
}

impl TestPlatform {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.task, path)
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

    /// `POST /v1/authorize` (the task-management design's flow): an access token for `scopes`.
    pub async fn authorize(&self, session: &str, scopes: &str) -> Response {
        self.http
            .post(format!("{}/v1/authorize", self.sk))
            .bearer_auth(session)
            .json(&json!({"scopes": scopes}))
            .send()
            .await
            .unwrap()
    }

    async fn try_token(&self, session: &str, scopes: &str) -> Option<String> {
        let r = self.authorize(session, scopes).await;
        (r.status() == StatusCode::OK).then_some(())?;
        Some(
            r.json::<Value>().await.ok()?["access_token"]
                .as_str()?
                .to_owned(),
        )
    }

    /// An access token for `scopes`, waiting for the safekeeper to know
    /// the grants that allow them.
    pub async fn token(&self, who: &Person, scopes: &str) -> String {
        eventually(30, "an access token", || {
            self.try_token(&who.session, scopes)
        })
        .await
    }

    pub async fn client_token(&self) -> String {
        let r = self
            .http
            .post(format!("{}/oauth2/token", self.sk))
            .basic_auth(READER, Some(READER_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "su_read:task"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = self
            .http
            .request(method, format!("{}{}", self.sk, path))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// Registers a user in the authenticator, grants `role` in the
    /// safekeeper, and waits until the task service knows both.
    pub async fn person(&self, role: Option<&str>) -> Person {
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
        let session = self.session(&username, PASSWORD).await;
        let p = Person {
            username,
            id,
            session,
        };
        if let Some(role) = role {
            self.grant(&p, role).await;
        } else {
            self.wait_for_user(&p.id, |u| u["active"] == true).await;
        }
        p
    }

    /// Grants `role` in the safekeeper and waits for the task service's
    /// read model to show it.
    pub async fn grant(&self, p: &Person, role: &str) {
        eventually(30, "the user in the safekeeper", || async {
            let r = self
                .admin_call(
                    Method::POST,
                    &format!("/v1/admin/users/{}/roles", p.id),
                    Some(json!({"role": role})),
                )
                .await;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        self.wait_for_user(&p.id, |u| {
            u["active"] == true
                && u["roles"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == role))
        })
        .await;
    }

    /// Revokes `role` in the safekeeper.
    pub async fn revoke(&self, p: &Person, role: &str) {
        let r = self
            .admin_call(
                Method::DELETE,
                &format!("/v1/admin/users/{}/roles/{role}", p.id),
                None,
            )
            .await;
        assert!(r.status().is_success(), "{}", r.status());
    }

    /// The task service's read-model row of `id`, once `ready` holds.
    pub async fn wait_for_user(&self, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_user_within(60, id, ready).await
    }

    pub async fn wait_for_user_within(
        &self,
        secs: u64,
        id: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(secs, "the user in the task read model", || async {
            let v = self.read_model(id).await?;
            ready(&v).then_some(v)
        })
        .await
    }

    pub async fn read_model(&self, id: &str) -> Option<Value> {
        let r = self
            .http
            .get(self.url(&format!("/v1/users/{id}")))
            .bearer_auth(&self.reader)
            .send()
            .await
            .unwrap();
        (r.status() == StatusCode::OK).then_some(())?;
        r.json().await.ok()
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

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a task as `token`'s user; returns it.
    pub async fn create(&self, token: &str, body: Value) -> Value {
        let r = self.post(token, "/v1/task", body).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        r.json().await.unwrap()
    }

    pub async fn move_to(&self, token: &str, task: &str, status: i64) -> Response {
        self.post(
            token,
            &format!("/v1/tasks/{task}"),
            json!({"status_id": status}),
        )
        .await
    }

    pub async fn get_task(&self, token: &str, id: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/v1/tasks/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Every task the reader sees (one page of 100), with the count.
    pub async fn all(&self, body: Value) -> Value {
        let r = self.post(&self.reader, "/v1/task/all", body).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }
}

/// Asserts a problem+json answer with `status`; returns the body.
pub async fn assert_problem(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    assert_eq!(body["status"], status.as_u16());
    body
}

/// The ids of a task list.
pub fn ids(list: &Value) -> Vec<String> {
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}
