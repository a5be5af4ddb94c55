//! Change events: the envelope, the transactional outbox, the relay that
//! publishes it, and the consumer loop that applies events idempotently.
//!
//! Guarantees: an outbox row is written in the transaction that makes the
//! change, so an acknowledged change always has its event. One relay per
//! database publishes at a time (a PostgreSQL advisory lock elects it), in
//! id order, through an idempotent producer with `acks=all`, and stamps
//! rows only after the broker acknowledged them: a broker outage delays
//! events, never loses or reorders them. Delivery is at least once (a crash
//! between acknowledgement and stamp resends); consumers skip versions they
//! have applied.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_query,
    sql_types::{Array, Bool, Text},
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    config::ClientConfig,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer},
    error::RDKafkaErrorCode,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    Message,
};

use serde_json::Value;
use tokio::sync::{watch, Notify};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    db::{PgPool, StoreError},
    telemetry::TraceContext,
};

mod batch;
pub use batch::{ApplyRunFn, Batching, Delivered};

pub use contracts::{
    envelope::{Change, PayloadError},
    topics, Envelope, Op, Source,
};

diesel::table! {
    outbox (id) {
        id -> Int8,
        event_id -> Uuid,
        topic -> Text,
        message_key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        request_id -> Nullable<Text>,
        traceparent -> Nullable<Text>,
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = outbox)]
struct OutboxRow {
    id: i64,
    event_id: Uuid,
    topic: String,
    message_key: String,
    payload: Value,
    request_id: Option<String>,
    traceparent: Option<String>,
}

/// Writes `envelope` to the outbox. Call it inside the transaction that
/// makes the change it describes. The trace context of the work being done,
/// if any, goes with it (the message's `x-request-id` and `traceparent`
/// headers; see [`crate::telemetry`]).
pub fn enqueue(conn: &mut PgConnection, topic: &str, envelope: &Envelope) -> QueryResult<()> {
    enqueue_many(conn, topic, std::slice::from_ref(envelope))
}

/// [`enqueue`] for many events of one topic, in one statement (in order).
pub fn enqueue_many(
    conn: &mut PgConnection,
    topic: &str,
    envelopes: &[Envelope],
) -> QueryResult<()> {
    let cx = crate::telemetry::current();
    insert_outbox(conn, topic, envelopes, |_| cx.as_ref())
}

/// [`enqueue_many`] for events that each go on a trace of their own (those
/// of a run of consumed messages, each continuing its message's trace):
/// `traces[i]` is `envelopes[i]`'s.
pub fn enqueue_traced(
    conn: &mut PgConnection,
    topic: &str,
    envelopes: &[Envelope],
    traces: &[Option<&TraceContext>],
) -> QueryResult<()> {
    debug_assert_eq!(envelopes.len(), traces.len());
    insert_outbox(conn, topic, envelopes, |i| traces.get(i).copied().flatten())
}

