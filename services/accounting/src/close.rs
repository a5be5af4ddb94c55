//! The daily close: at `CLOSE_HOUR` in `CLOSE_TIME_ZONE`, the business day
//! that just ended is closed ([`store::close_day`]): each positive balance
//! is paid out and its worker mailed. The loop checks once a minute
//! whether a close is due and not yet done, so a process that was down at
//! the hour closes the day when it comes back; any number of replicas may
//! run it (a day is closed once, see `store::closes`).

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use contracts::topics::notification::Notification;
use platform::{db::PgPool, events::OutboxSignal};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use crate::{domain::Calendar, error::ApiError, store};

/// How often the loop looks for a close that is due.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Cents as money: `1234` is `12.34`, `-5` is `-0.05`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// The mail that tells a worker what a close paid them.
pub fn payout_notification(
    username: Option<&str>,
    email: String,
    amount_cents: i64,
    day: NaiveDate,
) -> Notification {
    let amount = money(amount_cents);
    let greeting = username.map_or_else(|| "Hello,".to_owned(), |u| format!("Hello {u},"));
    Notification {
        id: Uuid::now_v7(),
        kind: "payout".into(),
        to: vec![email],
        subject: format!("Your payout of {amount} for {day}"),
        body: format!(
            "{greeting}\n\nyour earnings of {amount} for {day} have been paid out; \
             your balance is now zero.\n"
        ),
    }
}

/// Closes `day` and wakes the relay when it paid anyone.
pub async fn close(
    pool: &PgPool,
    signal: &OutboxSignal,
    day: NaiveDate,
) -> Result<store::Closed, ApiError> {
    let closed = platform::db::with_conn(pool, move |c| {
        store::close_day(c, day).map_err(ApiError::from)
    })
    .await?;
    if closed.newly_closed {
        signal.nudge();
        platform::metrics::global().count(
            crate::consumer::ENTRIES,
            crate::consumer::ENTRIES_HELP,
            "payout",
            closed.payouts.len() as u64,
        );
        tracing::info!(
            %day, paid = closed.payouts.len(), total_cents = closed.total_cents,
            "business day closed"
        );
    }
    Ok(closed)
}

/// Runs the close whenever one is due, until `shutdown`, inside a span
/// `daily_close`.
pub async fn run_loop(
    pool: PgPool,
    calendar: Calendar,
    signal: OutboxSignal,
    mut shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        "daily_close",
        zone = %calendar.zone,
        hour = calendar.close_hour
    );
    async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let day = calendar.due(Utc::now());
            let done = platform::db::with_conn(&pool, move |c| {
                store::is_closed(c, day).map_err(ApiError::from)
            })
            .await;
            match done {
                Ok(true) => {}
                Ok(false) => {
                    if let Err(e) = close(&pool, &signal, day).await {
                        tracing::warn!(%day, error = %e, "closing the day failed; retrying");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot tell whether the day is closed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_read_as_money() {
        assert_eq!(money(1234), "12.34");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(0), "0.00");
    }

    #[test]
    fn the_payout_mail_names_the_amount_and_the_day() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let n = payout_notification(Some("ann"), "ann@example.com".into(), 1250, day);
        assert_eq!(n.kind, "payout");
        assert_eq!(n.to, vec!["ann@example.com"]);
        assert!(n.subject.contains("12.50") && n.subject.contains("2026-12-02"));
        assert!(n.body.contains("12.50") && n.body.contains("2026-12-02"));
    }
}
