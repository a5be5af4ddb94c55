//! The topics, the service that writes each, and the payload each carries
//! in its envelope's `before` and `after` (docs/events.md). A producer
//! writes these types and its consumers read the same ones.

pub const USER: &str = "iam.user.v1";
pub const USER_ROLE: &str = "iam.user-role.v1";
pub const MEMBERSHIP: &str = "directory.membership.v1";
pub const ORGANIZATION: &str = "directory.organization.v1";
pub const RESTRICTION: &str = "access.restriction.v1";
/// Revoked tokens, grants, clients and users (safekeeper only).
pub const REVOCATION: &str = "oauth.revocation.v1";
/// Tasks: created, assigned, status changed, price changed.
pub const TASK: &str = "task.v1";
/// The accounting ledger's entries.
pub const ACCOUNTING_TRANSACTION: &str = "accounting.transaction.v1";
/// Mail a service asks the notifier to send.
pub const NOTIFICATION: &str = "notification.v1";
pub const ALL: [&str; 9] = [
    USER,
    USER_ROLE,
    MEMBERSHIP,
    ORGANIZATION,
    RESTRICTION,
    REVOCATION,
    TASK,
    ACCOUNTING_TRANSACTION,
    NOTIFICATION,
];

/// The services whose outboxes write `topic`: the only `source.service`s
/// a consumer of it believes (empty for a topic the platform does not
/// know).
pub fn writers(topic: &str) -> &'static [&'static str] {
    match topic {
        USER => &["authenticator"],
        USER_ROLE | REVOCATION => &["safekeeper"],
        MEMBERSHIP | ORGANIZATION => &["user-directory"],
        RESTRICTION => &["access-rule"],
        TASK => &["task"],
        ACCOUNTING_TRANSACTION => &["accounting"],
        NOTIFICATION => &["authenticator", "accounting"],
        _ => &[],
    }
}

/// `iam.user.v1`, written by the authenticator, keyed by account id.
pub mod user {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    /// An account as the authenticator shows it (never its hash). Fields
    /// that events written before them lack read as their defaults.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Account {
        pub id: Uuid,
        pub username: String,
        #[serde(default)]
        pub email: String,
        #[serde(default)]
        pub firstname: String,
        #[serde(default)]
        pub lastname: String,
        #[serde(default)]
        pub phone: String,
        pub is_active: bool,
        /// A superuser holds `admin` in the safekeeper and is an operator
        /// of access-rule.
        #[serde(default)]
        pub is_superuser: bool,
        #[serde(default)]
        pub has_password: bool,
        #[serde(default)]
        pub version: i64,
        #[serde(default)]
        pub created_at: Option<DateTime<Utc>>,
        #[serde(default)]
        pub updated_at: Option<DateTime<Utc>>,
        #[serde(default)]
        pub password_changed_at: Option<DateTime<Utc>>,
        /// Session tokens issued with a lower epoch (claim `sep`) have
        /// ended.
        #[serde(default)]
        pub session_epoch: i64,
        /// Unexpired session tokens ended by a logout of one device
        /// (their `jti`s).
        #[serde(default)]
        pub ended_sessions: Vec<String>,
    }

    impl Account {
        /// Whether the account may act after the event that carried it
        /// (`deleted`: the event deleted it).
        pub fn active_after(&self, deleted: bool) -> bool {
            self.is_active && !deleted
        }
    }
}

/// `iam.user-role.v1`, written by the safekeeper, keyed by account id:
/// the account's whole role and scope sets, as a new version each time.
pub mod user_role {
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Grants {
        pub user_id: Uuid,
        #[serde(default)]
        pub roles: Vec<String>,
        #[serde(default)]
        pub scopes: Vec<String>,
    }
}

/// `task.v1`, written by the task service, keyed by task id: the task as
/// the change left it, and what the change was. The envelope's `version`
/// counts the task's changes.
pub mod task {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    /// The status a task is done in: moving into it earns the reward.
    pub const COMPLETED: &str = "Completed";

