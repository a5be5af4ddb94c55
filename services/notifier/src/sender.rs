//! The sender: takes due pending deliveries one at a time, hands each to
//! the relay, and records how it went. A failed attempt is tried again
//! after a wait that doubles each time (up to its cap); a refusal for good,
//! or the last attempt's failure, marks the delivery failed, logs its cause
//! and counts it in `notifications_failed_total`.
//!
//! Replicas share the work: a claim ([`store::claim_due`]) skips rows
//! another holds and pushes the claimed one's next attempt past a lease, so
//! two senders never try one delivery at once. A sender that dies during an
//! attempt leaves its delivery to be tried again once the lease is over:
//! if the relay had accepted the message, it is sent again, with the same
//! `Message-ID`.

use std::{sync::Arc, time::Duration};

use platform::{db::PgPool, telemetry::TraceContext};
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::{
    config::Retry,
    mail::Mailer,
    store::{self, Claimed},
};

/// The sender's loop and what it needs.
#[derive(Clone)]
pub struct Sender {
    pub pool: PgPool,
    pub mailer: Mailer,
    pub retry: Retry,
    /// How often it looks for due deliveries when nothing woke it.
    pub poll: Duration,
    /// Longest one attempt may take before it counts as failed.
    pub attempt_limit: Duration,
    /// Wakes it as soon as the consumer recorded a delivery.
    pub wake: Arc<Notify>,
}

/// How long a claimed delivery is left to its sender: its attempt's limit
/// and a minute more, so that it is never claimed again while an attempt
/// may still be under way.
pub fn lease(attempt_limit: Duration) -> Duration {
    attempt_limit + Duration::from_secs(60)
}

impl Sender {
    /// Sends until `shutdown` turns true (an attempt under way is let
    /// finish), inside a span `sender`.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        self.send_until(shutdown)
            .instrument(tracing::info_span!("sender"))
            .await
    }

    async fn send_until(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let wait = match self.step().await {
                Ok(true) => {
                    backoff = Duration::from_millis(200);
                    continue;
                }
                Ok(false) => self.poll,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        "the sender cannot reach its database; retrying"
                    );
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    w
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("sender stopped");
    }

    /// One delivery, if one is due: claim, send, record. Answers whether
    /// there was one.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let lease = lease(self.attempt_limit);
        let claimed = platform::db::with_conn(&self.pool, move |c| {
            store::claim_due(c, lease).map_err(anyhow::Error::from)
        })
        .await?;
        let Some(d) = claimed else {
            return Ok(false);
        };
        let span = tracing::info_span!(
            "send",
            notification.id = %d.id,
            kind = %d.kind,
            attempt = d.attempts,
            request_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        // The sending goes on in the trace of the event that asked for it.
        let cx = TraceContext::continuing(d.traceparent.as_deref(), d.request_id.clone());
        span.record("request_id", tracing::field::display(&cx.request_id));
        span.record("trace_id", tracing::field::display(&cx.trace_id));
        platform::telemetry::in_context(cx, self.attempt(d).instrument(span)).await?;
        Ok(true)
    }

    /// Sends `d` and records the outcome.
    async fn attempt(&self, d: Claimed) -> anyhow::Result<()> {
        let metrics = platform::metrics::global();
        let outcome = match tokio::time::timeout(self.attempt_limit, self.mailer.send(&d)).await {
            Ok(r) => r.map_err(|e| (e.is_transient(), format!("{e:#}"))),
            Err(_) => Err((
                true,
                format!("no answer from the relay within {:?}", self.attempt_limit),
            )),
        };
        let id = d.id;
        match outcome {
            Ok(()) => {
                platform::db::with_conn(&self.pool, move |c| {
                    store::mark_sent(c, id).map_err(anyhow::Error::from)
                })
                .await?;
                metrics.count(
                    "notifications_sent_total",
                    "Notifications the relay accepted, by kind.",
                    &d.kind,
                    1,
                );
                tracing::info!(recipients = d.recipients.len(), "notification sent");
            }
            Err((true, error)) if d.attempts < self.retry.attempts => {
                let wait = self.retry.backoff(d.attempts);
                metrics.count(
                    "notification_attempts_failed_total",
                    "Attempts that failed and will be tried again, by kind.",
                    &d.kind,
                    1,
                );
                tracing::warn!(
                    error = %error,
                    retry_in_ms = wait.as_millis() as u64,
                    "sending failed; trying again later"
                );
                platform::db::with_conn(&self.pool, move |c| {
                    store::schedule_retry(c, id, wait, &error).map_err(anyhow::Error::from)
                })
                .await?;
            }
            Err((transient, error)) => {
                let why = if transient {
                    format!("gave up after {} attempts: {error}", d.attempts)
                } else {
                    error
                };
                metrics.count(
                    "notifications_failed_total",
                    "Notifications given up on, by kind.",
                    &d.kind,
                    1,
                );
                tracing::error!(error = %why, "notification not sent; marked failed");
                platform::db::with_conn(&self.pool, move |c| {
                    store::mark_failed(c, id, &why).map_err(anyhow::Error::from)
                })
                .await?;
            }
        }
        Ok(())
    }
}