fn insert_outbox<'a>(
    conn: &mut PgConnection,
    topic: &str,
    envelopes: &[Envelope],
    trace_of: impl Fn(usize) -> Option<&'a TraceContext>,
) -> QueryResult<()> {
    if envelopes.is_empty() {
        return Ok(());
    }
    let payloads = envelopes
        .iter()
        .map(|e| {
            serde_json::to_value(e)
                .map_err(|err| diesel::result::Error::SerializationError(Box::new(err)))
        })
        .collect::<QueryResult<Vec<Value>>>()?;
    let traces: Vec<Option<&TraceContext>> = (0..envelopes.len()).map(trace_of).collect();
    // unnest keeps the order: the rows' ids, and so their publication,
    // follow `envelopes`.
    crate::db::prepared(
        "INSERT INTO outbox (event_id, topic, request_id, traceparent, message_key, payload) \
         SELECT e.event_id, $1, e.request_id, e.traceparent, e.message_key, e.payload \
         FROM unnest($2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[]) \
              AS e(event_id, message_key, payload, request_id, traceparent)",
    )
    .bind::<Text, _>(topic)
    .bind::<Array<diesel::sql_types::Uuid>, _>(
        envelopes.iter().map(|e| e.event_id).collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(envelopes.iter().map(|e| e.key.as_str()).collect::<Vec<_>>())
    .bind::<Array<diesel::sql_types::Jsonb>, _>(payloads)
    .bind::<Array<diesel::sql_types::Nullable<Text>>, _>(
        traces
            .iter()
            .map(|c| c.map(|c| c.request_id.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<diesel::sql_types::Nullable<Text>>, _>(
        traces
            .iter()
            .map(|c| c.map(TraceContext::traceparent))
            .collect::<Vec<_>>(),
    )
    .execute(conn)?;
    Ok(())
}

/// How many outbox rows still wait for the broker.
pub fn pending(conn: &mut PgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)
}

/// Base librdkafka settings shared by every client.
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "1000");
    crate::kafka::security().apply(&mut cfg);
    cfg
}

/// An idempotent producer (`acks=all`, no reordering on retry) that keeps
/// retrying while the broker is away instead of dropping messages. The
/// relay hands it a whole round of rows at once, so a linger of 5 ms costs
/// a round at most 5 ms; at 1 ms its I/O thread woke so often that it took
/// a tenth of both cores while events streamed.
pub fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(client_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?)
}

/// Creates `topics` if they are missing (`TopicAlreadyExists` is success).
pub async fn ensure_topics(
    brokers: &str,
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let results = admin.create_topics(&new, &opts).await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Wakes the relay right after a commit, so events leave in milliseconds
/// rather than at the next poll.
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn nudge(&self) {
        self.0.notify_one();
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub brokers: String,
    pub database_url: String,
    pub topics: Vec<&'static str>,
    pub partitions: i32,
    pub replication: i32,
    pub poll: Duration,
    pub batch: i64,
    /// After publishing a round, and before marking it published, notify
    /// this channel of the key of each of its events on this topic.
    pub notify: Option<RelayNotify>,
}

/// See [`RelayConfig::notify`]: for a service whose caches are kept
/// coherent by notifications sent after a commit, the relay makes up the
/// ones lost to a crash (a round notified is marked published; one
/// interrupted is published and notified again).
#[derive(Debug, Clone, Copy)]
pub struct RelayNotify {
    pub topic: &'static str,
    pub channel: &'static str,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Elects one relay per database (session advisory lock on a dedicated
/// connection) so that replicas cannot publish one key's events out of order.
const RELAY_LOCK: i64 = 8_120_420_002;

/// Publishes the outbox until `shutdown` turns true, inside a span
/// `outbox_relay` naming its topics.
pub async fn run_relay(cfg: RelayConfig, signal: OutboxSignal, shutdown: watch::Receiver<bool>) {
    let span = tracing::info_span!("outbox_relay", topics = ?cfg.topics);
    relay(cfg, signal, shutdown).instrument(span).await
}

async fn relay(cfg: RelayConfig, signal: OutboxSignal, mut shutdown: watch::Receiver<bool>) {
    let mut leader: Option<PgConnection> = None;
    let mut producer: Option<FutureProducer> = None;
    let mut topics_ready = false;
    let mut backoff = Duration::from_millis(100);
    let metrics = crate::metrics::global();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let step = relay_step(
            &cfg,
            &mut leader,
            &mut producer,
            &mut topics_ready,
            &mut shutdown,
        )
        .await;
        let wait = match step {
            Ok(0) => {
                backoff = Duration::from_millis(100);
                cfg.poll
            }
            Ok(n) => {
                metrics.count(
                    "outbox_published_total",
                    "Outbox events published.",
                    "",
                    n as u64,
                );
                backoff = Duration::from_millis(100);
                continue;
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "outbox relay step failed"
                );
                metrics.count("outbox_relay_errors_total", "Failed relay steps.", "", 1);
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                w
            }
        };
        tokio::select! {
            _ = signal.0.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    flush_before_exit(&cfg, &mut leader, &mut producer, &mut topics_ready).await;
    tracing::info!("outbox relay stopped");
}

/// The longest a stopping relay spends publishing what is left.
const FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// At shutdown the HTTP server has drained, so the outbox holds every
/// change this process acknowledged: the leader publishes it before the
/// process exits (within [`FLUSH_AT_SHUTDOWN`]), rather than leaving it to
/// the next leader's start. What is left after that is not lost: it stays
/// in the outbox for the next relay.
async fn flush_before_exit(
    cfg: &RelayConfig,
    leader: &mut Option<PgConnection>,
    producer: &mut Option<FutureProducer>,
    topics_ready: &mut bool,
) {
    if leader.is_none() {
        return;
    }
    // relay_step stops waiting for acknowledgements when this changes; it
    // never does.
    let (_keep, mut never) = watch::channel(false);
    let deadline = tokio::time::Instant::now() + FLUSH_AT_SHUTDOWN;
    let mut flushed = 0;
    loop {
        let step = tokio::time::timeout_at(
            deadline,
            relay_step(cfg, leader, producer, topics_ready, &mut never),
        )
        .await;
        match step {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => flushed += n,
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "the last outbox flush failed");
                break;
            }
            Err(_) => {
                tracing::warn!("the outbox was not flushed within the shutdown's time");
                break;
            }
        }
    }
    if flushed > 0 {
        tracing::info!(events = flushed, "outbox flushed at shutdown");
    }
}

