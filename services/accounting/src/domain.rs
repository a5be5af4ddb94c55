//! Input parsed once, at the edge, and the calendar of business days: a
//! value of these types is valid.

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

/// A field that broke a rule: the platform's one field error
/// ([`contracts::FieldError`], answered 400 `invalid-field`).
pub type Invalid = contracts::FieldError;

/// The longest range of days the earnings history answers at once.
pub const MAX_RANGE_DAYS: i64 = 366;
/// Ledger entries per page when the caller does not say.
pub const DEFAULT_PAGE: i64 = 50;
/// The most ledger entries one page holds.
pub const MAX_PAGE: i64 = 500;

/// Whose ledger a path names: the caller's own (`me`) or an account id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRef {
    Me,
    Id(Uuid),
}

impl AccountRef {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        if raw == "me" {
            return Ok(Self::Me);
        }
        raw.parse().map(Self::Id).map_err(|_| {
            Invalid::new(
                "account",
                "account_format",
                "account must be 'me' or an account id (a UUID)",
            )
        })
    }

    /// The account meant, `me` being `caller`.
    pub fn resolve(self, caller: Option<Uuid>) -> Option<Uuid> {
        match self {
            Self::Me => caller,
            Self::Id(id) => Some(id),
        }
    }
}

/// `YYYY-MM-DD`; anything else is refused.
pub fn parse_day(field: &'static str, raw: &str) -> Result<NaiveDate, Invalid> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
        Invalid::new(
            field,
            "date_format",
            format!("{field} must be a date such as 2026-12-03 (YYYY-MM-DD)"),
        )
    })
}

/// `from` to `to`, both inclusive, at most [`MAX_RANGE_DAYS`] days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    /// Unset, `to` is `today` and `from` 29 days before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<Self, Invalid> {
        let to = to.map(|t| parse_day("to", t)).transpose()?.unwrap_or(today);
        let from = match from {
            Some(f) => parse_day("from", f)?,
            None => to - TimeDelta::days(29),
        };
        if from > to {
            return Err(Invalid::new(
                "to",
                "date_order",
                "to must not be before from",
            ));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS {
            return Err(Invalid::new(
                "from",
                "range_too_long",
                format!("a range holds at most {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(Self { from, to })
    }

    /// Every day of the range, in order.
    pub fn days(self) -> impl Iterator<Item = NaiveDate> {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}

/// A page of a ledger: at most `limit` entries, older than `before` (an
/// entry's `seq`) when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub before: Option<i64>,
}

impl Page {
    pub fn parse(limit: Option<i64>, before: Option<i64>) -> Result<Self, Invalid> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Invalid::new(
                "limit",
                "out_of_range",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        if before.is_some_and(|b| b < 1) {
            return Err(Invalid::new(
                "before",
                "out_of_range",
                "before must be a positive entry sequence number",
            ));
        }
        Ok(Self { limit, before })
    }
}

/// The business calendar: days in the close's time zone, each closed at
/// `close_hour` (local) of the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub zone: Tz,
    pub close_hour: u32,
}

impl Calendar {
    /// The business day `at` falls on.
    pub fn day_of(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    pub fn today(&self) -> NaiveDate {
        self.day_of(Utc::now())
    }

    /// The latest day whose close is due at `now`: the day before the
    /// local date of `now - close_hour`.
    pub fn due(&self, now: DateTime<Utc>) -> NaiveDate {
        let shifted = now.with_timezone(&self.zone) - TimeDelta::hours(self.close_hour.into());
        shifted.date_naive() - Days::new(1)
    }

    /// Whether `day` has ended (it is before today), so may be closed.
    pub fn has_ended(&self, day: NaiveDate) -> bool {
        day < self.today()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_close_at_midnight_utc_is_due_for_yesterday() {
        let c = Calendar {
            zone: Tz::UTC,
            close_hour: 0,
        };
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(c.due(utc("2026-12-03T00:00:00Z")), d("2026-12-02"));
        assert_eq!(c.due(utc("2026-12-03T23:59:59Z")), d("2026-12-02"));
    }

    #[test]
    fn the_close_waits_for_its_local_hour_in_its_zone() {
        let c = Calendar {
            zone: "Europe/Berlin".parse().unwrap(),
            close_hour: 2,
        };
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // 01:30 in Berlin (00:30 UTC): the 2nd is not yet due.
        assert_eq!(c.due(utc("2026-12-03T00:30:00Z")), d("2026-12-01"));
        // 02:30 in Berlin: it is.
        assert_eq!(c.due(utc("2026-12-03T01:30:00Z")), d("2026-12-02"));
        assert_eq!(c.day_of(utc("2026-12-02T23:30:00Z")), d("2026-12-03"));
    }

    #[test]
    fn a_range_is_ordered_bounded_and_written_as_dates() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let r = DayRange::parse(None, None, today).unwrap();
        assert_eq!(r.days().count(), 30);
        assert!(DayRange::parse(Some("2026-12-04"), Some("2026-12-03"), today).is_err());
        assert!(DayRange::parse(Some("2020-01-01"), None, today).is_err());
        assert!(DayRange::parse(Some("yesterday"), None, today).is_err());
    }

    #[test]
    fn an_account_is_me_or_a_uuid() {
        assert_eq!(AccountRef::parse("me").unwrap(), AccountRef::Me);
        assert!(AccountRef::parse("someone").is_err());
        let id = Uuid::new_v4();
        assert_eq!(
            AccountRef::parse(&id.to_string()).unwrap(),
            AccountRef::Id(id)
        );
    }
}
