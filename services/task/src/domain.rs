//! Input parsed once, at the edge: a value of these types is valid. Sort
//! fields and filter keys come from allow-lists, so nothing a caller sends
//! ever becomes SQL text.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A field that broke a rule: the platform's one field error
/// ([`contracts::FieldError`], answered 400 `invalid-field`).
pub type Invalid = contracts::FieldError;

/// The date format of the task-management design's task API
/// (docs/architecture.md), read as UTC.
pub const SEED_DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339; anything else is refused.
pub fn parse_timestamp(field: &str, raw: &str) -> Result<DateTime<Utc>, Invalid> {
    let raw = raw.trim();
    let parsed = NaiveDateTime::parse_from_str(raw, SEED_DATE_FORMAT)
        .map(|n| n.and_utc())
        .or_else(|_| DateTime::parse_from_rfc3339(raw).map(|d| d.with_timezone(&Utc)));
    match parsed {
        Ok(d) if (1..=9999).contains(&d.year()) => Ok(d),
        _ => Err(Invalid::new(
            field,
            "date_format",
            format!(
                "{field} must be 'YYYY-MM-DD HH:MM:SS' (UTC) or RFC 3339 such as 2024-10-10T08:00:00Z"
            ),
        )),
    }
}

/// `start_date` to `end_date`, both inclusive, either open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl DateRange {
    pub fn parse(start: Option<&str>, end: Option<&str>) -> Result<Self, Invalid> {
        let start = start
            .map(|s| parse_timestamp("start_date", s))
            .transpose()?;
        let end = end.map(|s| parse_timestamp("end_date", s)).transpose()?;
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(Invalid::new(
                    "end_date",
                    "date_order",
                    "end_date must not be before start_date",
                ));
            }
        }
        Ok(Self { start, end })
    }
}

/// The first instant of the calendar month (UTC) holding `t`.
fn month_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1)
        .expect("the first of a month exists")
        .and_time(NaiveTime::MIN)
        .and_utc()
}

/// The first instant of the month after the one holding `t`.
fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .expect("the first of a month exists")
        .and_time(NaiveTime::MIN)
        .and_utc()
}

/// `t` cut to whole microseconds, PostgreSQL's precision.
fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

const MICROSECOND: TimeDelta = TimeDelta::microseconds(1);

/// Whole months `[from, until)`, by their first instants; `None` is open.
pub type Months = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// How the summary reads a range: the whole calendar months (UTC) inside
/// it from the rollup, the partial months at its edges from the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthSplit {
    /// Whole months `[from, until)` (month starts; `None`: open on that
    /// side); `None` when the range holds no whole month.
    pub months: Option<Months>,
    /// The part before the first whole month (both ends inclusive).
    pub head: Option<DateRange>,
    /// The part after the last whole month (both ends inclusive).
    pub tail: Option<DateRange>,
}

impl DateRange {
    /// Both ends, an open one as the first or last instant a date may
    /// name (years 1 to 9999), for queries of one fixed shape.
    pub fn bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let first = NaiveDate::from_ymd_opt(1, 1, 1)
            .expect("year 1 exists")
            .and_time(NaiveTime::MIN)
            .and_utc();
        let after_last = NaiveDate::from_ymd_opt(10000, 1, 1)
            .expect("year 10000 exists")
            .and_time(NaiveTime::MIN)
            .and_utc();
        (
            self.start.unwrap_or(first),
            self.end.unwrap_or(after_last - MICROSECOND),
        )
    }

    /// Splits the range at month boundaries. Together the three parts
    /// cover exactly the instants of the range, none twice.
    pub fn split_by_month(&self) -> MonthSplit {
        let start = self.start.map(to_micros);
        let end = self.end.map(to_micros);
        // First month starting at or after `start`; first month starting
        // after `end` is not whole, so the last whole one ends at the
        // start of the month holding `end + 1 µs`.
        let from = start.map(|s| {
            if month_floor(s) == s {
                s
            } else {
                next_month(s)
            }
        });
        let until = end.map(|e| month_floor(e + MICROSECOND));
        if let (Some(f), Some(u)) = (from, until) {
            if f >= u {
                return MonthSplit {
                    months: None,
                    head: Some(DateRange { start, end }),
                    tail: None,
                };
            }
        }
        let head = match (start, from) {
            (Some(s), Some(f)) if s < f => Some(DateRange {
                start: Some(s),
                end: Some(f - MICROSECOND),
            }),
            _ => None,
        };
        let tail = match (until, end) {
            (Some(u), Some(e)) if u <= e => Some(DateRange {
                start: Some(u),
                end: Some(e),
            }),
            _ => None,
        };
        MonthSplit {
            months: Some((from, until)),
            head,
            tail,
        }
    }
}

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;
/// Deep offsets cost a scan of everything before them; past this, narrow
/// the date range instead.
pub const MAX_OFFSET: i64 = 1_000_000;

