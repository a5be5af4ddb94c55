//! An event as clients and the event stream send it: parsed and validated
//! whole, and its properties in the canonical form that is stored.

use serde_json::{json, Map, Value};

use super::values::{Cents, EventId, Invalid, LastFour, UserId, ZipCode};

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

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!((e.field.as_str(), e.rule.as_str()), (field, rule), "{body}");
        }
    }
}
