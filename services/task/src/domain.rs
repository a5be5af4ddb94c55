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
mod tests;
