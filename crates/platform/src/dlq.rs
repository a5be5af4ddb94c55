//! Dead letters: the messages a consumer could not apply, set aside on
//! `<topic>.dlq` so that the partition moves on and later events are not
//! held up, and nothing is lost.
//!
//! - A **permanent** failure (not an envelope, not the topic's owner's, or
//!   an event the service cannot apply: bad JSON in `after`, a rule it
//!   breaks) is set aside at once.
//! - A **transient** one (no database connection, a dropped connection, a
//!   deadlock or serialisation failure) is retried with back-off for
//!   `CONSUMER_RETRY_SECONDS` (default 300), then set aside too.
//!
//! A dead letter is the original record (key and bytes, untouched) with
//! headers naming why and whence: `dlq.error`, `dlq.topic`,
//! `dlq.partition`, `dlq.offset`, `dlq.group`. It is written (and
//! acknowledged by the broker) before the original's offset is stored.
//! `<service> dlq list TOPIC` shows them; `<service> dlq replay TOPIC`
//! writes them back to `TOPIC` after a fix (once each: the replay's own
//! consumer group remembers where it stopped).

use std::time::Duration;

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    Message, Offset, TopicPartitionList,
};

use crate::{db::StoreError, events::client_config};

/// The dead-letter topic of `topic`.
pub fn topic_of(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// How long a transient failure is retried before its message is set
/// aside (`CONSUMER_RETRY_SECONDS`, default 300).
pub fn retry_limit() -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(crate::config::parse_or(
        "CONSUMER_RETRY_SECONDS",
        300,
    )?))
}

/// Whether applying may succeed later unchanged: the database was away or
/// busy, not the event wrong.
pub fn is_transient(e: &anyhow::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as D};
    e.chain().any(|cause| {
        if cause.downcast_ref::<StoreError>().is_some() {
            return true;
        }
        match cause.downcast_ref::<D>() {
            Some(D::DatabaseError(kind, _)) => matches!(
                kind,
                K::ClosedConnection | K::UnableToSendCommand | K::SerializationFailure | K::Unknown
            ),
            Some(D::BrokenTransactionManager | D::AlreadyInTransaction) => true,
            _ => false,
        }
    })
}

/// Writes `msg` to its dead-letter topic with `error`, and waits until the
/// broker has it (the caller stores the original's offset only then).
pub async fn set_aside(
    producer: &FutureProducer,
    msg: &BorrowedMessage<'_>,
    group: &str,
    error: &str,
) -> anyhow::Result<()> {
    let dlq = topic_of(msg.topic());
    let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "dlq.error",
            value: Some(error),
        })
        .insert(Header {
            key: "dlq.topic",
            value: Some(msg.topic()),
        })
        .insert(Header {
            key: "dlq.partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "dlq.offset",
            value: Some(&offset),
        })
        .insert(Header {
            key: "dlq.group",
            value: Some(group),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&dlq).headers(headers);
    if let Some(k) = msg.key() {
        record = record.key(k);
    }
    if let Some(p) = msg.payload() {
        record = record.payload(p);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("writing to {dlq}: {e}"))?;
    crate::metrics::global().count(
        "events_dead_lettered_total",
        "Messages a consumer could not apply, set aside on <topic>.dlq.",
        msg.topic(),
        1,
    );
    tracing::error!(
        topic = msg.topic(),
        partition = msg.partition(),
        offset = msg.offset(),
        error,
        dead_letter_topic = %dlq,
        "a message could not be applied; set aside as a dead letter"
    );
    Ok(())
}

/// One dead letter, as `dlq list` shows it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub error: String,
    pub origin: String,
    pub payload: Vec<u8>,
}

fn header(msg: &BorrowedMessage<'_>, name: &str) -> String {
    msg.headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        })
        .unwrap_or_default()
}

