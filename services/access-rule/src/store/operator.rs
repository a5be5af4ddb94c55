//! What operators read of a user and change by hand.

use chrono::Utc;
use diesel::{pg::PgConnection, prelude::*};

use super::{
    cards::{self, CardRow},
    restrictions::{self, record_changes, LogRow, RestrictionChange},
    users::{find_user, lock_existing_user, save_user, UserRow},
};
use crate::domain::{Change, Rule, RulesConfig, UserId};

/// Everything an operator sees of a user.
pub struct UserReport {
    pub user: UserRow,
    pub cards: Vec<CardRow>,
    pub history: Vec<LogRow>,
}

pub fn user_report(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<Option<UserReport>> {
    let Some(user) = find_user(conn, user_id.as_str())? else {
        return Ok(None);
    };
    let cards = cards::of_user(conn, user_id.as_str())?;
    let history = restrictions::history(conn, user_id.as_str())?;
    Ok(Some(UserReport {
        user,
        cards,
        history,
    }))
}

/// An operator lifts `rule`'s restriction of a user by hand. `None`: no such
/// user; the flag says whether a restriction was lifted. The rule restricts
/// the user again only on new evidence (a later event of its kind).
pub fn lift(
    conn: &mut PgConnection,
    user_id: &UserId,
    rule: Rule,
    actor: &str,
    note: Option<&str>,
    cfg: &RulesConfig,
) -> QueryResult<Option<(UserRow, bool)>> {
    conn.transaction(|c| {
        let Some(before) = lock_existing_user(c, user_id.as_str())? else {
            return Ok(None);
        };
        if before.restricted_at(rule).is_none() {
            return Ok(Some((before, false)));
        }
        let now = Utc::now();
        let mut after = before.clone();
        after.set_restricted_at(rule, None);
        after.version += 1;
        after.updated_at = now;
        save_user(c, &after)?;
        let change = RestrictionChange {
            rule: rule.as_str().into(),
            action: Change::Lift,
            cause: "operator",
            actor: Some(actor.to_owned()),
            reason: note
                .map(str::to_owned)
                .unwrap_or_else(|| "lifted by an operator".into()),
        };
        record_changes(c, &before, &after, &[change], cfg, now)?;
        Ok(Some((after, true)))
    })
}
