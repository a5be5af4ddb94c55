//! Retention: the background job that deletes rows which have served their
//! purpose (published outbox rows, expired grants, applied inbox rows and
//! the like), so that tables the platform only ever appends to stay flat.
//!
//! A service names its [`Step`]s; [`Pruner::run`] runs them one after the
//! other a minute after start, then every `RETENTION_INTERVAL_SECONDS`.
//! A step deletes at most `RETENTION_BATCH_ROWS` rows per statement, on a
//! pooled connection taken for that statement only, and is repeated until
//! a statement deletes fewer, with a short pause between statements: no
//! statement holds its locks (or writes its WAL) for long, and requests go
//! on meanwhile. Statements pick their rows `FOR UPDATE SKIP LOCKED`, so
//! replicas pruning at the same time split the work instead of waiting for
//! each other, and a row a transaction holds is left for the next round.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::bail;
use chrono::{DateTime, Utc};
use diesel::{
    pg::PgConnection,
    sql_query,
    sql_types::{BigInt, Timestamptz},
    QueryResult, RunQueryDsl,
};
use tokio::sync::watch;

use crate::{config::parse_or, db::PgPool};

/// The first round waits this long after start (or the interval, when it
/// is shorter): start-up has enough to do, and a replica restarting in a
/// loop does not prune at each start.
const FIRST_ROUND_AFTER: Duration = Duration::from_secs(60);

/// What every service reads the same way.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time between two rounds (`RETENTION_INTERVAL_SECONDS`, default
    /// 3600, at least 1).
    pub interval: Duration,
    /// Most rows one statement deletes (`RETENTION_BATCH_ROWS`, default
    /// 1000, at least 1).
    pub batch: i64,
    /// Pause between two statements of a round (`RETENTION_PAUSE_MS`,
    /// default 50).
    pub pause: Duration,
    /// How long published outbox rows are kept, for audits and replays by
    /// hand (`OUTBOX_RETENTION_HOURS`, default 168, decimals allowed; 0:
    /// for ever).
    pub outbox: Option<Duration>,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let interval: u64 = parse_or("RETENTION_INTERVAL_SECONDS", 3600)?;
        let batch: i64 = parse_or("RETENTION_BATCH_ROWS", 1000)?;
        if interval == 0 || batch < 1 {
            bail!("RETENTION_INTERVAL_SECONDS and RETENTION_BATCH_ROWS must be at least 1");
        }
        Ok(Self {
            interval: Duration::from_secs(interval),
            batch,
            pause: Duration::from_millis(parse_or("RETENTION_PAUSE_MS", 50)?),
            outbox: hours_var("OUTBOX_RETENTION_HOURS", 168.0)?,
        })
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// The window the environment variable `name` sets in hours, `default`
/// when it is unset or empty: see [`parse_window`].
pub fn hours_var(name: &str, default: f64) -> anyhow::Result<Option<Duration>> {
    window_var(name, default, HOUR)
}

/// The window the environment variable `name` sets in days, `default`
/// when it is unset or empty: see [`parse_window`].
pub fn days_var(name: &str, default: f64) -> anyhow::Result<Option<Duration>> {
    window_var(name, default, DAY)
}

fn window_var(name: &str, default: f64, unit: Duration) -> anyhow::Result<Option<Duration>> {
    match crate::config::var(name) {
        Some(v) if !v.trim().is_empty() => parse_window(name, &v, unit),
        _ => window_of(name, default, unit),
    }
}

/// `text`, a number of `unit`s with decimals if need be (`0.02` hours is
/// 72 s: short windows for soak tests), as a window rounded to the
/// millisecond; `None` (kept for ever) for 0. A negative, NaN, infinite
/// or absurdly long window is refused, naming the variable `name`.
pub fn parse_window(name: &str, text: &str, unit: Duration) -> anyhow::Result<Option<Duration>> {
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{name}={text:?} is not a number: {e}"))?;
    window_of(name, n, unit)
}

