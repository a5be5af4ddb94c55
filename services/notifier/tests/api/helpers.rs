use std::time::Duration;

use contracts::topics::notification::Notification;
use diesel::{Connection, PgConnection};
use platform::events::{self, topics, Envelope, Op, Source};
use rdkafka::producer::FutureRecord;
use testkit::{SmtpSink, TestDatabase};
use uuid::Uuid;

pub use notifier::store::Delivery;

/// A notifier with a sink as its relay, on a broker.
pub struct Harness {
    pub sink: SmtpSink,
    pub app: testkit::notifier::Running,
    pub db: TestDatabase,
    pub brokers: String,
}

/// A notifier on the shared broker.
pub async fn start() -> Harness {
    start_with(testkit::shared_brokers(), |_| {}).await
}

/// A notifier on `brokers`, its options changed by `change`.
pub async fn start_with(
    brokers: String,
    change: impl FnOnce(&mut testkit::notifier::Options),
) -> Harness {
    let sink = SmtpSink::start();
    let db = testkit::notifier::database();
    let mut o = testkit::notifier::Options::new(brokers.clone(), &db, sink.port());
    change(&mut o);
    let app = testkit::notifier::spawn(o).await;
    Harness {
        sink,
        app,
        db,
        brokers,
    }
}

/// A notification to `to`, with a subject and a body of its own.
pub fn notification(kind: &str, to: &[&str]) -> Notification {
    let id = Uuid::now_v7();
    Notification {
        id,
        kind: kind.into(),
        to: to.iter().map(|t| t.to_string()).collect(),
        subject: format!("Your {kind} {}", &id.simple().to_string()[20..]),
        body: format!("Hello.\n.A line that begins with a dot.\nNotification {id}.\n"),
    }
}

/// The event that carries `n`, written by `service`.
pub fn envelope(service: &str, n: &Notification) -> Envelope {
    Envelope::new(
        Op::Create,
        "notification",
        n.id.to_string(),
        1,
        Source {
            service: service.into(),
            table: "notifications".into(),
        },
        None,
        Some(serde_json::to_value(n).unwrap()),
    )
}

/// Publishes `envelope` on `notification.v1` under message key `key`.
pub async fn publish_keyed(brokers: &str, key: &str, envelope: &Envelope) {
    let producer = events::producer(brokers).unwrap();
    let payload = serde_json::to_vec(envelope).unwrap();
    producer
        .send(
            FutureRecord::to(topics::NOTIFICATION)
                .key(key)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Publishes `n` as written by `service`, keyed by its id.
pub async fn publish(brokers: &str, service: &str, n: &Notification) {
    publish_keyed(brokers, &n.id.to_string(), &envelope(service, n)).await
}

/// The `Message-ID` the notifier gives notification `id` (the default
/// `MAIL_FROM` is at `localhost`).
pub fn message_id(id: Uuid) -> String {
    notifier::mail::message_id(id, "localhost")
}

impl Harness {
    /// The delivery of notification `id`, if the notifier recorded it.
    pub fn delivery(&self, id: Uuid) -> Option<Delivery> {
        let mut conn = PgConnection::establish(&self.db.url).unwrap();
        notifier::store::delivery(&mut conn, id).unwrap()
    }

    /// Waits until the delivery of `id` is `status`, and returns it.
    pub async fn wait_for_status(&self, id: Uuid, status: &str) -> Delivery {
        testkit::eventually(30, &format!("delivery {id} {status}"), || {
            let d = self.delivery(id).filter(|d| d.status == status);
            async move { d }
        })
        .await
    }
}
