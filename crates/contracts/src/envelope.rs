//! The Debezium-style envelope every topic carries (docs/events.md).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "c")]
    Create,
    #[serde(rename = "u")]
    Update,
    #[serde(rename = "d")]
    Delete,
}

/// Where an event was written: the service (whose outbox) and its table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub service: String,
    pub table: String,
}

/// One change of one entity: its state `before` and `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub op: Op,
    pub entity: String,
    pub key: String,
    /// Increases with every change of the entity; consumers skip what they
    /// have already applied.
    pub version: i64,
    pub ts_ms: i64,
    pub source: Source,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Envelope {
    pub fn new(
        op: Op,
        entity: &str,
        key: impl Into<String>,
        version: i64,
        source: Source,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            op,
            entity: entity.to_owned(),
            key: key.into(),
            version,
            ts_ms: Utc::now().timestamp_millis(),
            source,
            before,
            after,
        }
    }

    /// The state the event leaves behind, read as `T`: `after`, or for a
    /// deletion the state it deleted (`before`), with whether it was one.
    pub fn state<T: serde::de::DeserializeOwned>(&self) -> Result<Change<T>, PayloadError> {
        let (value, deleted) = match (self.op, &self.after, &self.before) {
            (Op::Delete, _, Some(before)) => (before, true),
            (_, Some(after), _) => (after, false),
            _ => return Err(PayloadError::NoState),
        };
        let state = T::deserialize(value).map_err(|e| PayloadError::Shape(e.to_string()))?;
        Ok(Change { state, deleted })
    }
}

/// What [`Envelope::state`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<T> {
    pub state: T,
    /// The event deleted the entity; `state` is what it was.
    pub deleted: bool,
}

/// Why an event's payload could not be read. Retrying cannot fix either:
/// a consumer skips (or dead-letters) such an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Neither `after` nor (for a deletion) `before` is there.
    NoState,
    /// The state is not the topic's payload.
    Shape(String),
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::NoState => f.write_str("the event carries no state"),
            PayloadError::Shape(e) => {
                write!(f, "the event's state is not the topic's payload: {e}")
            }
        }
    }
}

impl std::error::Error for PayloadError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::user::Account;

    fn event(op: Op, before: Option<Value>, after: Option<Value>) -> Envelope {
        let source = Source {
            service: "authenticator".into(),
            table: "accounts".into(),
        };
        Envelope::new(op, "user", "k", 1, source, before, after)
    }

    #[test]
    fn a_deletion_reads_the_state_it_deleted_and_says_so() {
        let id = Uuid::new_v4();
        let was = serde_json::json!({"id": id, "username": "ann", "is_active": true});
        let c = event(Op::Delete, Some(was), None)
            .state::<Account>()
            .unwrap();
        assert!(c.deleted);
        assert_eq!(c.state.id, id);
        assert!(!c.state.active_after(c.deleted));
    }

    #[test]
    fn an_event_without_state_or_of_another_shape_is_refused() {
        assert_eq!(
            event(Op::Update, None, None).state::<Account>(),
            Err(PayloadError::NoState)
        );
        let wrong = serde_json::json!({"id": "not-a-uuid", "username": "x", "is_active": true});
        assert!(matches!(
            event(Op::Update, None, Some(wrong)).state::<Account>(),
            Err(PayloadError::Shape(_))
        ));
    }
}
