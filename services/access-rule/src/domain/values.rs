//! The values an event carries, each validated once where it is parsed,
//! and [`Invalid`], the field and rule a value failed.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// A field that broke a rule: the platform's one field error
/// ([`contracts::FieldError`], answered 400 `invalid-field`).
pub type Invalid = contracts::FieldError;

const MAX_ID_CHARS: usize = 128;

fn plain_text(raw: &str) -> bool {
    !raw.chars().any(char::is_control)
}

/// The user an event or a check is about: 1 to 128 characters, no control
/// characters. Account ids from `iam.user.v1` are UUID strings; the User
/// Access Management design (docs/architecture.md) used arbitrary ids, so
/// a non-negative JSON integer is taken as its decimal text (`42` and
/// `"42"` are the same user).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let n = raw.chars().count();
        if (1..=MAX_ID_CHARS).contains(&n) && plain_text(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "user_id",
                "user_id_format",
                "user_id must be 1 to 128 characters without control characters",
            ))
        }
    }

    pub(super) fn from_json(v: Option<&Value>) -> Result<Self, Invalid> {
        let in_body = |e: Invalid| Invalid {
            field: "event_properties.user_id".into(),
            ..e
        };
        match v {
            Some(Value::String(s)) => Self::parse(s).map_err(in_body),
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                Self::parse(&n.to_string()).map_err(in_body)
            }
            None | Some(Value::Null) => Err(Invalid::new(
                "event_properties.user_id",
                "required",
                "event_properties.user_id is required",
            )),
            Some(_) => Err(Invalid::new(
                "event_properties.user_id",
                "type",
                "event_properties.user_id must be a string (or a non-negative integer)",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's id for an event: an event resent with the same id is applied
/// once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub(super) fn from_json(v: Option<&Value>) -> Result<Option<Self>, Invalid> {
        let bad = || {
            Invalid::new(
                "event_id",
                "event_id_format",
                "event_id must be a string of 1 to 128 characters without control characters",
            )
        };
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if (1..=MAX_ID_CHARS).contains(&n) && plain_text(s) {
                    Ok(Some(Self(s.clone())))
                } else {
                    Err(bad())
                }
            }
            Some(_) => Err(bad()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount of money in cents: not negative, at most two decimals, at most
/// a trillion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Cents(pub(super) i64);

const MAX_CENTS: i64 = 100_000_000_000_000;

impl Cents {
    pub fn new(cents: i64) -> Option<Self> {
        (0..=MAX_CENTS).contains(&cents).then_some(Self(cents))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub(super) fn from_json(field: &'static str, v: Option<&Value>) -> Result<Self, Invalid> {
        let n = match v {
            Some(Value::Number(n)) => n,
            None | Some(Value::Null) => {
                return Err(Invalid::new(
                    field,
                    "required",
                    format!("{field} is required"),
                ))
            }
            Some(_) => {
                return Err(Invalid::new(
                    field,
                    "type",
                    format!("{field} must be a number (an amount such as 12.50)"),
                ))
            }
        };
        let negative = || {
            Invalid::new(
                field,
                "not_negative",
                format!("{field} must not be negative"),
            )
        };
        let too_large = || {
            Invalid::new(
                field,
                "too_large",
                format!("{field} must be at most 1000000000000"),
            )
        };
        if let Some(u) = n.as_u64() {
            return u
                .checked_mul(100)
                .and_then(|c| i64::try_from(c).ok())
                .and_then(Cents::new)
                .ok_or_else(too_large);
        }
        if n.as_i64().is_some() {
            return Err(negative());
        }
        let f = n.as_f64().filter(|f| f.is_finite()).ok_or_else(too_large)?;
        if f < 0.0 {
            return Err(negative());
        }
        let scaled = f * 100.0;
        if scaled > MAX_CENTS as f64 {
            return Err(too_large());
        }
        let cents = scaled.round();
        if (scaled - cents).abs() > 1e-6 {
            return Err(Invalid::new(
                field,
                "at_most_two_decimals",
                format!("{field} may have at most two decimals"),
            ));
        }
        Ok(Self(cents as i64))
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A postal code: 1 to 16 letters, digits, spaces or hyphens, upper-cased
/// so that `sw1a 1aa` and `SW1A 1AA` are one zip. A JSON integer is taken
/// as its decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ZipCode(pub(super) String);

impl ZipCode {
    pub(super) fn from_json(v: Option<&Value>) -> Result<Self, Invalid> {
        const F: &str = "event_properties.zip_code";
        let raw = match v {
            Some(Value::String(s)) => s.trim().to_ascii_uppercase(),
            Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
            None | Some(Value::Null) => {
                return Err(Invalid::new(F, "required", format!("{F} is required")))
            }
            Some(_) => return Err(Invalid::new(F, "type", format!("{F} must be a string"))),
        };
        let ok = (1..=16).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-'));
        if ok {
            Ok(Self(raw))
        } else {
            Err(Invalid::new(
                F,
                "zip_code_format",
                format!("{F} must be 1 to 16 letters, digits, spaces or hyphens"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The last four digits of a card number: exactly four digits (a JSON
/// integer from 0 to 9999 is zero-padded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LastFour(pub(super) String);

impl LastFour {
    pub(super) fn from_json(v: Option<&Value>) -> Result<Self, Invalid> {
        const F: &str = "event_properties.last_four_digits";
        let bad = || Invalid::new(F, "four_digits", format!("{F} must be exactly four digits"));
        match v {
            Some(Value::String(s)) if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Self(s.clone()))
            }
            Some(Value::Number(n)) => match n.as_u64() {
                Some(d) if d <= 9999 => Ok(Self(format!("{d:04}"))),
                _ => Err(bad()),
            },
            None | Some(Value::Null) => {
                Err(Invalid::new(F, "required", format!("{F} is required")))
            }
            Some(_) => Err(bad()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_become_exact_cents() {
        let c = |v: Value| Cents::from_json("x", Some(&v));
        assert_eq!(c(json!(19.99)).unwrap(), Cents(1999));
        assert_eq!(c(json!(0.1)).unwrap(), Cents(10));
        assert_eq!(c(json!(5000)).unwrap(), Cents(500_000));
        assert_eq!(c(json!(0)).unwrap(), Cents(0));
        assert_eq!(Cents(123_456).to_string(), "1234.56");
    }
}
