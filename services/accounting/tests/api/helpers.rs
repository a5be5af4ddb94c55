use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use contracts::{
    topics::{
        self,
        task::{Change, Task, TaskEvent, COMPLETED},
    },
    Envelope,
};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    Message,
};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use testkit::TestDatabase;
use uuid::Uuid;

pub use testkit::{assert_problem, eventually, Person};

/// The authenticator and the safekeeper ([`testkit::TestPlatform`]), and
/// the accounting service, each with its own database, on the shared
/// broker.
pub struct TestPlatform {
    base: testkit::TestPlatform,
    pub accounting: String,
    /// The service's database (for what the dashboard stores).
    pub db_url: String,
    /// Held for the test's length: dropping them ends the database and
    /// the app.
    _db: TestDatabase,
    _app: testkit::accounting::Running,
    producer: FutureProducer,
}

impl std::ops::Deref for TestPlatform {
    type Target = testkit::TestPlatform;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

pub fn options(brokers: &str, db: &TestDatabase, sk: &str) -> testkit::accounting::Options {
    let mut o = testkit::accounting::Options::new(brokers.to_owned(), db, sk);
    o.issuer = testkit::safekeeper::ISSUER.into();
    o.audience = testkit::safekeeper::AUDIENCE.into();
    o
}

pub async fn spawn() -> TestPlatform {
    spawn_with(false).await
}

/// The platform with the accounting dashboard's OAuth2 client registered
/// at the safekeeper and configured in the service.
pub async fn spawn_with_dashboard() -> TestPlatform {
    spawn_with(true).await
}

async fn spawn_with(dashboard: bool) -> TestPlatform {
    let base = testkit::TestPlatform::builder().build().await;
    let db = testkit::accounting::database();
    let mut o = options(&base.brokers, &db, &base.sk);
    if dashboard {
        let c = testkit::dashboard::config(
            "accounting",
            &base.sk,
            o.listener.port(),
            "read:accounting su_read:accounting",
        );
        base.create_client(testkit::dashboard::client_registration(&c))
            .await;
        o.dashboard = Some(c);
    }
    let app = testkit::accounting::spawn(o).await;
    let producer = platform::events::producer(&base.brokers).expect("a producer");
    TestPlatform {
        accounting: app.address.clone(),
        db_url: db.url.clone(),
        base,
        _db: db,
        _app: app,
        producer,
    }
}

/// A priced task, as the task service's events carry it.
#[derive(Debug, Clone)]
pub struct PricedTask {
    pub id: Uuid,
    pub fee_cents: i64,
    pub reward_cents: i64,
    /// When its changes happen (their business day).
    pub at: DateTime<Utc>,
}

impl PricedTask {
    pub fn new(fee_cents: i64, reward_cents: i64, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            fee_cents,
            reward_cents,
            at,
        }
    }

    fn state(&self, assignee: Option<Uuid>, status: &str) -> Task {
        Task {
            id: self.id,
            title: format!("task {}", self.id.simple()),
            price_cents: self.reward_cents,
            assignment_fee_cents: self.fee_cents,
            completion_reward_cents: self.reward_cents,
            assignee_id: assignee,
            status: status.into(),
            updated_at: self.at,
        }
    }

    /// The event of the task's `version`-th change: assigned to `to`.
    pub fn assigned(&self, version: i64, to: Uuid) -> Envelope {
        self.event(
            version,
            self.state(Some(to), "To Do"),
            Change::Assigned {
                from: None,
                to: Some(to),
                by: Uuid::now_v7(),
            },
        )
    }

    /// The event of the task's `version`-th change: `assignee` completed it.
    pub fn completed(&self, version: i64, assignee: Uuid) -> Envelope {
        self.event(
            version,
            self.state(Some(assignee), COMPLETED),
            Change::StatusChanged {
                from: "In Progress".into(),
                to: COMPLETED.into(),
                by: assignee,
            },
        )
    }

    /// The event of the task's `version`-th change: moved from Completed
    /// back to In Progress (a reopened bug), still `assignee`'s.
    pub fn reopened(&self, version: i64, assignee: Uuid) -> Envelope {
        self.event(
            version,
            self.state(Some(assignee), "In Progress"),
            Change::StatusChanged {
                from: COMPLETED.into(),
                to: "In Progress".into(),
                by: assignee,
            },
        )
    }

    /// The same event as written by `service`'s outbox.
    pub fn forged_by(mut e: Envelope, service: &str) -> Envelope {
        e.source.service = service.into();
        e
    }

    fn event(&self, version: i64, task: Task, change: Change) -> Envelope {
        TaskEvent { task, change }.envelope(version).unwrap()
    }
}

/// A day long past that no other test uses (its business day).
pub fn past_day() -> NaiveDate {
    let n = (Uuid::new_v4().as_u128() % 7000) as u64;
    NaiveDate::from_ymd_opt(2001, 1, 1).unwrap() + chrono::Days::new(n)
}

/// Noon (UTC) of `day`.
pub fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

impl TestPlatform {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.accounting, path)
    }

    /// Publishes `e` on `task.v1`, keyed by its task, as the task service
    /// would.
    pub async fn publish(&self, e: &Envelope) {
        let payload = serde_json::to_vec(e).unwrap();
        self.producer
            .send(
                FutureRecord::to(topics::TASK).key(&e.key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("the broker takes the event");
    }

    /// An account with `role` whose access token for `scopes` the
    /// accounting service takes (it has applied the account's events).
    pub async fn worker_with(&self, role: &str, scopes: &str) -> (Person, String) {
        let p = self.base.person(Some(role)).await;
        let token = self.base.token(&p, scopes).await;
        eventually(60, "the account in the accounting read model", || async {
            let r = self.get(&token, "/v1/accounting/earnings").await;
            (r.status() != StatusCode::UNAUTHORIZED).then_some(())
        })
        .await;
        (p, token)
    }

    /// An Employee and their `read:accounting` token.
    pub async fn worker(&self) -> (Person, String) {
        self.worker_with("Employee", "read:accounting").await
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let r = self.get(token, path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// `POST /v1/accounting/closes` for `day`.
    pub async fn close(&self, token: &str, day: NaiveDate) -> Response {
        self.http
            .post(self.url("/v1/accounting/closes"))
            .bearer_auth(token)
            .json(&serde_json::json!({"day": day.to_string()}))
            .send()
            .await
            .unwrap()
    }

    /// `account`'s ledger once it holds `n` entries (newest first).
    pub async fn ledger_of(&self, token: &str, account: &str, n: usize) -> Value {
        eventually(30, "the ledger's entries", || async {
            let v = self
                .get_json(token, &format!("/v1/accounting/accounts/{account}/ledger"))
                .await;
            (v["entries"].as_array()?.len() >= n).then_some(v)
        })
        .await
    }
}

/// The events of `topic` (from the earliest offset) that `keep` accepts,
/// read until `want` of them arrived or `wait` passed.
pub async fn events_where(
    brokers: &str,
    topic: &str,
    want: usize,
    wait: Duration,
    keep: impl Fn(&Envelope) -> bool,
) -> Vec<Envelope> {
    let consumer: StreamConsumer = platform::events::client_config(brokers)
        .set("group.id", format!("test-reader-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while out.len() < want {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(Ok(m)) => {
                let Ok(e) = serde_json::from_slice::<Envelope>(m.payload().unwrap_or_default())
                else {
                    continue;
                };
                if keep(&e) {
                    out.push(e);
                }
            }
        }
    }
    out
}
