//! Group commit of `POST /event`: requests hand their event to a writer
//! thread, which applies whatever has queued (up to `EVENT_BATCH_MAX`,
//! waiting up to `EVENT_BATCH_LINGER_US` for more) in one transaction
//! ([`store::apply_batch`]), and answers each request only after the
//! commit: `200` still means durable, but one WAL flush covers many events.
//! A batch is first tried optimistically (no savepoints, its users and
//! events stored by one statement each); if anything in it fails, it is
//! rolled back and applied again with one savepoint per event.
//!
//! Each writer owns a database connection and the users whose hash falls to
//! it, so one user's events are applied in arrival order by one writer. In
//! the second try, an event that failed inside its savepoint, and every
//! event of a batch that was rolled back, is applied again alone in a
//! transaction of its own ([`store::apply_event`]), so that one bad event
//! never sinks the others.
//! When a commit fails without an answer (the connection was lost), the
//! batch's outcome is unknown: its requests get `503`, and a client resends
//! with the same `event_id`.
//!
//! A queue is bounded in length (`EVENT_QUEUE`) and in time
//! (`EVENT_QUEUE_WAIT_MS`): an event that waited longer than that for its
//! writer is answered `503` unapplied when the writer reaches it in a full
//! batch (a queue stands behind it), so that under overload the queue
//! sheds what it cannot serve in time instead of making every admitted
//! request wait behind it.

use std::{
    sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    time::{Duration, Instant},
};

use diesel::{connection::SimpleConnection, Connection, PgConnection};
use tokio::sync::oneshot;

use crate::{
    domain::{Event, RulesConfig},
    error::ApiError,
    store::{self, BatchError, BatchMode, BatchOutcome, EventResult},
};

/// How events are committed together.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Writer threads (0: every request commits its own transaction).
    pub writers: usize,
    /// Most events in one transaction.
    pub max: usize,
    /// How long a writer waits for more events once it has one.
    pub linger: Duration,
    /// Events that may wait for each writer; more are answered `503`.
    pub queue: usize,
    /// How long an event may wait for its writer before it is answered
    /// `503` unapplied (`None`: as long as it takes).
    pub max_wait: Option<Duration>,
}

type Reply = oneshot::Sender<Result<EventResult, ApiError>>;

struct Job {
    event: Event,
    reply: Reply,
    queued: Instant,
}

/// The handles of the writer threads; a thread stops when this is dropped.
pub struct EventWriters {
    queues: Vec<SyncSender<Job>>,
}

impl EventWriters {
    /// Starts `settings.writers` writers (none when 0).
    pub fn start(
        database_url: &str,
        rules: RulesConfig,
        settings: BatchSettings,
    ) -> anyhow::Result<Option<Self>> {
        if settings.writers == 0 {
            return Ok(None);
        }
        let mut queues = Vec::with_capacity(settings.writers);
        for i in 0..settings.writers {
            let (tx, rx) = sync_channel(settings.queue.max(1));
            let writer = Writer {
                database_url: database_url.to_owned(),
                rules,
                settings,
                conn: None,
            };
            std::thread::Builder::new()
                .name(format!("event-writer-{i}"))
                .spawn(move || writer.run(rx))?;
            queues.push(tx);
        }
        Ok(Some(Self { queues }))
    }

    /// Applies `event` with the next batch of its writer; answers once the
    /// batch has committed.
    pub async fn submit(&self, event: Event) -> Result<EventResult, ApiError> {
        let queue = &self.queues[store::writer_for(event.user_id.as_str(), self.queues.len())];
        let (reply, answer) = oneshot::channel();
        queue
            .try_send(Job {
                event,
                reply,
                queued: Instant::now(),
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => {
                    ApiError::Unavailable("too many events are waiting to be stored; retry".into())
                }
                TrySendError::Disconnected(_) => {
                    ApiError::Unavailable("the event writer has stopped".into())
                }
            })?;
        answer
            .await
            .map_err(|_| ApiError::Unavailable("the event writer has stopped".into()))?
    }
}

/// How long the events of a batch of `taken` may have waited before they
/// are shed, if they are: only from a full batch. A writer that took
/// fewer than `max` took every event waiting for it, so there is no queue
/// to shorten; its events waited for a busy machine (a mixed load at
/// modest concurrency saturating the cores), and answering them `503`
/// would only turn slow successes into failures.
fn shedding_wait(settings: &BatchSettings, taken: usize) -> Option<Duration> {
    settings.max_wait.filter(|_| taken >= settings.max)
}