async fn on_conn<T: Send + 'static>(
    slot: &mut Option<PgConnection>,
    work: impl FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    let mut conn = slot
        .take()
        .ok_or_else(|| anyhow::anyhow!("no relay connection"))?;
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let r = work(&mut conn);
        (conn, r)
    })
    .await
    .map_err(StoreError::Join)?;
    match result {
        Ok(v) => {
            *slot = Some(conn);
            Ok(v)
        }
        // The connection may be broken: drop it, and the leadership with it.
        Err(e) => Err(e.into()),
    }
}

/// One round: become leader if needed, publish up to `batch` rows in order,
/// stamp what the broker acknowledged. Returns how many were published.
async fn relay_step(
    cfg: &RelayConfig,
    leader: &mut Option<PgConnection>,
    producer: &mut Option<FutureProducer>,
    topics_ready: &mut bool,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<usize> {
    // The relay keeps its own connection, outside the pool: the advisory
    // lock lives as long as that session.
    if leader.is_none() {
        let url = cfg.database_url.clone();
        let conn = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<PgConnection>> {
            let mut conn = PgConnection::establish(&url)?;
            let got = sql_query(format!(
                "SELECT pg_try_advisory_lock({RELAY_LOCK}) AS locked"
            ))
            .get_result::<Locked>(&mut conn)?;
            Ok(got.locked.then_some(conn))
        })
        .await??;
        match conn {
            Some(c) => {
                tracing::info!("outbox relay elected");
                *leader = Some(c);
            }
            None => return Ok(0), // another replica publishes
        }
    }
    if !*topics_ready {
        ensure_topics(&cfg.brokers, &cfg.topics, cfg.partitions, cfg.replication).await?;
        *topics_ready = true;
    }
    if producer.is_none() {
        *producer = Some(self::producer(&cfg.brokers)?);
    }
    let batch = cfg.batch;
    let rows: Vec<OutboxRow> = on_conn(leader, move |c| {
        outbox::table
            .filter(outbox::published_at.is_null())
            .order(outbox::id.asc())
            .limit(batch)
            .select(OutboxRow::as_select())
            .load(c)
    })
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let p = producer.as_ref().expect("set above");
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in &rows {
        let payload = serde_json::to_vec(&row.payload)?;
        let event_id = row.event_id.to_string();
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "event_id",
            value: Some(&event_id),
        });
        if let Some(id) = &row.request_id {
            headers = headers.insert(Header {
                key: crate::telemetry::REQUEST_ID_HEADER,
                value: Some(id),
            });
        }
        if let Some(tp) = &row.traceparent {
            headers = headers.insert(Header {
                key: crate::telemetry::TRACEPARENT_HEADER,
                value: Some(tp),
            });
        }
        let record = FutureRecord::to(&row.topic)
            .key(&row.message_key)
            .payload(&payload)
            .headers(headers);
        match p.send_result(record) {
            Ok(d) => deliveries.push((row.id, d)),
            Err((e, _)) => {
                tracing::warn!(error = %crate::problem::chain(&e), "producer queue refused a message");
                break;
            }
        }
    }
    // Stamp the acknowledged prefix only: a later row must never be marked
    // published while an earlier one may still be resent.
    let mut acked = Vec::with_capacity(deliveries.len());
    let mut failure = None;
    for (id, delivery) in deliveries {
        let outcome = tokio::select! {
            r = delivery => r,
            _ = shutdown.changed() => break,
        };
        match outcome {
            Ok(Ok(_)) => acked.push(id),
            Ok(Err((e, _))) => {
                failure = Some(anyhow::anyhow!("broker refused event {id}: {e}"));
                break;
            }
            Err(_) => {
                failure = Some(anyhow::anyhow!("delivery of event {id} was cancelled"));
                break;
            }
        }
    }
    let n = acked.len();
    if n > 0 {
        let now: DateTime<Utc> = Utc::now();
        let notify = cfg.notify.map(|nf| {
            let keys: Vec<String> = rows[..n]
                .iter()
                .filter(|r| r.topic == nf.topic)
                .map(|r| r.message_key.clone())
                .collect();
            (nf.channel, keys)
        });
        on_conn(leader, move |c| {
            // Each its own statement: a notification commits at once,
            // without holding other notifiers through this stamp's flush.
            if let Some((channel, keys)) = notify {
                crate::coherent::notify(c, channel, &keys)?;
            }
            diesel::update(outbox::table.filter(outbox::id.eq_any(acked)))
                .set(outbox::published_at.eq(now))
                .execute(c)
        })
        .await?;
    }
    if let Some(e) = failure {
        // A fatal producer error poisons the instance: start a fresh one.
        *producer = None;
        return Err(e);
    }
    Ok(n)
}

