//! A user's row: the facts the rules judge, the user's restrictions and the
//! account's active flag. Every change to a user locks this row first (see
//! the module [`crate::store`]); the checks read it by primary key.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use serde_json::{json, Value};

use super::schema::users;
use crate::domain::{reason, Facts, Restrictions, Rule, RulesConfig, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub user_id: String,
    pub scam_flags: i64,
    pub card_count: i64,
    pub zip_count: i64,
    pub total_spend_cents: i64,
    pub chargeback_cents: i64,
    pub scam_restricted_at: Option<DateTime<Utc>>,
    pub zip_restricted_at: Option<DateTime<Utc>>,
    pub chargeback_restricted_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub account_version: i64,
    pub version: i64,
    pub first_event_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    pub fn facts(&self) -> Facts {
        Facts {
            scam_flags: self.scam_flags,
            card_count: self.card_count,
            zip_count: self.zip_count,
            total_spend_cents: self.total_spend_cents,
            chargeback_cents: self.chargeback_cents,
        }
    }

    pub(super) fn set_facts(&mut self, f: Facts) {
        self.scam_flags = f.scam_flags;
        self.card_count = f.card_count;
        self.zip_count = f.zip_count;
        self.total_spend_cents = f.total_spend_cents;
        self.chargeback_cents = f.chargeback_cents;
    }

    pub fn restricted_at(&self, rule: Rule) -> Option<DateTime<Utc>> {
        match rule {
            Rule::ScamFlags => self.scam_restricted_at,
            Rule::CardZipRatio => self.zip_restricted_at,
            Rule::ChargebackRatio => self.chargeback_restricted_at,
        }
    }

    pub(super) fn set_restricted_at(&mut self, rule: Rule, at: Option<DateTime<Utc>>) {
        match rule {
            Rule::ScamFlags => self.scam_restricted_at = at,
            Rule::CardZipRatio => self.zip_restricted_at = at,
            Rule::ChargebackRatio => self.chargeback_restricted_at = at,
        }
    }

    /// The user's restrictions as published on `access.restriction.v1`.
    pub(super) fn access_view(&self, cfg: &RulesConfig) -> Value {
        let facts = self.facts();
        let restrictions: Vec<Value> = Rule::ALL
            .into_iter()
            .filter_map(|r| {
                self.restricted_at(r).map(|since| {
                    json!({"rule": r, "capability": r.capability(), "since": since,
                           "reason": reason(r, &facts, cfg)})
                })
            })
            .collect();
        json!({"user_id": self.user_id, "is_active": self.is_active,
               "restrictions": restrictions, "version": self.version})
    }
}

/// The user's row, unlocked.
pub(super) fn find_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .find(user_id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

/// Takes the row lock on `user_id`, creating the row if needed.
pub(super) fn lock_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(users::user_id.eq(user_id))
        .on_conflict_do_nothing()
        .execute(conn)?;
    lock_existing_user(conn, user_id)?.ok_or(diesel::result::Error::NotFound)
}

pub(super) fn lock_existing_user(
    conn: &mut PgConnection,
    user_id: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .find(user_id)
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub(super) fn save_user(conn: &mut PgConnection, u: &UserRow) -> QueryResult<()> {
    diesel::update(users::table.find(&u.user_id))
        .set((
            users::scam_flags.eq(u.scam_flags),
            users::card_count.eq(u.card_count),
            users::zip_count.eq(u.zip_count),
            users::total_spend_cents.eq(u.total_spend_cents),
            users::chargeback_cents.eq(u.chargeback_cents),
            users::scam_restricted_at.eq(u.scam_restricted_at),
            users::zip_restricted_at.eq(u.zip_restricted_at),
            users::chargeback_restricted_at.eq(u.chargeback_restricted_at),
            users::is_active.eq(u.is_active),
            users::account_version.eq(u.account_version),
            users::version.eq(u.version),
            users::first_event_at.eq(u.first_event_at),
            users::updated_at.eq(u.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// What the checks read: one primary-key lookup.
pub fn restrictions(
    conn: &mut PgConnection,
    user_id: &UserId,
) -> QueryResult<Option<Restrictions>> {
    users::table
        .find(user_id.as_str())
        .select((
            users::is_active,
            users::scam_restricted_at.is_not_null(),
            users::zip_restricted_at.is_not_null(),
            users::chargeback_restricted_at.is_not_null(),
        ))
        .first::<(bool, bool, bool, bool)>(conn)
        .optional()
        .map(|r| {
            r.map(
                |(is_active, scam_flags, card_zip_ratio, chargeback_ratio)| Restrictions {
                    is_active,
                    scam_flags,
                    card_zip_ratio,
                    chargeback_ratio,
                },
            )
        })
}

/// A page of what the checks read, by user id after `after` (the check
/// cache's warm-up).
pub fn check_page(
    conn: &mut PgConnection,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<(String, Restrictions)>> {
    users::table
        .filter(users::user_id.gt(after))
        .order(users::user_id.asc())
        .limit(limit)
        .select((
            users::user_id,
            users::is_active,
            users::scam_restricted_at.is_not_null(),
            users::zip_restricted_at.is_not_null(),
            users::chargeback_restricted_at.is_not_null(),
        ))
        .load::<(String, bool, bool, bool, bool)>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(
                    |(u, is_active, scam_flags, card_zip_ratio, chargeback_ratio)| {
                        (
                            u,
                            Restrictions {
                                is_active,
                                scam_flags,
                                card_zip_ratio,
                                chargeback_ratio,
                            },
                        )
                    },
                )
                .collect()
        })
}