/// Reads `dlq` from where `consumer`'s group stopped (the beginning for a
/// new group) to the end it has now. Answers the letters and the offsets
/// to remember.
fn read_all(
    consumer: &BaseConsumer,
    dlq: &str,
) -> anyhow::Result<(Vec<DeadLetter>, TopicPartitionList)> {
    let wait = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(dlq), wait)
        .context("reading the dead-letter topic's metadata")?;
    let mut wanted = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            wanted.add_partition(dlq, p.id());
        }
    }
    let committed = consumer.committed_offsets(wanted.clone(), wait)?;
    let mut start = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for e in committed.elements() {
        let from = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        let (_, high) = consumer.fetch_watermarks(dlq, e.partition(), wait)?;
        if from < high {
            ends.insert(e.partition(), high);
        }
        start.add_partition_offset(dlq, e.partition(), Offset::Offset(from))?;
    }
    consumer.assign(&start)?;
    let mut next = start.clone();
    let mut letters = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "timed out reading {dlq}"
        );
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg?;
        next.set_partition_offset(dlq, msg.partition(), Offset::Offset(msg.offset() + 1))?;
        if ends
            .get(&msg.partition())
            .is_some_and(|end| msg.offset() + 1 >= *end)
        {
            ends.remove(&msg.partition());
        }
        letters.push(DeadLetter {
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            error: header(&msg, "dlq.error"),
            origin: format!(
                "{}/{}@{}",
                header(&msg, "dlq.topic"),
                header(&msg, "dlq.partition"),
                header(&msg, "dlq.offset")
            ),
            payload: msg.payload().unwrap_or_default().to_vec(),
        });
    }
    Ok((letters, next))
}

fn reader(brokers: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?)
}

/// Every dead letter of `topic` (read with a throw-away group).
pub fn list(brokers: &str, topic: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let dlq = topic_of(topic);
    let consumer = reader(
        brokers,
        &format!("dlq-list-{}", uuid::Uuid::new_v4().simple()),
    )?;
    Ok(read_all(&consumer, &dlq)?.0)
}

/// Writes the dead letters of `topic` not replayed before back to `topic`
/// (key and bytes as they were), then remembers how far it got (group
/// `dlq-replay-<topic>`). Answers how many it wrote.
pub async fn replay(brokers: &str, topic: &str) -> anyhow::Result<usize> {
    let dlq = topic_of(topic);
    let (b, t) = (brokers.to_owned(), dlq.clone());
    let (consumer, letters, next) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let consumer = reader(&b, &format!("dlq-replay-{t}"))?;
        let (letters, next) = read_all(&consumer, &t)?;
        Ok((consumer, letters, next))
    })
    .await??;
    let producer = crate::events::producer(brokers)?;
    for l in &letters {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).payload(&l.payload);
        if let Some(k) = &l.key {
            record = record.key(k);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("writing back to {topic}: {e}"))?;
    }
    if !letters.is_empty() {
        consumer.commit(&next, CommitMode::Sync)?;
    }
    Ok(letters.len())
}

/// `<service> dlq list TOPIC` and `<service> dlq replay TOPIC`, for the
/// services' command lines. `None` when `args` is not a `dlq` command.
pub async fn command(brokers: &str, args: &[String]) -> Option<anyhow::Result<()>> {
    let (verb, topic) = match args {
        [first, verb, topic] if first == "dlq" => (verb.as_str(), topic.as_str()),
        [first, ..] if first == "dlq" => {
            return Some(Err(anyhow::anyhow!("usage: dlq list|replay TOPIC")))
        }
        _ => return None,
    };
    Some(match verb {
        "list" => {
            let (b, t) = (brokers.to_owned(), topic.to_owned());
            match tokio::task::spawn_blocking(move || list(&b, &t)).await {
                Ok(Ok(letters)) => {
                    for l in &letters {
                        println!(
                            "{}@{}\tfrom {}\tkey {}\t{}",
                            l.partition,
                            l.offset,
                            l.origin,
                            l.key.as_deref().unwrap_or("-"),
                            l.error
                        );
                    }
                    println!("{} dead letter(s) on {}", letters.len(), topic_of(topic));
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            }
        }
        "replay" => replay(brokers, topic).await.map(|n| {
            println!("{n} dead letter(s) written back to {topic}");
        }),
        other => Err(anyhow::anyhow!(
            "unknown dlq command {other:?}: list or replay"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_trouble_is_transient_and_bad_events_are_not() {
        let bad_json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert!(!is_transient(&anyhow::Error::from(bad_json)));
        assert!(!is_transient(&anyhow::anyhow!("user event has no state")));
        let closed = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection".to_owned()),
        );
        assert!(is_transient(
            &anyhow::Error::from(closed).context("applying")
        ));
        let unique = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate".to_owned()),
        );
        assert!(!is_transient(&anyhow::Error::from(unique)));
        assert_eq!(topic_of("iam.user.v1"), "iam.user.v1.dlq");
    }
}