fn window_of(name: &str, n: f64, unit: Duration) -> anyhow::Result<Option<Duration>> {
    if !n.is_finite() || n < 0.0 {
        bail!("{name}={n} must be a finite number, 0 (kept for ever) or more");
    }
    if n == 0.0 {
        return Ok(None);
    }
    let ms = (n * unit.as_millis() as f64).round();
    // A thousand years is for ever in practice; more is a mistake.
    if ms > 1000.0 * 365.25 * DAY.as_millis() as f64 {
        bail!("{name}={n} is longer than a thousand years; 0 keeps for ever");
    }
    Ok(Some(Duration::from_millis((ms as u64).max(1))))
}

/// Now minus `window` (the beginning of time when that underflows).
pub fn cutoff(window: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(window)
        .ok()
        .and_then(|w| Utc::now().checked_sub_signed(w))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

type Delete = dyn Fn(&mut PgConnection, i64) -> QueryResult<usize> + Send + Sync;

/// One kind of rows to delete, in one table.
#[derive(Clone)]
pub struct Step {
    table: &'static str,
    delete: Arc<Delete>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("table", &self.table).finish()
    }
}

impl Step {
    /// `delete(conn, n)` deletes at most `n` rows of `table` and says how
    /// many; `table` names them in logs and metrics.
    pub fn new(
        table: &'static str,
        delete: impl Fn(&mut PgConnection, i64) -> QueryResult<usize> + Send + Sync + 'static,
    ) -> Self {
        Self {
            table,
            delete: Arc::new(delete),
        }
    }

    /// Rows older than `window`: `sql` deletes at most `$2` rows whose time
    /// is before `$1` (now minus `window`, taken at each statement). It
    /// should read `DELETE FROM t WHERE key = ANY(ARRAY(SELECT key ...
    /// LIMIT $2 FOR UPDATE SKIP LOCKED))`, the inner select finding the rows
    /// by an index where the table is large: with `key IN (SELECT ...)`,
    /// PostgreSQL may join the batch to a scan of the whole table, where
    /// the array makes it one primary-key lookup per row. Planned at each
    /// run (not prepared), so that the plan fits the cutoff.
    pub fn older_than(table: &'static str, window: Duration, sql: &'static str) -> Self {
        Self::new(table, move |c, n| {
            sql_query(sql)
                .bind::<Timestamptz, _>(cutoff(window))
                .bind::<BigInt, _>(n)
                .execute(c)
        })
    }

    pub fn table(&self) -> &'static str {
        self.table
    }
}

/// Published outbox rows older than `window` (unpublished ones are never
/// deleted, however old: they still wait for the broker).
pub fn outbox(window: Duration) -> Step {
    Step::older_than(
        "outbox",
        window,
        "DELETE FROM outbox WHERE id = ANY(ARRAY(\
           SELECT id FROM outbox WHERE published_at < $1 \
            ORDER BY published_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
    )
}

/// A service's steps, run in order each round.
#[derive(Clone)]
pub struct Pruner {
    pool: PgPool,
    steps: Vec<Step>,
    settings: Settings,
}

impl Pruner {
    /// The outbox step ([`outbox`], unless kept for ever) comes first,
    /// then `steps`.
    pub fn new(pool: PgPool, settings: Settings, steps: Vec<Step>) -> Self {
        let steps = settings
            .outbox
            .map(outbox)
            .into_iter()
            .chain(steps)
            .collect();
        Self {
            pool,
            steps,
            settings,
        }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Prunes a minute after start, then every interval, until `shutdown`
    /// turns true (a statement running then is let finish), inside a span
    /// `pruner`.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        use tracing::Instrument;
        self.prune_until(shutdown)
            .instrument(tracing::info_span!("pruner"))
            .await
    }

    async fn prune_until(self, mut shutdown: watch::Receiver<bool>) {
        if self.steps.is_empty() {
            return;
        }
        let mut wait = self.settings.interval.min(FIRST_ROUND_AFTER);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            wait = self.settings.interval;
            // Failures are logged and counted; the next round tries again.
            let _ = self.round(&mut shutdown).await;
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// One round now, every step to the end: the rows deleted by table, or
    /// an error naming the steps that failed (the others still ran).
    pub async fn prune_once(&self) -> anyhow::Result<BTreeMap<&'static str, usize>> {
        let (_never, mut shutdown) = watch::channel(false);
        self.round(&mut shutdown).await
    }

