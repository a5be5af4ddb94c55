//! A business day's close: once per day, each positive balance paid out
//! (a payout entry down to zero) and its worker mailed (a
//! `notification.v1` event), in one transaction.

use chrono::{DateTime, NaiveDate, Utc};
use contracts::{topics, topics::accounting::Kind, Envelope, Op};
use diesel::{pg::PgConnection, prelude::*};
use serde::Serialize;
use uuid::Uuid;

use super::{
    ledger::{self, Entry, NewEntry},
    schema::day_close,
    users,
};

/// One worker paid by a close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paid {
    pub account_id: Uuid,
    /// What was paid (positive; the entry's amount is its negative).
    pub amount_cents: i64,
    pub transaction_id: Uuid,
}

/// What a close did, or had done when it ran before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closed {
    pub day: NaiveDate,
    pub closed_at: DateTime<Utc>,
    /// False when the day had been closed before: nothing was paid now.
    pub newly_closed: bool,
    pub payouts: Vec<Paid>,
    pub total_cents: i64,
}

fn paid(e: &Entry) -> Paid {
    Paid {
        account_id: e.account_id,
        amount_cents: -e.amount_cents,
        transaction_id: e.id,
    }
}

/// Closes `day`: pays out every positive balance unless the day was
/// closed already (then answers what that close paid).
pub fn close_day(conn: &mut PgConnection, day: NaiveDate) -> QueryResult<Closed> {
    conn.transaction(|c| {
        // A concurrent close of the same day waits here for this one and
        // then finds the row.
        let inserted = diesel::insert_into(day_close::table)
            .values((
                day_close::day.eq(day),
                day_close::paid_count.eq(0),
                day_close::paid_cents.eq(0i64),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        if inserted == 0 {
            let closed_at = day_close::table
                .find(day)
                .select(day_close::closed_at)
                .first(c)?;
            let payouts: Vec<Paid> = ledger::payouts_of(c, day)?
                .iter()
                .map(paid)
                .collect();
            let total_cents = payouts.iter().map(|p| p.amount_cents).sum();
            return Ok(Closed {
                day,
                closed_at,
                newly_closed: false,
                payouts,
                total_cents,
            });
        }
        let mut payouts = Vec::new();
        let mut notifications = Vec::new();
        for (account, amount) in ledger::positive_balances(c)? {
            let entry = ledger::append(
                c,
                &NewEntry {
                    account_id: account,
                    kind: Kind::Payout,
                    amount_cents: -amount,
                    task_id: None,
                    description: format!(
                        "payout of {} for {day}",
                        crate::close::money(amount)
                    ),
                    business_day: day,
                    source_key: format!("payout:{day}:{account}"),
                    reverses: None,
                },
            )?;
            let Some(entry) = entry else { continue };
            let user = users::user(c, account)?;
            let mail = user.as_ref().and_then(|u| {
                let to = u.email.clone()?;
                Some(crate::close::payout_notification(
                    u.username.as_deref(),
                    to,
                    amount,
                    day,
                ))
            });
            if mail.is_none() {
                tracing::warn!(account.id = %account, "no email known for a paid worker: no mail asked for");
            }
            payouts.push(paid(&entry));
            if let Some(n) = mail {
                let payload = serde_json::to_value(&n)
                    .map_err(|err| diesel::result::Error::SerializationError(Box::new(err)))?;
                notifications.push(Envelope::new(
                    Op::Create,
                    "notification",
                    n.id.to_string(),
                    1,
                    ledger::source("day_close"),
                    None,
                    Some(payload),
                ));
            }
        }
        platform::events::enqueue_many(c, topics::NOTIFICATION, &notifications)?;
        let total_cents: i64 = payouts.iter().map(|p| p.amount_cents).sum();
        let closed_at: DateTime<Utc> = diesel::update(day_close::table.find(day))
            .set((
                day_close::paid_count.eq(payouts.len() as i32),
                day_close::paid_cents.eq(total_cents),
            ))
            .returning(day_close::closed_at)
            .get_result(c)?;
        Ok(Closed {
            day,
            closed_at,
            newly_closed: true,
            payouts,
            total_cents,
        })
    })
}

/// Whether `day` was closed.
pub fn is_closed(conn: &mut PgConnection, day: NaiveDate) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(day_close::table.find(day))).get_result(conn)
}
