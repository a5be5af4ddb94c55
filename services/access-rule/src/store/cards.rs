//! A user's cards, the evidence of `add_credit_card` (a duplicate card is
//! ignored).

use chrono::{DateTime, Utc};
use diesel::{dsl::count, pg::PgConnection, prelude::*};
use serde::Serialize;

use super::schema::cards;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = cards)]
pub struct CardRow {
    pub zip_code: String,
    pub last_four_digits: String,
    pub total_spend_cents: i64,
    pub added_at: DateTime<Utc>,
}

/// Adds a card of `user_id`; false when the user already has it (a
/// duplicate is ignored).
pub(super) fn add(
    conn: &mut PgConnection,
    user_id: &str,
    zip_code: &str,
    last_four_digits: &str,
    total_spend_cents: i64,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    Ok(diesel::insert_into(cards::table)
        .values((
            cards::user_id.eq(user_id),
            cards::zip_code.eq(zip_code),
            cards::last_four_digits.eq(last_four_digits),
            cards::total_spend_cents.eq(total_spend_cents),
            cards::added_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?
        == 1)
}

/// How many cards `user_id` has, and how many distinct zip codes they have.
pub(super) fn counts(conn: &mut PgConnection, user_id: &str) -> QueryResult<(i64, i64)> {
    cards::table
        .filter(cards::user_id.eq(user_id))
        .select((
            diesel::dsl::count_star(),
            count(cards::zip_code).aggregate_distinct(),
        ))
        .first::<(i64, i64)>(conn)
}

/// The user's cards, the oldest first.
pub(super) fn of_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<Vec<CardRow>> {
    cards::table
        .filter(cards::user_id.eq(user_id))
        .order(cards::added_at.asc())
        .select(CardRow::as_select())
        .load(conn)
}