    async fn round(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<BTreeMap<&'static str, usize>> {
        let metrics = crate::metrics::global();
        let mut pruned = BTreeMap::new();
        let mut failed = Vec::new();
        for step in &self.steps {
            let mut total = 0;
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let (delete, batch) = (step.delete.clone(), self.settings.batch);
                let r = crate::db::with_conn(&self.pool, move |c| {
                    delete(c, batch).map_err(anyhow::Error::from)
                })
                .await;
                match r {
                    Ok(n) => {
                        total += n;
                        if n > 0 {
                            metrics.count(
                                "rows_pruned_total",
                                "Rows deleted once past their retention, by table.",
                                step.table,
                                n as u64,
                            );
                        }
                        if (n as i64) < batch {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(
                            table = step.table,
                            error = format!("{e:#}"),
                            "pruning failed; the next round tries again"
                        );
                        metrics.count(
                            "prune_failures_total",
                            "Retention statements that failed, by table.",
                            step.table,
                            1,
                        );
                        failed.push(format!("{}: {e:#}", step.table));
                        break;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.pause) => {}
                    _ = shutdown.changed() => {}
                }
            }
            if total > 0 {
                tracing::info!(
                    table = step.table,
                    rows = total,
                    "pruned rows past their retention"
                );
            }
            pruned.insert(step.table, total);
        }
        if failed.is_empty() {
            Ok(pruned)
        } else {
            bail!("pruning failed: {}", failed.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_of_zero_keeps_for_ever() {
        assert_eq!(parse_window("X", "0", HOUR).unwrap(), None);
        assert_eq!(parse_window("X", "0.0", DAY).unwrap(), None);
        assert_eq!(
            parse_window("X", "2", HOUR).unwrap(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            parse_window("X", "1", DAY).unwrap(),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn windows_take_decimals_and_refuse_nonsense() {
        let w = |text: &str, unit| parse_window("OUTBOX_RETENTION_HOURS", text, unit);
        assert_eq!(w("0.02", HOUR).unwrap(), Some(Duration::from_secs(72)));
        assert_eq!(w(" 1.5 ", HOUR).unwrap(), Some(Duration::from_secs(5400)));
        assert_eq!(
            w("0.001", DAY).unwrap(),
            Some(Duration::from_millis(86_400))
        );
        assert_eq!(
            w("168", HOUR).unwrap(),
            Some(Duration::from_secs(168 * 3600))
        );
        // Below a millisecond is a millisecond, not for ever.
        assert_eq!(w("1e-12", HOUR).unwrap(), Some(Duration::from_millis(1)));
        for bad in ["-1", "-0.5", "NaN", "inf", "-inf", "1e300", "", "two", "1h"] {
            let e = w(bad, HOUR).expect_err(bad).to_string();
            assert!(e.contains("OUTBOX_RETENTION_HOURS"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_unset_window_is_the_default() {
        let name = "RETENTION_TEST_UNSET_WINDOW_HOURS";
        assert!(std::env::var_os(name).is_none());
        assert_eq!(hours_var(name, 168.0).unwrap(), Some(168 * HOUR));
        assert_eq!(days_var(name, 0.5).unwrap(), Some(DAY / 2));
        assert_eq!(hours_var(name, 0.0).unwrap(), None);
    }

    #[test]
    fn a_window_longer_than_time_cuts_at_its_beginning() {
        assert_eq!(cutoff(Duration::MAX), DateTime::<Utc>::MIN_UTC);
        let an_hour_ago = cutoff(Duration::from_secs(3600));
        let age = Utc::now() - an_hour_ago;
        assert!(age >= chrono::Duration::hours(1) && age < chrono::Duration::hours(2));
    }
}