/// What a consumer does with one event, on a pooled connection in the
/// blocking pool. It must be idempotent (skip versions already applied):
/// the loop retries failures and may see an event again after a restart.
pub type ApplyFn =
    Arc<dyn Fn(&mut PgConnection, &str, &Envelope) -> anyhow::Result<()> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    /// Used to create the topics when they do not exist yet: a consumer
    /// subscribed to a missing topic would only notice it minutes later.
    pub partitions: i32,
    pub replication: i32,
}

/// How long a fetch may wait for new messages (`KAFKA_FETCH_WAIT_MS`,
/// default 50). Apache Kafka answers a waiting fetch as soon as a message
/// arrives, so there this only sets how often an idle consumer asks; tansu
/// answers a fetch only after half of this wait (or all of it, under
/// 250 ms), so there it bounds the delivery delay. librdkafka's default of
/// 500 ms made a change take up to half a second per hop on tansu.
pub fn fetch_wait_ms() -> anyhow::Result<u32> {
    crate::config::parse_or("KAFKA_FETCH_WAIT_MS", 50)
}

/// The context of the platform's consumers: partitions are taken and given
/// back incrementally (`cooperative-sticky`), without asking librdkafka
/// which protocol is in force. Its default rebalance handler asks, and when
/// a consumer was dropped during a rebalance (a service stopped mid-way,
/// as tests stop theirs) the question waited on librdkafka's main thread,
/// itself waiting for the handler: the process hung for good.
pub struct CooperativeContext;

impl rdkafka::ClientContext for CooperativeContext {}

impl ConsumerContext for CooperativeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        partitions: &mut rdkafka::TopicPartitionList,
    ) {
        use rdkafka::types::RDKafkaRespErr::*;
        let result = match err {
            RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => consumer.incremental_assign(partitions),
            RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.incremental_unassign(partitions),
            other => {
                tracing::warn!(error = ?other, "rebalance failed; giving the partitions back");
                consumer.incremental_unassign(partitions)
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %crate::problem::chain(&e), "applying a rebalance failed");
        }
    }
}

pub type PlatformConsumer = StreamConsumer<CooperativeContext>;

