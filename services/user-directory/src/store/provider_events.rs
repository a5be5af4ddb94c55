//! The provider event queue: WorkOS events stored once by id, applied in
//! order of arrival (`crate::sync`) and deferred while out of order, and
//! the Events API's cursors.

use chrono::Utc;
use diesel::{pg::PgConnection, prelude::*};
use serde_json::Value;

use super::schema::{provider_events, sync_cursors};

/// What became of one stored provider event (`crate::sync` applies them).
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Done(&'static str),
    /// Not now: what it refers to is not known yet (out of order).
    Later(&'static str),
}

/// Stores an event once (by its id). True if it was new.
pub fn store_event(
    conn: &mut PgConnection,
    id: &str,
    event: &str,
    payload: &Value,
    from: &str,
) -> QueryResult<bool> {
    diesel::insert_into(provider_events::table)
        .values((
            provider_events::id.eq(id),
            provider_events::event.eq(event),
            provider_events::payload.eq(payload),
            provider_events::source.eq(from),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n == 1)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = provider_events)]
pub struct StoredEvent {
    pub id: String,
    pub event: String,
    pub payload: Value,
    pub attempts: i32,
}

pub fn due_events(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<StoredEvent>> {
    provider_events::table
        .filter(provider_events::applied_at.is_null())
        .filter(provider_events::next_attempt_at.le(Utc::now()))
        .order((
            provider_events::received_at.asc(),
            provider_events::id.asc(),
        ))
        .limit(limit)
        .select(StoredEvent::as_select())
        .load(conn)
}

pub fn event_applied(conn: &mut PgConnection, id: &str, outcome: &str) -> QueryResult<()> {
    diesel::update(provider_events::table.find(id))
        .set((
            provider_events::applied_at.eq(Utc::now()),
            provider_events::outcome.eq(outcome),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Tries the event again later (its user or organization is not known
/// yet: events arrive out of order).
pub fn event_deferred(conn: &mut PgConnection, e: &StoredEvent, why: &str) -> QueryResult<()> {
    let ms = (250_i64 * 2_i64.saturating_pow(e.attempts.clamp(0, 12) as u32)).min(300_000);
    diesel::update(provider_events::table.find(&e.id))
        .set((
            provider_events::attempts.eq(e.attempts + 1),
            provider_events::outcome.eq(why),
            provider_events::next_attempt_at.eq(Utc::now() + chrono::Duration::milliseconds(ms)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn cursor(conn: &mut PgConnection, name: &str) -> QueryResult<Option<String>> {
    sync_cursors::table
        .find(name)
        .select(sync_cursors::cursor)
        .first(conn)
        .optional()
}

pub fn set_cursor(conn: &mut PgConnection, name: &str, value: &str) -> QueryResult<()> {
    diesel::insert_into(sync_cursors::table)
        .values((sync_cursors::name.eq(name), sync_cursors::cursor.eq(value)))
        .on_conflict(sync_cursors::name)
        .do_update()
        .set((
            sync_cursors::cursor.eq(value),
            sync_cursors::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .map(|_| ())
}
