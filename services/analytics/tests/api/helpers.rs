use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, Utc};
use contracts::{
    topics::{
        self,
        accounting::{Kind, Transaction},
        task::{Change, Task, TaskEvent, COMPLETED},
    },
    Envelope, Op, Source,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use testkit::TestDatabase;
use uuid::Uuid;

pub use testkit::{assert_problem, eventually, Person};

/// The authenticator and the safekeeper ([`testkit::TestPlatform`]), and
/// the analytics service, each with its own database, on the shared
/// broker.
pub struct TestPlatform {
    base: testkit::TestPlatform,
    pub analytics: String,
    /// Held for the test's length: dropping them ends the database and
    /// the app.
    _db: TestDatabase,
    _app: testkit::analytics::Running,
    producer: FutureProducer,
}

impl std::ops::Deref for TestPlatform {
    type Target = testkit::TestPlatform;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

pub async fn spawn() -> TestPlatform {
    spawn_with(false).await
}

/// The platform with the analytics dashboard's OAuth2 client registered
/// at the safekeeper and configured in the service.
pub async fn spawn_with_dashboard() -> TestPlatform {
    spawn_with(true).await
}

async fn spawn_with(dashboard: bool) -> TestPlatform {
    let base = testkit::TestPlatform::builder().build().await;
    let db = testkit::analytics::database();
    let mut o = testkit::analytics::Options::new(base.brokers.clone(), &db, &base.sk);
    o.issuer = testkit::safekeeper::ISSUER.into();
    o.audience = testkit::safekeeper::AUDIENCE.into();
    if dashboard {
        let c =
            testkit::dashboard::config("analytics", &base.sk, o.listener.port(), "read:analytics");
        base.create_client(testkit::dashboard::client_registration(&c))
            .await;
        o.dashboard = Some(c);
    }
    let app = testkit::analytics::spawn(o).await;
    let producer = platform::events::producer(&base.brokers).expect("a producer");
    TestPlatform {
        analytics: app.address.clone(),
        base,
        _db: db,
        _app: app,
        producer,
    }
}

/// `YYYY-MM-DD`.
pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Noon (UTC) of `day`.
pub fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

/// The ledger's sequence numbers: each transaction made here is newer
/// than the one before.
static SEQ: AtomicI64 = AtomicI64::new(1);

/// One account's ledger, as the accounting service writes it: each entry
/// moves the balance and is published with the next sequence number.
pub struct Ledger {
    pub account: Uuid,
    pub balance_cents: i64,
}

impl Ledger {
    pub fn new() -> Self {
        Self {
            account: Uuid::now_v7(),
            balance_cents: 0,
        }
    }

    /// The next entry: `amount_cents` signed as the worker sees it.
    pub fn entry(
        &mut self,
        kind: Kind,
        amount_cents: i64,
        task_id: Option<Uuid>,
        business_day: NaiveDate,
    ) -> Envelope {
        self.balance_cents += amount_cents;
        let t = Transaction {
            id: Uuid::now_v7(),
            account_id: self.account,
            kind,
            amount_cents,
            balance_after_cents: self.balance_cents,
            task_id,
            description: format!("{kind:?}"),
            business_day,
            created_at: noon(business_day),
        };
        transaction(&t, SEQ.fetch_add(1, Ordering::SeqCst))
    }

    /// A fee of `cents` charged on `day`.
    pub fn fee(&mut self, cents: i64, day: NaiveDate) -> Envelope {
        self.entry(Kind::Fee, -cents, Some(Uuid::now_v7()), day)
    }

    /// A reward of `cents` paid on `day` for `task`.
    pub fn reward(&mut self, cents: i64, task: Uuid, day: NaiveDate) -> Envelope {
        self.entry(Kind::Reward, cents, Some(task), day)
    }
}

/// `t` as `accounting.transaction.v1` carries it.
pub fn transaction(t: &Transaction, version: i64) -> Envelope {
    Envelope::new(
        Op::Create,
        "transaction",
        t.account_id.to_string(),
        version,
        Source {
            service: "accounting".into(),
            table: "ledger_entry".into(),
        },
        None,
        Some(serde_json::to_value(t).unwrap()),
    )
}

/// A `task.v1` event of a completed task named `title`.
pub fn task_event(id: Uuid, title: &str, version: i64) -> Envelope {
    let task = Task {
        id,
        title: title.into(),
        price_cents: 1_000,
        assignment_fee_cents: 100,
        completion_reward_cents: 1_000,
        assignee_id: Some(Uuid::now_v7()),
        status: COMPLETED.into(),
        updated_at: Utc::now(),
    };
    let change = Change::StatusChanged {
        from: "In Progress".into(),
        to: COMPLETED.into(),
        by: Uuid::now_v7(),
    };
    Envelope::new(
        Op::Update,
        "task",
        id.to_string(),
        version,
        Source {
            service: "task".into(),
            table: "task".into(),
        },
        None,
        Some(serde_json::to_value(TaskEvent { task, change }).unwrap()),
    )
}

impl TestPlatform {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.analytics, path)
    }

    /// Publishes `e` on `topic`, keyed as its writer keys it.
    pub async fn publish(&self, topic: &str, e: &Envelope) {
        let payload = serde_json::to_vec(e).unwrap();
        self.producer
            .send(
                FutureRecord::to(topic).key(&e.key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("the broker takes the event");
    }

    /// Publishes each of `events` on `accounting.transaction.v1`, in order.
    pub async fn publish_transactions(&self, events: &[Envelope]) {
        for e in events {
            self.publish(topics::ACCOUNTING_TRANSACTION, e).await;
        }
    }

    /// An account with `role` and its token for `scopes`, once the
    /// analytics service knows the account (it has applied its events).
    pub async fn caller(&self, role: &str, scopes: &str) -> (Person, String) {
        let p = self.base.person(Some(role)).await;
        let token = self.base.token(&p, scopes).await;
        eventually(60, "the account in the analytics read model", || async {
            let r = self
                .get(&token, "/v1/analytics/workers/negative-balance")
                .await;
            (r.status() != StatusCode::UNAUTHORIZED).then_some(())
        })
        .await;
        (p, token)
    }

    /// An admin's `read:analytics` token.
    pub async fn admin(&self) -> String {
        self.caller("admin", "read:analytics").await.1
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

    /// `path`'s answer once `ready` says the events it waits for are in.
    pub async fn report_when(
        &self,
        token: &str,
        path: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(30, path, || async {
            let v = self.get_json(token, path).await;
            ready(&v).then_some(v)
        })
        .await
    }
}
