//! Input parsed once, at the edge, and the rules as pure functions: no I/O
//! here, so every decision the service makes is unit-tested below.

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A field that failed its rule; rendered as a 422 naming field and rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalid {
    pub field: &'static str,
    pub rule: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            rule,
            message: message.into(),
        }
    }
}

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

    fn from_json(v: Option<&Value>) -> Result<Self, Invalid> {
        let in_body = |e: Invalid| Invalid {
            field: "event_properties.user_id",
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
    fn from_json(v: Option<&Value>) -> Result<Option<Self>, Invalid> {
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
pub struct Cents(i64);

const MAX_CENTS: i64 = 100_000_000_000_000;

impl Cents {
    pub fn new(cents: i64) -> Option<Self> {
        (0..=MAX_CENTS).contains(&cents).then_some(Self(cents))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    fn from_json(field: &'static str, v: Option<&Value>) -> Result<Self, Invalid> {
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
pub struct ZipCode(String);

impl ZipCode {
    fn from_json(v: Option<&Value>) -> Result<Self, Invalid> {
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
pub struct LastFour(String);

impl LastFour {
    fn from_json(v: Option<&Value>) -> Result<Self, Invalid> {
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

/// What an event says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// One more scam flag on the user's messages.
    FlagScamMessage,
    AddCreditCard {
        zip_code: ZipCode,
        last_four_digits: LastFour,
        total_spend: Cents,
    },
    /// A chargeback of this amount.
    Chargeback { amount: Cents },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::FlagScamMessage => "flag_scam_message",
            EventKind::AddCreditCard { .. } => "add_credit_card",
            EventKind::Chargeback { .. } => "chargeback",
        }
    }
}

pub const EVENT_NAMES: [&str; 3] = ["flag_scam_message", "add_credit_card", "chargeback"];

/// A valid event: `{"name", "event_properties": {"user_id", ...}, "event_id"?}`.
/// Properties an event does not use are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: Option<EventId>,
    pub user_id: UserId,
    pub kind: EventKind,
}

impl Event {
    pub fn parse(body: &Value) -> Result<Self, Invalid> {
        let body = body
            .as_object()
            .ok_or_else(|| Invalid::new("body", "type", "the body must be a JSON object"))?;
        let name = match body.get("name") {
            Some(Value::String(s)) => s.as_str(),
            None | Some(Value::Null) => {
                return Err(Invalid::new("name", "required", "name is required"))
            }
            Some(_) => return Err(Invalid::new("name", "type", "name must be a string")),
        };
        let props: &Map<String, Value> = match body.get("event_properties") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => {
                return Err(Invalid::new(
                    "event_properties",
                    "required",
                    "event_properties is required",
                ))
            }
            Some(_) => {
                return Err(Invalid::new(
                    "event_properties",
                    "type",
                    "event_properties must be an object",
                ))
            }
        };
        let kind = match name {
            "flag_scam_message" => EventKind::FlagScamMessage,
            "add_credit_card" => EventKind::AddCreditCard {
                zip_code: ZipCode::from_json(props.get("zip_code"))?,
                last_four_digits: LastFour::from_json(props.get("last_four_digits"))?,
                total_spend: Cents::from_json(
                    "event_properties.total_spend",
                    props.get("total_spend"),
                )?,
            },
            "chargeback" => EventKind::Chargeback {
                amount: Cents::from_json("event_properties.chargebacks", props.get("chargebacks"))?,
            },
            other => {
                return Err(Invalid::new(
                    "name",
                    "unknown_event",
                    format!(
                        "unknown event {other:?}; known events are {}",
                        EVENT_NAMES.join(", ")
                    ),
                ))
            }
        };
        Ok(Self {
            user_id: UserId::from_json(props.get("user_id"))?,
            event_id: EventId::from_json(body.get("event_id"))?,
            kind,
        })
    }

    /// The event's properties in canonical form (amounts in cents): what is
    /// stored, and what a resent event must match.
    pub fn canonical_properties(&self) -> Value {
        let mut v = json!({"user_id": self.user_id});
        match &self.kind {
            EventKind::FlagScamMessage => {}
            EventKind::AddCreditCard {
                zip_code,
                last_four_digits,
                total_spend,
            } => {
                v["zip_code"] = json!(zip_code);
                v["last_four_digits"] = json!(last_four_digits);
                v["total_spend_cents"] = json!(total_spend);
            }
            EventKind::Chargeback { amount } => v["chargeback_cents"] = json!(amount),
        }
        v
    }
}

/// What a restriction takes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Message,
    Purchase,
}

/// The rules that restrict users, each with its own tripwire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Scam flags at or above the limit: no messaging.
    ScamFlags,
    /// Enough cards in too many zips: no purchasing.
    CardZipRatio,
    /// Chargebacks above a share of the cards' total spend: no purchasing.
    ChargebackRatio,
}

impl Rule {
    pub const ALL: [Rule; 3] = [Rule::ScamFlags, Rule::CardZipRatio, Rule::ChargebackRatio];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ScamFlags => "scam_flags",
            Rule::CardZipRatio => "card_zip_ratio",
            Rule::ChargebackRatio => "chargeback_ratio",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    pub fn capability(self) -> Capability {
        match self {
            Rule::ScamFlags => Capability::Message,
            Rule::CardZipRatio | Rule::ChargebackRatio => Capability::Purchase,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A share between 0 and 1, held in parts per million so that comparisons
/// are exact integer arithmetic (`700 > 10 % of 7000` must not depend on
/// floating-point rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio(u32);

impl Serialize for Ratio {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl Ratio {
    const ONE: i128 = 1_000_000;

    pub fn parse(name: &str, v: f64) -> anyhow::Result<Self> {
        if !(0.0..=1.0).contains(&v) {
            anyhow::bail!("{name}={v} must be between 0 and 1");
        }
        Ok(Self((v * Self::ONE as f64).round() as u32))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / Self::ONE as f64
    }

    /// `part / whole > self`, exactly; false when `whole` is zero and `part`
    /// is zero.
    pub fn exceeded_by(self, part: i64, whole: i64) -> bool {
        i128::from(part) * Self::ONE > i128::from(self.0) * i128::from(whole)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TripwireConfig {
    #[serde(rename = "window_seconds", serialize_with = "secs")]
    pub window: Duration,
    pub ratio: Ratio,
    pub min_population: i64,
    #[serde(rename = "suspend_seconds", serialize_with = "secs")]
    pub suspend: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The thresholds of the rules. The defaults are the rules of the User
/// Access Management design (docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RulesConfig {
    pub scam_flag_limit: i64,
    pub card_min_count: i64,
    pub zip_ratio_limit: Ratio,
    pub chargeback_ratio_limit: Ratio,
    pub tripwire: TripwireConfig,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            scam_flag_limit: 2,
            card_min_count: 3,
            zip_ratio_limit: Ratio(750_000),
            chargeback_ratio_limit: Ratio(100_000),
            tripwire: TripwireConfig {
                window: Duration::from_secs(300),
                ratio: Ratio(50_000),
                min_population: 20,
                suspend: Duration::from_secs(3600),
            },
        }
    }
}

/// What the rules look at for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Facts {
    pub scam_flags: i64,
    pub card_count: i64,
    pub zip_count: i64,
    pub total_spend_cents: i64,
    pub chargeback_cents: i64,
}

/// Whether `rule` finds against the user on these facts.
pub fn holds(rule: Rule, f: &Facts, cfg: &RulesConfig) -> bool {
    match rule {
        Rule::ScamFlags => f.scam_flags >= cfg.scam_flag_limit,
        Rule::CardZipRatio => {
            f.card_count >= cfg.card_min_count
                && cfg.zip_ratio_limit.exceeded_by(f.zip_count, f.card_count)
        }
        Rule::ChargebackRatio => cfg
            .chargeback_ratio_limit
            .exceeded_by(f.chargeback_cents, f.total_spend_cents),
    }
}

/// Why `rule` finds (or would find) against the user, for operators.
pub fn reason(rule: Rule, f: &Facts, cfg: &RulesConfig) -> String {
    match rule {
        Rule::ScamFlags => format!(
            "{} scam flags (restricted at {} or more)",
            f.scam_flags, cfg.scam_flag_limit
        ),
        Rule::CardZipRatio => format!(
            "{} cards in {} zips (restricted at {} or more cards with distinct zips / cards > {})",
            f.card_count,
            f.zip_count,
            cfg.card_min_count,
            cfg.zip_ratio_limit.as_f64()
        ),
        Rule::ChargebackRatio => format!(
            "chargebacks of {} against a total card spend of {} (restricted above {} %)",
            Cents(f.chargeback_cents),
            Cents(f.total_spend_cents),
            cfg.chargeback_ratio_limit.as_f64() * 100.0
        ),
    }
}

/// The rules an event may change, and whether it can make each one find
/// against the user (`true`) or only clear it (`false`). A duplicate card
/// changes nothing. More spend can only lower the chargeback ratio, so a
/// card never restricts under that rule: a restriction an operator lifted
/// comes back only with new evidence of its own kind.
pub fn affected_rules(kind: &EventKind, card_added: bool) -> &'static [(Rule, bool)] {
    match kind {
        EventKind::FlagScamMessage => &[(Rule::ScamFlags, true)],
        EventKind::AddCreditCard { .. } if card_added => {
            &[(Rule::CardZipRatio, true), (Rule::ChargebackRatio, false)]
        }
        EventKind::AddCreditCard { .. } => &[],
        EventKind::Chargeback { .. } => &[(Rule::ChargebackRatio, true)],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Restrict,
    Lift,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Restrict => "restrict",
            Change::Lift => "lift",
        }
    }
}

/// What an event does to one rule's restriction of a user.
pub fn decide(restricted: bool, holds: bool, may_restrict: bool) -> Option<Change> {
    match (restricted, holds) {
        (false, true) if may_restrict => Some(Change::Restrict),
        (true, false) => Some(Change::Lift),
        _ => None,
    }
}

/// Where a rule's sliding window starts: `window` ago, or at `counted_since`
/// (the rule's last trip or reset) if that is later.
pub fn window_start(
    now: DateTime<Utc>,
    window: Duration,
    counted_since: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let start = now - chrono::Duration::from_std(window).unwrap_or(chrono::TimeDelta::MAX);
    counted_since.map_or(start, |r| r.max(start))
}

/// The tripwire: the rule newly restricted more than its share of the users
/// seen, over a population large enough for the share to mean something.
pub fn trips(newly_restricted: i64, population: i64, cfg: &TripwireConfig) -> bool {
    population > cfg.min_population && cfg.ratio.exceeded_by(newly_restricted, population)
}

/// Whether a rule's restrictions are suspended at `now`.
pub fn suspended(suspended_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    suspended_until.is_some_and(|u| u > now)
}

/// A user's restrictions as the checks see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restrictions {
    pub is_active: bool,
    pub scam_flags: bool,
    pub card_zip_ratio: bool,
    pub chargeback_ratio: bool,
}

impl Restrictions {
    pub fn get(&self, rule: Rule) -> bool {
        match rule {
            Rule::ScamFlags => self.scam_flags,
            Rule::CardZipRatio => self.card_zip_ratio,
            Rule::ChargebackRatio => self.chargeback_ratio,
        }
    }

    /// May the user do `what`, given which rules are suspended? A suspended
    /// rule's restrictions are ignored; the others still apply, and a
    /// deactivated account may do nothing.
    pub fn allows(&self, what: Capability, is_suspended: impl Fn(Rule) -> bool) -> bool {
        self.is_active
            && Rule::ALL
                .into_iter()
                .filter(|r| r.capability() == what)
                .all(|r| !self.get(r) || is_suspended(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RulesConfig {
        RulesConfig::default()
    }

    fn card(zip: &str, last4: &str, spend: f64) -> Value {
        json!({"name": "add_credit_card", "event_properties":
            {"user_id": "u1", "zip_code": zip, "last_four_digits": last4, "total_spend": spend}})
    }

    #[test]
    fn the_seed_events_parse() {
        let e = Event::parse(
            &json!({"name": "flag_scam_message", "event_properties": {"user_id": "u1"}}),
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::FlagScamMessage);
        assert_eq!(e.user_id.as_str(), "u1");
        assert!(e.event_id.is_none());
        let e = Event::parse(&card("02134", "1234", 5000.0)).unwrap();
        assert_eq!(
            e.kind,
            EventKind::AddCreditCard {
                zip_code: ZipCode("02134".into()),
                last_four_digits: LastFour("1234".into()),
                total_spend: Cents(500_000)
            }
        );
        let e = Event::parse(&json!({"name": "chargeback", "event_id": "e-1",
            "event_properties": {"user_id": 7, "chargebacks": 12.5}}))
        .unwrap();
        assert_eq!(
            e.kind,
            EventKind::Chargeback {
                amount: Cents(1250)
            }
        );
        assert_eq!(e.user_id.as_str(), "7");
        assert_eq!(e.event_id.unwrap().as_str(), "e-1");
    }

    #[test]
    fn bad_events_name_the_field_and_rule() {
        let cases = [
            (json!([]), "body", "type"),
            (
                json!({"event_properties": {"user_id": "u"}}),
                "name",
                "required",
            ),
            (
                json!({"name": 3, "event_properties": {"user_id": "u"}}),
                "name",
                "type",
            ),
            (
                json!({"name": "nope", "event_properties": {"user_id": "u"}}),
                "name",
                "unknown_event",
            ),
            (
                json!({"name": "flag_scam_message"}),
                "event_properties",
                "required",
            ),
            (
                json!({"name": "flag_scam_message", "event_properties": {}}),
                "event_properties.user_id",
                "required",
            ),
            (
                json!({"name": "flag_scam_message", "event_properties": {"user_id": ""}}),
                "event_properties.user_id",
                "user_id_format",
            ),
            (
                json!({"name": "flag_scam_message", "event_properties": {"user_id": true}}),
                "event_properties.user_id",
                "type",
            ),
            (
                json!({"name": "flag_scam_message", "event_properties": {"user_id": -1}}),
                "event_properties.user_id",
                "type",
            ),
            (
                json!({"name": "flag_scam_message", "event_properties": {"user_id": "x".repeat(129)}}),
                "event_properties.user_id",
                "user_id_format",
            ),
            (
                json!({"name": "flag_scam_message", "event_id": 5, "event_properties": {"user_id": "u"}}),
                "event_id",
                "event_id_format",
            ),
            (
                json!({"name": "chargeback", "event_properties": {"user_id": "u"}}),
                "event_properties.chargebacks",
                "required",
            ),
            (
                json!({"name": "chargeback", "event_properties": {"user_id": "u", "chargebacks": -1}}),
                "event_properties.chargebacks",
                "not_negative",
            ),
            (
                json!({"name": "chargeback", "event_properties": {"user_id": "u", "chargebacks": -0.5}}),
                "event_properties.chargebacks",
                "not_negative",
            ),
            (
                json!({"name": "chargeback", "event_properties": {"user_id": "u", "chargebacks": "10"}}),
                "event_properties.chargebacks",
                "type",
            ),
            (
                json!({"name": "chargeback", "event_properties": {"user_id": "u", "chargebacks": 1.005}}),
                "event_properties.chargebacks",
                "at_most_two_decimals",
            ),
            (
                json!({"name": "chargeback", "event_properties": {"user_id": "u", "chargebacks": 1e300}}),
                "event_properties.chargebacks",
                "too_large",
            ),
            (
                card("", "1234", 1.0),
                "event_properties.zip_code",
                "zip_code_format",
            ),
            (
                card("02134", "12a4", 1.0),
                "event_properties.last_four_digits",
                "four_digits",
            ),
            (
                card("02134", "12345", 1.0),
                "event_properties.last_four_digits",
                "four_digits",
            ),
            (
                card("02134", "1234", -1.0),
                "event_properties.total_spend",
                "not_negative",
            ),
        ];
        for (body, field, rule) in cases {
            let e = Event::parse(&body).unwrap_err();
            assert_eq!((e.field, e.rule), (field, rule), "{body}");
        }
    }

    #[test]
    fn ratios_show_as_fractions() {
        let v = serde_json::to_value(RulesConfig::default()).unwrap();
        assert_eq!(v["zip_ratio_limit"], json!(0.75));
        assert_eq!(v["chargeback_ratio_limit"], json!(0.1));
        assert_eq!(v["tripwire"]["ratio"], json!(0.05));
    }

    #[test]
    fn amounts_become_exact_cents() {
        let c = |v: Value| Cents::from_json("x", Some(&v));
        assert_eq!(c(json!(19.99)).unwrap(), Cents(1999));
        assert_eq!(c(json!(0.1)).unwrap(), Cents(10));
        assert_eq!(c(json!(5000)).unwrap(), Cents(500_000));
        assert_eq!(c(json!(0)).unwrap(), Cents(0));
        assert_eq!(Cents(123_456).to_string(), "1234.56");
    }

    #[test]
    fn two_scam_flags_restrict_messaging() {
        let f = |n| Facts {
            scam_flags: n,
            ..Facts::default()
        };
        assert!(!holds(Rule::ScamFlags, &f(1), &cfg()));
        assert!(holds(Rule::ScamFlags, &f(2), &cfg()));
        assert!(holds(Rule::ScamFlags, &f(100), &cfg()));
    }

    #[test]
    fn three_cards_in_three_zips_restrict_but_four_cards_in_three_zips_do_not() {
        let f = |cards, zips| Facts {
            card_count: cards,
            zip_count: zips,
            ..Facts::default()
        };
        assert!(
            !holds(Rule::CardZipRatio, &f(2, 2), &cfg()),
            "too few cards"
        );
        assert!(holds(Rule::CardZipRatio, &f(3, 3), &cfg()));
        assert!(
            !holds(Rule::CardZipRatio, &f(4, 3), &cfg()),
            "0.75 is not above 0.75"
        );
        assert!(holds(Rule::CardZipRatio, &f(5, 4), &cfg()));
        assert!(!holds(Rule::CardZipRatio, &f(3, 1), &cfg()));
    }

    #[test]
    fn chargebacks_above_ten_percent_of_spend_restrict_purchasing() {
        let f = |spend, cb| Facts {
            total_spend_cents: spend,
            chargeback_cents: cb,
            ..Facts::default()
        };
        assert!(!holds(Rule::ChargebackRatio, &f(800_000, 70_000), &cfg()));
        assert!(
            !holds(Rule::ChargebackRatio, &f(800_000, 80_000), &cfg()),
            "exactly 10 %"
        );
        assert!(holds(Rule::ChargebackRatio, &f(800_000, 80_001), &cfg()));
        assert!(holds(Rule::ChargebackRatio, &f(800_000, 90_000), &cfg()));
        assert!(
            holds(Rule::ChargebackRatio, &f(0, 1), &cfg()),
            "no spend at all"
        );
        assert!(!holds(Rule::ChargebackRatio, &f(0, 0), &cfg()));
    }

    #[test]
    fn decisions_restrict_on_evidence_and_lift_when_the_rule_clears() {
        assert_eq!(decide(false, true, true), Some(Change::Restrict));
        assert_eq!(
            decide(false, true, false),
            None,
            "a card never restricts on chargebacks"
        );
        assert_eq!(decide(true, true, true), None, "already restricted");
        assert_eq!(decide(true, false, false), Some(Change::Lift));
        assert_eq!(decide(false, false, true), None);
    }

    #[test]
    fn only_a_new_card_re_evaluates_card_rules() {
        let kind = Event::parse(&card("1", "1111", 1.0)).unwrap().kind;
        assert!(affected_rules(&kind, false).is_empty());
        assert_eq!(affected_rules(&kind, true).len(), 2);
    }

    #[test]
    fn the_tripwire_needs_a_population_and_more_than_its_share() {
        let t = cfg().tripwire;
        assert!(!trips(3, 20, &t), "population not above the minimum");
        assert!(!trips(2, 40, &t), "exactly 5 %");
        assert!(trips(3, 40, &t));
        assert!(!trips(50_000, 1_000_000, &t));
        assert!(trips(50_001, 1_000_000, &t));
    }

    #[test]
    fn a_trip_or_reset_starts_the_window_afresh() {
        let now = Utc::now();
        let w = Duration::from_secs(300);
        assert_eq!(
            window_start(now, w, None),
            now - chrono::Duration::seconds(300)
        );
        let reset = now - chrono::Duration::seconds(10);
        assert_eq!(window_start(now, w, Some(reset)), reset);
        let old = now - chrono::Duration::seconds(1000);
        assert_eq!(
            window_start(now, w, Some(old)),
            now - chrono::Duration::seconds(300)
        );
    }

    #[test]
    fn a_suspended_rule_is_ignored_but_other_rules_and_deactivation_still_apply() {
        let r = Restrictions {
            is_active: true,
            scam_flags: true,
            card_zip_ratio: true,
            chargeback_ratio: false,
        };
        let none = |_: Rule| false;
        let scam = |x: Rule| x == Rule::ScamFlags;
        assert!(!r.allows(Capability::Message, none));
        assert!(r.allows(Capability::Message, scam));
        assert!(!r.allows(Capability::Purchase, scam));
        assert!(r.allows(Capability::Purchase, |x| x == Rule::CardZipRatio));
        let inactive = Restrictions {
            is_active: false,
            ..Restrictions::default()
        };
        assert!(!inactive.allows(Capability::Message, |_| true));
        assert!(Restrictions {
            is_active: true,
            ..Restrictions::default()
        }
        .allows(Capability::Purchase, none));
    }

    #[test]
    fn suspension_ends_on_time() {
        let now = Utc::now();
        assert!(suspended(Some(now + chrono::Duration::seconds(1)), now));
        assert!(!suspended(Some(now), now));
        assert!(!suspended(None, now));
    }
}