    /// A task's state and the money it carries, in integer cents.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Task {
        pub id: Uuid,
        pub title: String,
        /// Set at creation; a price change is its own event.
        pub price_cents: i64,
        /// Charged to the assignee at each assignment (from the price and
        /// the task service's fee ratio).
        pub assignment_fee_cents: i64,
        /// Paid to the assignee when the task moves into [`COMPLETED`]
        /// (from the price and the reward ratio).
        pub completion_reward_cents: i64,
        pub assignee_id: Option<Uuid>,
        /// The status's name (`To Do`, ..., [`COMPLETED`]).
        pub status: String,
        pub updated_at: DateTime<Utc>,
    }

    /// What one event changed; `by` is the account that made the change.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub enum Change {
        Created {
            by: Uuid,
        },
        Assigned {
            from: Option<Uuid>,
            to: Option<Uuid>,
            by: Uuid,
        },
        StatusChanged {
            from: String,
            to: String,
            by: Uuid,
        },
        PriceChanged {
            from_cents: i64,
            to_cents: i64,
            by: Uuid,
        },
        /// Its title, description, due date or type changed (`fields`
        /// names them: `title`, `description`, `due_date`, `type_id`); a
        /// change of type that moves the status is a `StatusChanged` of
        /// its own after it.
        Edited {
            #[serde(default)]
            fields: Vec<String>,
            by: Uuid,
        },
        /// The task was deleted (`op` `d`; the state is what it was).
        Deleted {
            by: Uuid,
        },
    }

    /// The payload: the task after the change, and the change.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct TaskEvent {
        pub task: Task,
        pub change: Change,
    }

    impl TaskEvent {
        /// The event as the task service's outbox writes it: the task's
        /// `version`-th change, keyed by its id; a creation is `op` `c`, a
        /// deletion `d` (the state it deleted in `before`), the rest `u`.
        pub fn envelope(
            &self,
            version: i64,
        ) -> Result<crate::envelope::Envelope, serde_json::Error> {
            use crate::envelope::{Envelope, Op, Source};
            let op = match self.change {
                Change::Created { .. } => Op::Create,
                Change::Deleted { .. } => Op::Delete,
                _ => Op::Update,
            };
            let payload = serde_json::to_value(self)?;
            let (before, after) = match op {
                Op::Delete => (Some(payload), None),
                _ => (None, Some(payload)),
            };
            let source = Source {
                service: "task".into(),
                table: "task".into(),
            };
            Ok(Envelope::new(
                op,
                "task",
                self.task.id.to_string(),
                version,
                source,
                before,
                after,
            ))
        }
    }
}

/// `accounting.transaction.v1`, written by accounting, keyed by the
/// account id: one entry of an account's append-only ledger.
pub mod accounting {
    use chrono::{DateTime, NaiveDate, Utc};
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Kind {
        /// A task's assignment fee, charged to the assignee (negative).
        Fee,
        /// A task's completion reward, paid to the assignee (positive).
        Reward,
        /// The day's close paying a positive balance out (negative).
        Payout,
        /// An entry that sets a mistake right (either sign).
        Correction,
    }

    /// One ledger entry. `amount_cents` is signed as the worker sees it: a
    /// fee or a payout lowers their balance, a reward raises it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Transaction {
        pub id: Uuid,
        pub account_id: Uuid,
        pub kind: Kind,
        pub amount_cents: i64,
        /// The worker's balance once this entry is applied.
        pub balance_after_cents: i64,
        /// The task the fee or reward is for.
        pub task_id: Option<Uuid>,
        pub description: String,
        /// The business day (in the close's time zone) it belongs to.
        pub business_day: NaiveDate,
        pub created_at: DateTime<Utc>,
    }
}

/// `notification.v1`, written by a service that asks for a mail, keyed by
/// the notification's id; the notifier sends each once.
pub mod notification {
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Notification {
        /// The notification's id: the notifier sends each id once.
        pub id: Uuid,
        /// What it is about (`payout`, `registration`), for logs and
        /// metrics.
        pub kind: String,
        /// Recipients' addresses.
        pub to: Vec<String>,
        pub subject: String,
        /// Plain text.
        pub body: String,
    }
}

/// `oauth.revocation.v1`, written by the safekeeper, keyed by the revoked
/// value: a token (`jti`), a grant or refresh family (`sid`), a client or a
/// user that resource servers must refuse (see `platform::revocation`).
pub mod revocation {
    use std::time::Duration;