/// The consumer's static group membership (`CONSUMER_INSTANCE_ID`, unset
/// by default): a name that stays the same when the process restarts and
/// differs between the replicas of a service (Kubernetes: the pod's name;
/// `make up`: the service and its port). A restarted replica then takes its
/// partitions back at once, with no rebalance, even when its predecessor
/// was killed without leaving the group (SIGKILL, the OOM killer). tansu
/// 0.6.0 needs it: there a member that joins while a dead one is still in
/// the group is given no partitions, and keeps none after the dead one's
/// session expires (`make chaos`, case `sigkill`). On Apache Kafka it
/// spares the rebalances of rolling restarts; a member that does not come
/// back holds its partitions until `session.timeout.ms` (10 s).
pub fn consumer_instance_id() -> anyhow::Result<Option<String>> {
    crate::config::parse_opt("CONSUMER_INSTANCE_ID")
}

pub fn stream_consumer(brokers: &str, group_id: &str) -> anyhow::Result<PlatformConsumer> {
    let mut config = client_config(brokers);
    if let Some(id) = consumer_instance_id()? {
        config.set("group.instance.id", id);
    }
    Ok(config
        .set("fetch.wait.max.ms", fetch_wait_ms()?.to_string())
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Offsets are stored by hand, after the event's transaction commits.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A replica that dies without leaving the group (SIGKILL, a lost
        // node) holds its partitions until its session times out: 10 s
        // rather than librdkafka's 45, so that its partitions move on soon.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .create_with_context(CooperativeContext)?)
}

/// Consumes `cfg.topics` into the service's database until shutdown: apply,
/// then store the offset. What cannot be applied is set aside on
/// `<topic>.dlq` (see [`crate::dlq`]): at once when the message is wrong,
/// after `CONSUMER_RETRY_SECONDS` of retries when the database is; the
/// partition then moves on.
pub async fn run_consumer(
    cfg: ConsumerConfig,
    pool: PgPool,
    apply: ApplyFn,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Each message gets a `consume` span of its own inside this one.
    let span = tracing::info_span!("consumer", group = %cfg.group_id, topics = ?cfg.topics);
    consume(cfg, pool, apply, None, shutdown)
        .instrument(span)
        .await
}

/// [`run_consumer`], applying the messages that are waiting together, in
/// one transaction (see [`Batching`]): a backlog is applied many times
/// faster, and a message that fails still gets the one-at-a-time rule.
pub async fn run_batched_consumer(
    cfg: ConsumerConfig,
    pool: PgPool,
    apply: ApplyFn,
    batching: Batching,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let span = tracing::info_span!("consumer", group = %cfg.group_id, topics = ?cfg.topics);
    consume(cfg, pool, apply, Some(batching), shutdown)
        .instrument(span)
        .await
}

async fn consume(
    cfg: ConsumerConfig,
    pool: PgPool,
    apply: ApplyFn,
    batching: Option<Batching>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    let dlq_topics: Vec<String> = topics.iter().map(|t| crate::dlq::topic_of(t)).collect();
    let to_create: Vec<&str> = topics
        .iter()
        .copied()
        .chain(dlq_topics.iter().map(String::as_str))
        .collect();
    let mut backoff = Duration::from_millis(200);
    while let Err(e) =
        ensure_topics(&cfg.brokers, &to_create, cfg.partitions, cfg.replication).await
    {
        tracing::warn!(
            error = format!("{e:#}"),
            "cannot reach the broker to create topics; retrying"
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    let consumer = stream_consumer(&cfg.brokers, &cfg.group_id)?;
    consumer.subscribe(&topics)?;
    let dead_letters = producer(&cfg.brokers)?;
    let handling = Handling {
        pool: &pool,
        apply: &apply,
        dead_letters: &dead_letters,
        group_id: &cfg.group_id,
        retry_limit: crate::dlq::retry_limit()?,
    };
    let most = batching.as_ref().map_or(1, |b| b.most);
    loop {
        let first = tokio::select! {
            m = consumer.recv() => m,
            _ = shutdown.changed() => break,
        };
        let first = match first {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %crate::problem::chain(&e), "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // What has arrived already joins it, without waiting for more.
        let mut run = vec![first];
        while run.len() < most {
            match futures::FutureExt::now_or_never(consumer.recv()) {
                Some(Ok(m)) => run.push(m),
                Some(Err(e)) => {
                    tracing::warn!(error = %crate::problem::chain(&e), "consumer error");
                    break;
                }
                None => break,
            }
        }
        let started = std::time::Instant::now();
        if let Some(b) = &batching {
            if run.len() > 1 {
                match b.apply_run(&handling, &run, &mut shutdown).await {
                    batch::Outcome::Applied => {
                        for msg in &run {
                            consumer.store_offset_from_message(msg)?;
                        }
                        busy(&cfg.group_id, started);
                        continue;
                    }
                    batch::Outcome::Stopped => return commit_and_stop(&consumer),
                    // Nothing of it was kept: one message at a time below.
                    batch::Outcome::Failed => {}
                }
            }
        }
        for msg in &run {
            if let Stopped::Yes = handling.handle_in_span(msg, &mut shutdown).await {
                return commit_and_stop(&consumer);
            }
            consumer.store_offset_from_message(msg)?;
        }
        busy(&cfg.group_id, started);
    }
    commit_and_stop(&consumer)
}

/// Counts the time since `started` as the consumer's busy time
/// (`consumer_busy_microseconds_total{group}`): from holding a message to
/// its offset stored, waits for the broker excluded. Against the wall
/// clock it tells whether a consumer that lags is slow itself or is fed
/// slowly; with `events_applied_total` it gives the rate it can apply at.
fn busy(group: &str, started: std::time::Instant) {
    crate::metrics::global().count(
        "consumer_busy_microseconds_total",
        "Time consumers spent applying messages (broker waits excluded), by group.",
        group,
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
}

/// The span a message is handled in, and the trace it goes on in.
fn span_of(msg: &rdkafka::message::BorrowedMessage<'_>) -> (tracing::Span, TraceContext) {
    // One span per message: what it logs (retries, a dead letter) and
    // what applying it logs carry where it came from.
    let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
    let span = tracing::info_span!(
        "consume",
        topic = msg.topic(),
        partition = msg.partition(),
        offset = msg.offset(),
        key = %key,
        request_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    // The event's trace goes on: what handling it logs, calls and
    // writes (events included) carry the same trace id.
    let cx = TraceContext::continuing(
        header_of(msg, crate::telemetry::TRACEPARENT_HEADER).as_deref(),
        header_of(msg, crate::telemetry::REQUEST_ID_HEADER),
    );
    span.record("request_id", tracing::field::display(&cx.request_id));
    span.record("trace_id", tracing::field::display(&cx.trace_id));
    (span, cx)
}

/// The text of `msg`'s header `name`, if it has one.
fn header_of(msg: &rdkafka::message::BorrowedMessage<'_>, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Why a message is not an event to apply: it is set aside, never retried.
struct Refusal {
    why: String,
    /// An envelope whose source is not a writer of its topic.
    forged: bool,
}

impl Refusal {
    fn malformed(why: String) -> Self {
        Self { why, forged: false }
    }
}

/// What [`run_consumer`] needs to handle one message.
struct Handling<'a> {
    pool: &'a PgPool,
    apply: &'a ApplyFn,
    dead_letters: &'a FutureProducer,
    group_id: &'a str,
    retry_limit: Duration,
}

/// Whether handling a message was cut short by the shutdown.
enum Stopped {
    Yes,
    No,
}

impl Handling<'_> {
    /// [`Self::handle`] in the message's own span and trace.
    async fn handle_in_span(
        &self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Stopped {
        let (span, cx) = span_of(msg);
        crate::telemetry::in_context(cx, self.handle(msg, shutdown))
            .instrument(span)
            .await
    }

    /// The message's envelope, if it is one and its source is a writer of
    /// its topic; otherwise why it is set aside.
    fn envelope_of(
        &self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
    ) -> Result<Envelope, Refusal> {
        let topic = msg.topic();
        // Kafka's ACLs say who may write a topic; the envelope says who did,
        // and only the topic's owner is believed (a neighbour service that
        // could write `iam.user.v1` must not make anyone a superuser).
        match msg.payload().map(serde_json::from_slice::<Envelope>) {
            None => Err(Refusal::malformed("the message has no payload".into())),
            Some(Err(e)) => Err(Refusal::malformed(format!("not an event envelope: {e}"))),
            Some(Ok(e)) => match topics::writers(topic) {
                writers if writers.contains(&e.source.service.as_str()) => Ok(e),
                writers => Err(Refusal {
                    why: format!(
                        "source.service {:?} is not a writer of {topic} ({})",
                        e.source.service,
                        if writers.is_empty() {
                            "none known".to_owned()
                        } else {
                            writers.join(", ")
                        }
                    ),
                    forged: true,
                }),
            },
        }
    }

    /// Applies `msg`, retrying what may pass, or sets it aside on its
    /// `<topic>.dlq`; either way the partition may then move on.
    async fn handle(
        &self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Stopped {
        let metrics = crate::metrics::global();
        let topic = msg.topic().to_owned();
        let envelope = match self.envelope_of(msg) {
            Ok(envelope) => envelope,
            Err(refusal) => return self.refuse(msg, refusal, shutdown).await,
        };
        let mut backoff = Duration::from_millis(100);
        let first_failure = std::time::Instant::now();
        let failure = loop {
            let (pool, apply, env, t) = (
                self.pool.clone(),
                self.apply.clone(),
                envelope.clone(),
                topic.clone(),
            );
            let outcome =
                crate::db::with_conn(&pool, move |c| -> anyhow::Result<()> { apply(c, &t, &env) })
                    .await;
            match outcome {
                Ok(()) => {
                    metrics.count(
                        "events_applied_total",
                        "Events applied by consumers.",
                        &topic,
                        1,
                    );
                    break None;
                }
                Err(e) if !crate::dlq::is_transient(&e) => break Some(format!("{e:#}")),
                Err(e) if first_failure.elapsed() >= self.retry_limit => {
                    break Some(format!("still failing after {:?}: {e:#}", self.retry_limit))
                }
                Err(e) => {
                    tracing::warn!(topic = %topic, key = %envelope.key, error = format!("{e:#}"), "applying an event failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Stopped::Yes,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        match failure {
            Some(error) => self.set_aside(msg, &error, shutdown).await,
            None => Stopped::No,
        }
    }

    /// Sets aside a message that is not an event to apply, counting it in
    /// `events_refused_total` when its source is not the topic's owner
    /// (once: a run that fails hands its messages here one at a time).
    async fn refuse(
        &self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        refusal: Refusal,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Stopped {
        if refusal.forged {
            crate::metrics::global().count(
                "events_refused_total",
                "Events set aside because their source is not the topic's owner.",
                msg.topic(),
                1,
            );
        }
        self.set_aside(msg, &refusal.why, shutdown).await
    }

    /// Sets `msg` aside on its `<topic>.dlq`, acknowledged by the broker,
    /// before the offset moves on; retried until it is, or the shutdown.
    async fn set_aside(
        &self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        error: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Stopped {
        let mut backoff = Duration::from_millis(200);
        while let Err(e) = crate::dlq::set_aside(self.dead_letters, msg, self.group_id, error).await
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "setting a message aside failed; retrying"
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return Stopped::Yes,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        Stopped::No
    }
}

fn commit_and_stop(consumer: &PlatformConsumer) -> anyhow::Result<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %crate::problem::chain(&e), "final offset commit failed"),
    }
    tracing::info!("consumer stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serialises_with_debezium_field_names() {
        let e = Envelope::new(
            Op::Update,
            "user",
            "42",
            3,
            Source {
                service: "authenticator".into(),
                table: "accounts".into(),
            },
            Some(serde_json::json!({"a": 1})),
            Some(serde_json::json!({"a": 2})),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["op"], "u");
        assert_eq!(v["key"], "42");
        assert_eq!(v["version"], 3);
        assert_eq!(v["source"]["table"], "accounts");
        let back: Envelope = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