/// `_from` and `_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub from: i64,
    pub size: i64,
}

impl Page {
    pub fn parse(from: Option<i64>, size: Option<i64>) -> Result<Self, Invalid> {
        let from = from.unwrap_or(0);
        let size = size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(0..=MAX_OFFSET).contains(&from) {
            return Err(Invalid::new(
                "_from",
                "page_offset",
                format!("_from must be between 0 and {MAX_OFFSET}"),
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(Invalid::new(
                "_size",
                "page_size",
                format!("_size must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Self { from, size })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// What a task list may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSortField {
    Id,
    Title,
    CreatedAt,
    UpdatedAt,
    DueDate,
    StatusId,
    TypeId,
    SeverityId,
    Assignee,
    Creator,
}

impl TaskSortField {
    /// The allow-list; `created` and `updated` are the spellings of the
    /// task-management design's task API (docs/architecture.md).
    pub const NAMES: [&'static str; 10] = [
        "id",
        "title",
        "created_at",
        "updated_at",
        "due_date",
        "status_id",
        "type_id",
        "severity_id",
        "assignee",
        "creator",
    ];

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "id" => Self::Id,
            "title" => Self::Title,
            "created_at" | "created" => Self::CreatedAt,
            "updated_at" | "updated" => Self::UpdatedAt,
            "due_date" => Self::DueDate,
            "status_id" => Self::StatusId,
            "type_id" => Self::TypeId,
            "severity_id" => Self::SeverityId,
            "assignee" => Self::Assignee,
            "creator" => Self::Creator,
            _ => return None,
        })
    }
}

/// What the summary may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummarySortField {
    Username,
    Total,
    Completed,
}

impl SummarySortField {
    pub const NAMES: [&'static str; 3] = ["username", "total", "completed"];

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "username" | "assignee" => Self::Username,
            "total" | "total_tasks" => Self::Total,
            "completed" | "completed_tasks" => Self::Completed,
            _ => return None,
        })
    }
}

pub const MAX_SORT_KEYS: usize = 4;

/// `-created_at,status_id`: comma-separated names from an allow-list, each
/// optionally prefixed with `-` (descending) or `+`.
fn parse_sort<F: Copy + PartialEq>(
    raw: &str,
    from_name: impl Fn(&str) -> Option<F>,
    allowed: &[&str],
) -> Result<Vec<(F, Direction)>, Invalid> {
    let bad = |message: String| Invalid::new("sort", "sort_field", message);
    let mut out: Vec<(F, Direction)> = Vec::new();
    for item in raw.split(',') {
        let item = item.trim();
        let (dir, name) = match item.as_bytes().first() {
            Some(b'-') => (Direction::Desc, &item[1..]),
            Some(b'+') => (Direction::Asc, &item[1..]),
            _ => (Direction::Asc, item),
        };
        let field = from_name(name).ok_or_else(|| {
            let shown: String = name.chars().take(40).collect();
            bad(format!(
                "cannot sort by {shown:?}; sort by a comma-separated list of {}, each optionally prefixed with '-'",
                allowed.join(", ")
            ))
        })?;
        if out.iter().any(|(f, _)| *f == field) {
            return Err(bad(format!("{name} appears twice in sort")));
        }
        out.push((field, dir));
    }
    if out.len() > MAX_SORT_KEYS {
        return Err(bad(format!("sort by at most {MAX_SORT_KEYS} fields")));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSort(pub Vec<(TaskSortField, Direction)>);

impl TaskSort {
    /// Newest first unless told otherwise.
    pub fn parse(raw: Option<&str>) -> Result<Self, Invalid> {
        match raw {
            None => Ok(Self(vec![(TaskSortField::CreatedAt, Direction::Desc)])),
            Some(r) => parse_sort(r, TaskSortField::from_name, &TaskSortField::NAMES).map(Self),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummarySort(pub Vec<(SummarySortField, Direction)>);

impl SummarySort {
    /// By username unless told otherwise.
    pub fn parse(raw: Option<&str>) -> Result<Self, Invalid> {
        match raw {
            None => Ok(Self(vec![(SummarySortField::Username, Direction::Asc)])),
            Some(r) => {
                parse_sort(r, SummarySortField::from_name, &SummarySortField::NAMES).map(Self)
            }
        }
    }
}

/// A user named by account id or by username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(Uuid),
    Username(String),
}

impl UserRef {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        if let Ok(id) = raw.parse::<Uuid>() {
            return Ok(Self::Id(id));
        }
        // The authenticator's username alphabet.
        let ok = (3..=64).contains(&raw.len())
            && raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self::Username(raw.to_owned()))
        } else {
            Err(Invalid::new(
                field,
                "user_reference",
                format!("{field} must be a username or an account id"),
            ))
        }
    }
}

/// Equality filters of `query`, from an allow-list. `Some(None)` asks for
/// the field to be empty (no assignee, no severity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub assignee: Option<Option<UserRef>>,
    pub creator: Option<UserRef>,
    pub status_id: Option<i32>,
    pub type_id: Option<i32>,
    pub severity_id: Option<Option<i32>>,
}

impl TaskFilter {
    pub const KEYS: [&'static str; 5] =
        ["assignee", "creator", "status_id", "type_id", "severity_id"];

    pub fn parse(query: &Map<String, Value>) -> Result<Self, Invalid> {
        let mut f = Self::default();
        for (key, value) in query {
            let field = format!("query.{key}");
            let id = |v: &Value| -> Result<i32, Invalid> {
                v.as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| {
                        Invalid::new(&field, "integer", format!("{field} must be an integer id"))
                    })
            };
            let user = |v: &Value| -> Result<UserRef, Invalid> {
                v.as_str()
                    .ok_or_else(|| {
                        Invalid::new(
                            &field,
                            "user_reference",
                            format!("{field} must be a username or an account id"),
                        )
                    })
                    .and_then(|s| UserRef::parse(&field, s))
            };
            match key.as_str() {
                "assignee" => {
                    f.assignee = Some(if value.is_null() {
                        None
                    } else {
                        Some(user(value)?)
                    })
                }
                "creator" => f.creator = Some(user(value)?),
                "status_id" => f.status_id = Some(id(value)?),
                "type_id" => f.type_id = Some(id(value)?),
                "severity_id" => {
                    f.severity_id = Some(if value.is_null() {
                        None
                    } else {
                        Some(id(value)?)
                    })
                }
                other => {
                    let shown: String = other.chars().take(40).collect();
                    return Err(Invalid::new(
                        "query",
                        "query_field",
                        format!(
                            "cannot filter by {shown:?}; query may hold {}",
                            Self::KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let t = raw.trim();
        if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
            return Err(Invalid::new(
                "title",
                "title_format",
                "title must be 1 to 200 printable characters",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

pub fn parse_description(raw: &str) -> Result<String, Invalid> {
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Invalid::new(
            "description",
            "max_length",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(raw.to_owned())
}

/// The cheapest price a task may have, in cents.
pub const MIN_PRICE_CENTS: i64 = 1;
/// The dearest price a task may have, in cents (a million in whole units).
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

/// A task's price in integer cents, 1 to [`MAX_PRICE_CENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    pub fn new(cents: i64) -> Result<Self, Invalid> {
        if (MIN_PRICE_CENTS..=MAX_PRICE_CENTS).contains(&cents) {
            Ok(Self(cents))
        } else {
            Err(Self::refusal())
        }
    }

    /// `price_cents` as a request sends it: an integer, nothing else.
    pub fn parse(raw: &Value) -> Result<Self, Invalid> {
        raw.as_i64().ok_or_else(Self::refusal).and_then(Self::new)
    }

    fn refusal() -> Invalid {
        Invalid::new(
            "price_cents",
            "price_range",
            format!("price_cents must be a whole number of cents from {MIN_PRICE_CENTS} to {MAX_PRICE_CENTS}"),
        )
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

/// What a price earns and costs: the assignment fee and the completion
/// reward are the price times their ratios, rounded to whole cents (half
/// away from zero).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub fee_ratio: f64,
    pub reward_ratio: f64,
}

/// A task's price with its fee and reward, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    pub price_cents: i64,
    pub assignment_fee_cents: i64,
    pub completion_reward_cents: i64,
}

impl Pricing {
    /// The largest ratio accepted: beyond it a reward could overflow what
    /// a task's amounts are meant to hold.
    pub const MAX_RATIO: f64 = 1_000.0;

    /// Ratios must be finite, 0 to [`Self::MAX_RATIO`].
    pub fn new(fee_ratio: f64, reward_ratio: f64) -> Result<Self, String> {
        for (name, r) in [
            ("TASK_ASSIGNMENT_FEE_RATIO", fee_ratio),
            ("TASK_COMPLETION_REWARD_RATIO", reward_ratio),
        ] {
            if !r.is_finite() || !(0.0..=Self::MAX_RATIO).contains(&r) {
                return Err(format!(
                    "{name} must be a number from 0 to {}",
                    Self::MAX_RATIO
                ));
            }
        }
        Ok(Self {
            fee_ratio,
            reward_ratio,
        })
    }

    pub fn amounts(&self, price: Price) -> Amounts {
        // Prices are at most 1e8 and ratios at most 1e3: every product is
        // exact in an f64 and far inside an i64.
        let of = |ratio: f64| (price.cents() as f64 * ratio).round() as i64;
        Amounts {
            price_cents: price.cents(),
            assignment_fee_cents: of(self.fee_ratio),
            completion_reward_cents: of(self.reward_ratio),
        }
    }
}

/// A change of a task's fields, as `PATCH /v1/tasks/{id}` sends it: only
/// the keys present change; `null` clears a description or a due date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldChanges {
    pub title: Option<Title>,
    pub description: Option<Option<String>>,
    pub due_date: Option<Option<DateTime<Utc>>>,
    pub type_id: Option<i32>,
    pub price: Option<Price>,
}

impl FieldChanges {
    pub const KEYS: [&'static str; 5] =
        ["title", "description", "due_date", "type_id", "price_cents"];

    pub fn parse(body: &Map<String, Value>) -> Result<Self, Invalid> {
        let mut c = Self::default();
        let text = |key: &str, v: &Value| -> Result<String, Invalid> {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Invalid::new(key, "string", format!("{key} must be a string")))
        };
        for (key, value) in body {
            match key.as_str() {
                "title" => c.title = Some(Title::parse(&text("title", value)?)?),
                "description" => {
                    c.description = Some(match value {
                        Value::Null => None,
                        v => Some(parse_description(&text("description", v)?)?),
                    })
                }
                "due_date" => {
                    c.due_date = Some(match value {
                        Value::Null => None,
                        v => Some(parse_timestamp("due_date", &text("due_date", v)?)?),
                    })
                }
                "type_id" => {
                    c.type_id = Some(
                        value
                            .as_i64()
                            .and_then(|n| i32::try_from(n).ok())
                            .ok_or_else(|| {
                                Invalid::new("type_id", "integer", "type_id must be an integer id")
                            })?,
                    )
                }
                "price_cents" => c.price = Some(Price::parse(value)?),
                other => {
                    let shown: String = other.chars().take(40).collect();
                    return Err(Invalid::new(
                        other,
                        "unknown_field",
                        format!(
                            "{shown:?} cannot be changed here; a task's {} can",
                            Self::KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_the_seed_format_or_rfc_3339_and_nothing_else() {
        let seed = parse_timestamp("d", "2024-10-10 08:30:00").unwrap();
        assert_eq!(seed.to_rfc3339(), "2024-10-10T08:30:00+00:00");
        let rfc = parse_timestamp("d", "2024-10-10T10:30:00+02:00").unwrap();
        assert_eq!(rfc, seed);
        for bad in [
            "",
            "2024-10-10",
            "10/10/2024 08:30:00",
            "2024-13-10 08:30:00",
            "2024-10-10 08:30",
            "yesterday",
            "2024-10-10 08:30:00; DROP TABLE task",
        ] {
            let e = parse_timestamp("start_date", bad).unwrap_err();
            assert_eq!(e.rule, "date_format", "{bad}");
        }
    }

    #[test]
    fn a_range_must_not_end_before_it_starts() {
        assert!(
            DateRange::parse(Some("2024-01-02 00:00:00"), Some("2024-01-01 00:00:00")).is_err()
        );
        let r = DateRange::parse(None, Some("2024-01-01 00:00:00")).unwrap();
        assert!(r.start.is_none() && r.end.is_some());
    }

    #[test]
    fn pages_are_capped() {
        assert_eq!(
            Page::parse(None, None).unwrap(),
            Page {
                from: 0,
                size: DEFAULT_PAGE_SIZE
            }
        );
        assert_eq!(Page::parse(Some(0), Some(101)).unwrap_err().field, "_size");
        assert_eq!(Page::parse(Some(0), Some(0)).unwrap_err().field, "_size");
        assert_eq!(Page::parse(Some(-1), Some(10)).unwrap_err().field, "_from");
        assert!(Page::parse(Some(5), Some(100)).is_ok());
    }

    #[test]
    fn sort_takes_only_allowed_fields() {
        let s = TaskSort::parse(Some("-created_at,status_id")).unwrap();
        assert_eq!(
            s.0,
            vec![
                (TaskSortField::CreatedAt, Direction::Desc),
                (TaskSortField::StatusId, Direction::Asc)
            ]
        );
        assert_eq!(
            TaskSort::parse(Some("-created")).unwrap().0[0].0,
            TaskSortField::CreatedAt
        );
        for bad in [
            "",
            "created_at desc",
            "created_at;DROP TABLE task",
            "(select 1)",
            "password",
            "id,id",
            "-",
            "id,title,status_id,type_id,severity_id",
        ] {
            assert!(TaskSort::parse(Some(bad)).is_err(), "{bad}");
        }
        assert!(SummarySort::parse(Some("-completed,username")).is_ok());
        assert!(SummarySort::parse(Some("created_at")).is_err());
    }

    #[test]
    fn query_filters_come_from_an_allow_list() {
        let q = json!({"assignee": "kiennt96", "status_id": 4, "severity_id": null});
        let f = TaskFilter::parse(q.as_object().unwrap()).unwrap();
        assert_eq!(f.assignee, Some(Some(UserRef::Username("kiennt96".into()))));
        assert_eq!(f.status_id, Some(4));
        assert_eq!(f.severity_id, Some(None));
        for bad in [
            json!({"title": "x"}),
            json!({"status_id": "4"}),
            json!({"status_id": 1.5}),
            json!({"status_id": 99999999999_i64}),
            json!({"assignee": "Robert'); DROP TABLE task;--"}),
            json!({"1=1": true}),
        ] {
            assert!(
                TaskFilter::parse(bad.as_object().unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn titles_are_short_printable_text() {
        assert!(Title::parse("  ").is_err());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(Title::parse("a\u{0}b").is_err());
        assert_eq!(Title::parse(" Ship it ").unwrap().into_inner(), "Ship it");
    }

    fn t(raw: &str) -> DateTime<Utc> {
        parse_timestamp("t", raw).unwrap()
    }

    fn range(start: Option<&str>, end: Option<&str>) -> DateRange {
        DateRange::parse(start, end).unwrap()
    }

    #[test]
    fn a_range_splits_into_whole_months_and_partial_edges() {
        let s = range(Some("2024-01-15 10:00:00"), Some("2024-04-02 00:00:00")).split_by_month();
        assert_eq!(
            s.months,
            Some((
                Some(t("2024-02-01 00:00:00")),
                Some(t("2024-04-01 00:00:00"))
            ))
        );
        assert_eq!(
            s.head,
            Some(DateRange {
                start: Some(t("2024-01-15 10:00:00")),
                end: Some(t("2024-01-31T23:59:59.999999Z")),
            })
        );
        assert_eq!(
            s.tail,
            Some(DateRange {
                start: Some(t("2024-04-01 00:00:00")),
                end: Some(t("2024-04-02 00:00:00")),
            })
        );
    }

    #[test]
    fn month_aligned_edges_need_no_partial_reads() {
        // Starts on a month's first instant, ends on a month's last one.
        let s = range(
            Some("2024-11-01 00:00:00"),
            Some("2025-01-31T23:59:59.999999Z"),
        )
        .split_by_month();
        assert_eq!(
            s.months,
            Some((
                Some(t("2024-11-01 00:00:00")),
                Some(t("2025-02-01 00:00:00"))
            ))
        );
        assert_eq!((s.head, s.tail), (None, None));
        // A whole second short of the month's end leaves that month partial.
        let s = range(Some("2024-11-01 00:00:00"), Some("2025-01-31 23:59:59")).split_by_month();
        assert_eq!(
            s.months,
            Some((
                Some(t("2024-11-01 00:00:00")),
                Some(t("2025-01-01 00:00:00"))
            ))
        );
        assert_eq!(s.tail.unwrap().start, Some(t("2025-01-01 00:00:00")));
    }

    #[test]
    fn a_range_inside_one_month_is_read_from_the_tasks_alone() {
        let r = range(Some("2024-03-03 00:00:00"), Some("2024-03-20 00:00:00"));
        let s = r.split_by_month();
        assert_eq!((s.months, s.head, s.tail), (None, Some(r), None));
        // Across a month boundary without a whole month: two edges.
        let s = range(Some("2024-03-20 00:00:00"), Some("2024-04-10 00:00:00")).split_by_month();
        assert_eq!(s.months, None);
        assert_eq!(s.head.unwrap().end, Some(t("2024-04-10 00:00:00")));
    }

    #[test]
    fn open_ends_stay_open() {
        let s = DateRange::default().split_by_month();
        assert_eq!((s.months, s.head, s.tail), (Some((None, None)), None, None));
        let s = range(Some("2024-03-03 12:00:00"), None).split_by_month();
        assert_eq!(s.months, Some((Some(t("2024-04-01 00:00:00")), None)));
        assert!(s.head.is_some() && s.tail.is_none());
        let s = range(None, Some("2024-12-31 23:00:00")).split_by_month();
        assert_eq!(s.months, Some((None, Some(t("2024-12-01 00:00:00")))));
        assert!(s.head.is_none() && s.tail.is_some());
    }

    #[test]
    fn prices_are_whole_cents_within_bounds() {
        assert_eq!(Price::parse(&json!(1)).unwrap().cents(), 1);
        assert_eq!(
            Price::parse(&json!(100_000_000)).unwrap().cents(),
            100_000_000
        );
        for bad in [
            json!(0),
            json!(-5),
            json!(100_000_001),
            json!(1.5),
            json!("100"),
            json!(null),
        ] {
            let e = Price::parse(&bad).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.rule.as_str()),
                ("price_cents", "price_range"),
                "{bad}"
            );
        }
    }

    #[test]
    fn fees_and_rewards_are_the_price_times_their_ratios_rounded() {
        let p = Pricing::new(0.5, 1.0).unwrap();
        let a = p.amounts(Price::new(1001).unwrap());
        assert_eq!(
            (
                a.price_cents,
                a.assignment_fee_cents,
                a.completion_reward_cents
            ),
            (1001, 501, 1001)
        );
        let a = Pricing::new(0.333, 2.5)
            .unwrap()
            .amounts(Price::new(100).unwrap());
        assert_eq!(
            (a.assignment_fee_cents, a.completion_reward_cents),
            (33, 250)
        );
        assert!(Pricing::new(-0.1, 1.0).is_err());
        assert!(Pricing::new(0.5, f64::NAN).is_err());
    }

    #[test]
    fn a_change_of_fields_takes_the_known_keys_and_null_clears() {
        let body = json!({"title": " New ", "description": null, "due_date": "2025-01-01 00:00:00",
                          "type_id": 2, "price_cents": 250});
        let c = FieldChanges::parse(body.as_object().unwrap()).unwrap();
        assert_eq!(c.title.unwrap().into_inner(), "New");
        assert_eq!(c.description, Some(None));
        assert_eq!(c.due_date, Some(Some(t("2025-01-01 00:00:00"))));
        assert_eq!(c.type_id, Some(2));
        assert_eq!(c.price.map(Price::cents), Some(250));
        for (bad, field) in [
            (json!({"status_id": 2}), "status_id"),
            (json!({"title": null}), "title"),
            (json!({"type_id": "2"}), "type_id"),
            (json!({"price_cents": 0}), "price_cents"),
            (json!({"due_date": "tomorrow"}), "due_date"),
        ] {
            let e = FieldChanges::parse(bad.as_object().unwrap()).unwrap_err();
            assert_eq!(e.field, field, "{bad}");
        }
    }
}
