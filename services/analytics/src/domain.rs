//! Input parsed once, at the edge: a value of these types is valid.

use chrono::{Datelike, Days, Months, NaiveDate, TimeDelta};

/// A field that broke a rule: the platform's one field error
/// ([`contracts::FieldError`], answered 400 `invalid-field`).
pub type Invalid = contracts::FieldError;

/// The longest range of days a report answers at once.
pub const MAX_RANGE_DAYS: i64 = 366;

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
}

/// How a range is cut: days, ISO weeks (Monday to Sunday) or calendar
/// months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    /// `day`, `week` or `month`; unset, `day`.
    pub fn parse(raw: Option<&str>) -> Result<Self, Invalid> {
        match raw.map(str::trim) {
            None | Some("day") => Ok(Self::Day),
            Some("week") => Ok(Self::Week),
            Some("month") => Ok(Self::Month),
            Some(_) => Err(Invalid::new(
                "period",
                "one_of",
                "period must be day, week or month",
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The first day of the period `day` falls in.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => day,
            Self::Week => day - Days::new(day.weekday().num_days_from_monday().into()),
            Self::Month => day.with_day(1).expect("every month has a first day"),
        }
    }

    /// The last day of the period that starts on `start`.
    pub fn end_of(self, start: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => start,
            Self::Week => start + Days::new(6),
            Self::Month => start + Months::new(1) - Days::new(1),
        }
    }

    /// The starts of the periods that `range` touches, in order.
    pub fn starts(self, range: DayRange) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut start = self.start_of(range.from);
        while start <= range.to {
            out.push(start);
            start = self.end_of(start) + Days::new(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_range_is_ordered_bounded_and_written_as_dates() {
        let today = d("2026-12-03");
        let r = DayRange::parse(None, None, today).unwrap();
        assert_eq!((r.from, r.to), (d("2026-11-04"), today));
        assert!(DayRange::parse(Some("2026-12-04"), Some("2026-12-03"), today).is_err());
        assert!(DayRange::parse(Some("2025-01-01"), Some("2026-01-01"), today).is_ok());
        assert!(DayRange::parse(Some("2024-01-01"), Some("2025-01-01"), today).is_err());
        assert!(DayRange::parse(Some("yesterday"), None, today).is_err());
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-12-03 is a Thursday.
        assert_eq!(Period::Week.start_of(d("2026-12-03")), d("2026-11-30"));
        assert_eq!(Period::Week.end_of(d("2026-11-30")), d("2026-12-06"));
        assert_eq!(Period::Month.start_of(d("2026-02-17")), d("2026-02-01"));
        assert_eq!(Period::Month.end_of(d("2026-02-01")), d("2026-02-28"));
        let r = DayRange {
            from: d("2026-01-31"),
            to: d("2026-03-01"),
        };
        assert_eq!(
            Period::Month.starts(r),
            vec![d("2026-01-01"), d("2026-02-01"), d("2026-03-01")]
        );
        assert_eq!(Period::Day.starts(r).len(), 30);
        assert!(Period::parse(Some("year")).is_err());
    }
}
