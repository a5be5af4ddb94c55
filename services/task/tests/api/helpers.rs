use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use testkit::TestDatabase;
pub use testkit::{assert_problem, eventually};

pub use testkit::{Person, PASSWORD};
pub const READER: &str = "task-reader";
pub const READER_SECRET: &str = "task-reader-secret-0123456789";
pub const EMPLOYEE_SCOPES: &str = "read:task,edit:task";

/// Status ids of the seeded catalogue.
pub const TO_DO: i64 = 1;
pub const IN_PROGRESS: i64 = 2;
pub const PENDING: i64 = 3;
pub const COMPLETED: i64 = 4;

/// The authenticator and the safekeeper ([`testkit::TestPlatform`]), and
/// the task service, each with its own database, on the shared broker.
pub struct TestPlatform {
    base: testkit::TestPlatform,
    pub task: String,
    /// A client-credentials token with `su_read:task`: reads the task
    /// service without a user behind it.
    pub reader: String,
    pub task_db: TestDatabase,
    /// The consumer group of the task service's read model.
    pub task_group: String,
    pub task_app: Option<testkit::task::Running>,
}

impl std::ops::Deref for TestPlatform {
    type Target = testkit::TestPlatform;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

pub async fn spawn() -> TestPlatform {
    let base = testkit::TestPlatform::builder().build().await;
    let task_db = testkit::task::database();
    let opts = task_options(&base.brokers, &task_db, &base.sk);
    let task_group = opts.consumer_group.clone();
    let task_app = testkit::task::spawn(opts).await;
    base.create_client(
        json!({"client_id": READER, "name": "Task reader", "client_secret": READER_SECRET,
                "grant_types": ["client_credentials"], "scopes": ["su_read:task"]}),
    )
    .await;
    let reader = base
        .client_token(READER, READER_SECRET, "su_read:task")
        .await;
    TestPlatform {
        base,
        task: task_app.address.clone(),
        reader,
        task_db,
        task_group,
        task_app: Some(task_app),
    }
}

pub fn task_options(brokers: &str, db: &TestDatabase, sk: &str) -> testkit::task::Options {
    let mut o = testkit::task::Options::new(brokers.to_owned(), db, sk);
    o.issuer = testkit::safekeeper::ISSUER.into();
    o.audience = testkit::safekeeper::AUDIENCE.into();
    o
}

impl TestPlatform {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.task, path)
    }

    /// A client-credentials token of the reader client (`su_read:task`).
    pub async fn client_token(&self) -> String {
        self.base
            .client_token(READER, READER_SECRET, "su_read:task")
            .await
    }

    /// Registers an account, grants `role` in the safekeeper, and waits
    /// until the task service knows both.
    pub async fn person(&self, role: Option<&str>) -> Person {
        let p = self.base.person(None).await;
        match role {
            Some(role) => self.grant(&p, role).await,
            None => {
                self.wait_for_user(&p.id, |u| u["active"] == true).await;
            }
        }
        p
    }

    /// Grants `role` in the safekeeper and waits for the task service's
    /// read model to show it.
    pub async fn grant(&self, p: &Person, role: &str) {
        self.base.grant(p, role).await;
        self.wait_for_user(&p.id, |u| {
            u["active"] == true
                && u["roles"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == role))
        })
        .await;
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

/// The ids of a task list.
pub fn ids(list: &Value) -> Vec<String> {
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}
