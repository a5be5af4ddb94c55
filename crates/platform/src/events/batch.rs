//! Applying the messages that are waiting together, in one transaction.
//!
//! One message per transaction costs a commit (and its flush to disk) per
//! event: a consumer catching up on a backlog spent most of its time
//! there. A batched consumer takes, after each message it waited for,
//! whatever else has arrived already (at most [`Batching::most`], without
//! waiting for more), and applies that run in one transaction. Live
//! traffic, one message at a time, is handled as before.
//!
//! The rules stay those of one message: when the run's transaction fails,
//! nothing of it was kept, and its messages are handled one at a time, each
//! retried or set aside on its `<topic>.dlq` as it deserves. A message that
//! is not an event of the topic's writer is set aside, after the run's
//! commit and before the offsets move on. Offsets are stored only after
//! the commit; a crash in between redelivers the run, which the consumer's
//! idempotence absorbs.

use std::sync::Arc;

use diesel::{pg::PgConnection, Connection};
use tokio::sync::watch;
use tracing::Instrument;

use super::{span_of, Envelope, Handling, Stopped};
use crate::telemetry::TraceContext;

/// One event of a run, with the span and trace of its message: what
/// applying it logs or writes should run in [`Delivered::in_scope`].
pub struct Delivered {
    pub topic: String,
    pub envelope: Envelope,
    pub span: tracing::Span,
    pub trace: TraceContext,
}

impl Delivered {
    /// Runs `work` in this message's span and trace (on the blocking
    /// thread the run is applied on).
    pub fn in_scope<T>(&self, work: impl FnOnce() -> T) -> T {
        self.span
            .in_scope(|| crate::telemetry::on_blocking_thread(Some(self.trace.clone()), work))
    }
}

/// Applies a run of events, in order, inside the transaction the consumer
/// opened for it (it must not commit). Like [`super::ApplyFn`] it must be
/// idempotent; an error rolls the whole run back.
pub type ApplyRunFn =
    Arc<dyn Fn(&mut PgConnection, &[Delivered]) -> anyhow::Result<()> + Send + Sync>;

/// How a batched consumer applies a run (see the module's text).
#[derive(Clone)]
pub struct Batching {
    pub apply: ApplyRunFn,
    /// Called after each run commits: what a service does once its
    /// changes are visible (wake its outbox relay, say), which an
    /// [`ApplyFn`](super::ApplyFn) applying one message does itself.
    pub committed: Arc<dyn Fn() + Send + Sync>,
    /// The most messages in a run (`CONSUMER_BATCH`, default 500).
    pub most: usize,
}

/// The largest run by default: big enough that the commit's cost is
/// spread thin, small enough that a run's transaction stays short.
const DEFAULT_MOST: usize = 500;

impl Batching {
    /// `apply` for each run, `committed` after it, runs of at most
    /// `CONSUMER_BATCH` messages.
    pub fn new(apply: ApplyRunFn, committed: Arc<dyn Fn() + Send + Sync>) -> anyhow::Result<Self> {
        let most: usize = crate::config::parse_or("CONSUMER_BATCH", DEFAULT_MOST)?;
        anyhow::ensure!(most >= 1, "CONSUMER_BATCH must be at least 1");
        Ok(Self {
            apply,
            committed,
            most,
        })
    }

    /// A run applier that applies each event with `apply`, in its own
    /// span and trace: for a consumer whose events need nothing more than
    /// its one-at-a-time apply (whose own transactions become savepoints).
    pub fn each(apply: super::ApplyFn) -> ApplyRunFn {
        Arc::new(move |conn, run| {
            for d in run {
                d.in_scope(|| apply(conn, &d.topic, &d.envelope))?;
            }
            Ok(())
        })
    }

    /// Applies `run` in one transaction; see [`Outcome`].
    pub(super) async fn apply_run(
        &self,
        handling: &Handling<'_>,
        run: &[rdkafka::message::BorrowedMessage<'_>],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        use rdkafka::Message;
        let mut delivered = Vec::with_capacity(run.len());
        let mut refused = Vec::new();
        for msg in run {
            match handling.envelope_of(msg) {
                Ok(envelope) => {
                    let (span, trace) = span_of(msg);
                    delivered.push(Delivered {
                        topic: msg.topic().to_owned(),
                        envelope,
                        span,
                        trace,
                    });
                }
                Err(why) => refused.push((msg, why)),
            }
        }
        let first = &run[0];
        let span = tracing::info_span!(
            "consume_run",
            topic = first.topic(),
            partition = first.partition(),
            offset = first.offset(),
            messages = run.len(),
        );
        let applied = delivered.len();
        // Events applied per topic, for the counter once the run commits.
        let mut counts: Vec<(String, u64)> = Vec::new();
        for d in &delivered {
            match counts.iter_mut().find(|(t, _)| *t == d.topic) {
                Some((_, n)) => *n += 1,
                None => counts.push((d.topic.clone(), 1)),
            }
        }
        let apply = self.apply.clone();
        let outcome = crate::db::with_conn(handling.pool, move |c| -> anyhow::Result<()> {
            c.transaction(|c| apply(c, &delivered))
        })
        .instrument(span.clone())
        .await;
        if let Err(e) = outcome {
            let _in = span.enter();
            tracing::warn!(
                error = format!("{e:#}"),
                "applying a run of events failed; applying them one at a time"
            );
            return Outcome::Failed;
        }
        let metrics = crate::metrics::global();
        for (topic, n) in counts {
            metrics.count(
                "events_applied_total",
                "Events applied by consumers.",
                &topic,
                n,
            );
        }
        if applied > 0 {
            (self.committed)();
        }
        for (msg, why) in refused {
            let (span, _) = span_of(msg);
            if let Stopped::Yes = handling.refuse(msg, why, shutdown).instrument(span).await {
                return Outcome::Stopped;
            }
        }
        Outcome::Applied
    }
}

/// What became of a run.
pub(super) enum Outcome {
    /// Committed, and what was refused set aside: its offsets may move on.
    Applied,
    /// Rolled back: handle its messages one at a time.
    Failed,
    /// The shutdown came while a refused message was being set aside.
    Stopped,
}