    use chrono::Utc;
    use serde::{Deserialize, Serialize};

    use crate::{Envelope, Op, Source};

    /// The only service whose revocations are applied.
    pub const PRODUCER: &str = "safekeeper";
    /// `entity` of the topic's envelopes.
    pub const ENTITY: &str = "revocation";
    /// What a revocation names.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Kind {
        /// One access token, by its `jti`.
        Jti,
        /// A grant or refresh family: every token whose `sid` it is.
        Sid,
        /// Every token issued to a client up to `revoked_at`.
        Client,
        /// Every token of a user (`sub`) issued up to `revoked_at`.
        User,
    }

    /// The `after` of an `oauth.revocation.v1` envelope.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Revocation {
        pub kind: Kind,
        pub value: String,
        /// Unix seconds.
        pub revoked_at: i64,
        /// Unix seconds: the entry may be forgotten after this.
        pub expires_at: i64,
    }

    impl Revocation {
        /// A revocation made now, kept `keep` (the longest lifetime of a token
        /// it could match).
        pub fn now(kind: Kind, value: impl Into<String>, keep: Duration) -> Self {
            let revoked_at = Utc::now().timestamp();
            Self {
                kind,
                value: value.into(),
                revoked_at,
                expires_at: revoked_at.saturating_add(keep.as_secs().min(i64::MAX as u64) as i64),
            }
        }

        /// The envelope to publish, keyed by the revoked value; `table` names
        /// where the safekeeper recorded it.
        pub fn envelope(&self, table: &str) -> Envelope {
            Envelope::new(
                Op::Create,
                ENTITY,
                self.value.clone(),
                Utc::now().timestamp_millis(),
                Source {
                    service: PRODUCER.into(),
                    table: table.into(),
                },
                None,
                Some(serde_json::to_value(self).expect("a revocation serialises")),
            )
        }

        /// Reads a revocation from an envelope; `Err` says why it is refused.
        pub fn from_envelope(e: &Envelope) -> Result<Self, &'static str> {
            if e.source.service != PRODUCER {
                return Err("not published by the safekeeper");
            }
            if e.entity != ENTITY {
                return Err("not a revocation");
            }
            let after = e.after.as_ref().ok_or("no revocation in the event")?;
            let r: Revocation =
                serde_json::from_value(after.clone()).map_err(|_| "malformed revocation")?;
            if r.value.is_empty() {
                return Err("empty revoked value");
            }
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_writer_and_an_unknown_one_none() {
        for t in ALL {
            assert!(!writers(t).is_empty(), "{t}");
        }
        assert!(writers("unknown.v1").is_empty());
    }

    #[test]
    fn a_task_event_names_its_change_by_kind_and_an_edit_without_fields_reads() {
        let e = task::TaskEvent {
            task: task::Task {
                id: uuid::Uuid::nil(),
                title: "t".into(),
                price_cents: 1000,
                assignment_fee_cents: 500,
                completion_reward_cents: 1000,
                assignee_id: None,
                status: task::COMPLETED.into(),
                updated_at: chrono::DateTime::UNIX_EPOCH,
            },
            change: task::Change::PriceChanged {
                from_cents: 1000,
                to_cents: 1500,
                by: uuid::Uuid::nil(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["change"]["kind"], "price_changed");
        assert_eq!(serde_json::from_value::<task::TaskEvent>(v).unwrap(), e);
        let edited: task::Change = serde_json::from_value(serde_json::json!({
            "kind": "edited", "by": "00000000-0000-0000-0000-000000000000"
        }))
        .unwrap();
        assert_eq!(
            edited,
            task::Change::Edited {
                fields: vec![],
                by: uuid::Uuid::nil()
            }
        );
    }

    #[test]
    fn an_account_of_an_older_event_reads_with_defaults() {
        let a: user::Account = serde_json::from_value(serde_json::json!({
            "id": "0190a1b2-0000-7000-8000-000000000001",
            "username": "ann",
            "is_active": true
        }))
        .unwrap();
        assert!(!a.is_superuser);
        assert_eq!(a.session_epoch, 0);
        assert!(a.ended_sessions.is_empty());
    }
}