struct Writer {
    database_url: String,
    rules: RulesConfig,
    settings: BatchSettings,
    conn: Option<PgConnection>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        // Ends when every sender is gone (the service stopped).
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            let deadline = Instant::now() + self.settings.linger;
            while jobs.len() < self.settings.max {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match rx.recv_timeout(left) {
                            Ok(j) => jobs.push(j),
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                                break
                            }
                        }
                    }
                }
            }
            let jobs = self.shed_stale(jobs);
            if jobs.is_empty() {
                continue;
            }
            // A panic drops the batch's replies (their requests answer 503)
            // but not the writer.
            let applied =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.apply(jobs)));
            if applied.is_err() {
                tracing::error!("the event writer panicked applying a batch; its requests got 503");
                self.conn = None;
            }
        }
    }

    /// Answers `503` to the jobs that waited longer than `max_wait`, and
    /// returns the others; see [`shedding_wait`].
    fn shed_stale(&self, jobs: Vec<Job>) -> Vec<Job> {
        let Some(max_wait) = shedding_wait(&self.settings, jobs.len()) else {
            return jobs;
        };
        let (fresh, stale): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|j| j.queued.elapsed() <= max_wait);
        if !stale.is_empty() {
            platform::metrics::global().count(
                "access_rule_events_shed_total",
                "events answered 503 unapplied after waiting EVENT_QUEUE_WAIT_MS for a writer",
                "",
                stale.len() as u64,
            );
            for j in stale {
                let _ = j.reply.send(Err(ApiError::Unavailable(
                    "too many events are waiting to be stored; retry".into(),
                )));
            }
        }
        fresh
    }

    fn connection(&mut self) -> Result<&mut PgConnection, ApiError> {
        if self.conn.is_none() {
            let unavailable = |e: &dyn std::fmt::Display| {
                tracing::warn!(error = %e, "the event writer cannot connect");
                ApiError::Unavailable("the database is unavailable".into())
            };
            let mut c = PgConnection::establish(&self.database_url).map_err(|e| unavailable(&e))?;
            // The writer's statements are prepared once ([`platform::db::prepared`]
            // and diesel's own cache) and all find their rows by key, so
            // each keeps one generic plan instead of being planned at every
            // batch. Sequential scans are ruled out, as a generic plan made
            // while a table was small could otherwise keep one as the table
            // grew (the batch's `event_id = ANY($1)` once did: 60 % of the
            // CPU at 20,000 events).
            c.batch_execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
                .map_err(|e| unavailable(&e))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    fn apply(&mut self, jobs: Vec<Job>) {
        let metrics = platform::metrics::global();
        metrics.count(
            "access_rule_event_batches_total",
            "transactions of POST /event (group commits)",
            "",
            1,
        );
        metrics.count(
            "access_rule_batched_events_total",
            "events applied by group commits",
            "",
            jobs.len() as u64,
        );
        let (events, replies): (Vec<Event>, Vec<Reply>) =
            jobs.into_iter().map(|j| (j.event, j.reply)).unzip();
        let rules = self.rules;
        let outcomes = match self.connection() {
            Ok(c) => match store::apply_batch(c, &events, &rules, BatchMode::Optimistic) {
                // One event failed and took the batch with it: again, with
                // a savepoint per event, so that it fails alone.
                Err(BatchError::RolledBack(e)) => {
                    tracing::debug!(error = %platform::problem::chain(&e), "an optimistic batch rolled back; again with savepoints");
                    store::apply_batch(c, &events, &rules, BatchMode::Savepoints)
                }
                other => other,
            },
            Err(e) => {
                for r in replies {
                    let _ = r.send(Err(ApiError::Unavailable(e.to_string())));
                }
                return;
            }
        };
        match outcomes {
            Ok(outcomes) => {
                for ((event, reply), outcome) in events.iter().zip(replies).zip(outcomes) {
                    let answer = match outcome {
                        BatchOutcome::Done(r) => Ok(r),
                        BatchOutcome::Retry => self.alone(event),
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(BatchError::RolledBack(e)) => {
                tracing::warn!(error = %platform::problem::chain(&e), events = events.len(),
                    "a batch of events was rolled back; each is applied alone");
                self.conn = None; // it may be broken
                for (event, reply) in events.iter().zip(replies) {
                    let _ = reply.send(self.alone(event));
                }
            }
            Err(BatchError::Commit(e)) => {
                tracing::error!(error = %platform::problem::chain(&e), events = events.len(),
                    "the commit of a batch of events failed; their outcome is unknown");
                self.conn = None;
                for reply in replies {
                    let _ = reply.send(Err(ApiError::Unavailable(
                        "the event may or may not be stored; resend it with the same event_id"
                            .into(),
                    )));
                }
            }
        }
    }

    /// One event in a transaction of its own.
    fn alone(&mut self, event: &Event) -> Result<EventResult, ApiError> {
        let rules = self.rules;
        let c = self.connection()?;
        let r = store::apply_event(c, event, &rules).map_err(ApiError::from);
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_wait_ms: Option<u64>) -> BatchSettings {
        BatchSettings {
            writers: 2,
            max: 64,
            linger: Duration::from_micros(500),
            queue: 10_000,
            max_wait: max_wait_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn only_a_full_batch_sheds_what_waited_too_long() {
        let s = settings(Some(25));
        // A writer that took everything waiting: nothing queues behind it.
        assert_eq!(shedding_wait(&s, 1), None);
        assert_eq!(shedding_wait(&s, 63), None);
        // A full batch: more may be waiting, the stale are shed.
        assert_eq!(shedding_wait(&s, 64), Some(Duration::from_millis(25)));
        // EVENT_QUEUE_WAIT_MS=0: never.
        assert_eq!(shedding_wait(&settings(None), 64), None);
    }
}
