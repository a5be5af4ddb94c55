//! A delivery: one notification to send, keyed by the notification's id,
//! and how its attempts went.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_query,
    sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz},
};
use uuid::Uuid;

use super::schema::deliveries;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not sent yet: due at `next_attempt_at`.
    Pending,
    /// The relay accepted it.
    Sent,
    /// Given up on: refused for good, or out of attempts.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }
}

/// A notification as the consumer records it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = deliveries)]
pub struct NewDelivery {
    pub id: Uuid,
    pub kind: String,
    pub source: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
}

/// A stored delivery, as a test or an operator reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct Delivery {
    pub id: Uuid,
    pub kind: String,
    pub source: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// Records a notification to send. A notification recorded before (a
/// replayed or duplicated event) is left as it is: answers whether this
/// call added it.
pub fn record(conn: &mut PgConnection, new: &NewDelivery) -> QueryResult<bool> {
    let n = diesel::insert_into(deliveries::table)
        .values(new)
        .on_conflict(deliveries::id)
        .do_nothing()
        .execute(conn)?;
    Ok(n == 1)
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Array<Text>)]
    pub recipients: Vec<String>,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub body: String,
    /// This attempt's number (1 for the first).
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub traceparent: Option<String>,
}

/// Claims the pending delivery due first, if one is due: counts the
/// attempt and pushes its next attempt `lease` ahead, in one statement, so
/// that no other sender (another replica) takes it meanwhile. A sender
/// that dies during the attempt leaves it to be tried again once the lease
/// is over. Rows another transaction holds are skipped, not waited for.
pub fn claim_due(conn: &mut PgConnection, lease: Duration) -> QueryResult<Option<Claimed>> {
    sql_query(
        "UPDATE deliveries d \
            SET attempts = d.attempts + 1, \
                next_attempt_at = now() + make_interval(secs => $1) \
          WHERE d.id = (SELECT id FROM deliveries \
                         WHERE status = 'pending' AND next_attempt_at <= now() \
                         ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
            AND d.status = 'pending' \
      RETURNING d.id, d.kind, d.recipients, d.subject, d.body, d.attempts, \
                d.request_id, d.traceparent",
    )
    .bind::<Double, _>(lease.as_secs_f64())
    .get_result(conn)
    .optional()
}

/// The relay accepted the delivery.
pub fn mark_sent(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(deliveries::table.find(id))
        .set((
            deliveries::status.eq(Status::Sent.as_str()),
            deliveries::sent_at.eq(Utc::now()),
            deliveries::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// An attempt failed: the next one is due after `wait`.
pub fn schedule_retry(
    conn: &mut PgConnection,
    id: Uuid,
    wait: Duration,
    error: &str,
) -> QueryResult<()> {
    sql_query(
        "UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $1), \
                last_error = $2 \
          WHERE id = $3 AND status = 'pending'",
    )
    .bind::<Double, _>(wait.as_secs_f64())
    .bind::<Text, _>(error)
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(conn)?;
    Ok(())
}

/// The delivery is given up on, for `error`.
pub fn mark_failed(conn: &mut PgConnection, id: Uuid, error: &str) -> QueryResult<()> {
    diesel::update(
        deliveries::table
            .find(id)
            .filter(deliveries::status.eq("pending")),
    )
    .set((
        deliveries::status.eq(Status::Failed.as_str()),
        deliveries::failed_at.eq(Utc::now()),
        deliveries::last_error.eq(error),
    ))
    .execute(conn)?;
    Ok(())
}

/// The delivery of notification `id`, if it was recorded.
pub fn delivery(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Delivery>> {
    deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
        .optional()
}

/// Deletes at most `n` deliveries sent before `cutoff`: answers how many
/// (see `platform::retention`). Pending and failed ones are kept.
pub fn prune_sent(conn: &mut PgConnection, cutoff: DateTime<Utc>, n: i64) -> QueryResult<usize> {
    sql_query(
        "DELETE FROM deliveries WHERE id = ANY(ARRAY(\
           SELECT id FROM deliveries WHERE status = 'sent' AND sent_at < $1 \
            ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<BigInt, _>(n)
    .execute(conn)
}
