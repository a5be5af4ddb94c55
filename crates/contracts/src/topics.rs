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
pub const ALL: [&str; 6] = [
    USER,
    USER_ROLE,
    MEMBERSHIP,
    ORGANIZATION,
    RESTRICTION,
    REVOCATION,
];

/// The service whose outbox writes `topic`: the only `source.service`
/// a consumer of it believes.
pub fn owner(topic: &str) -> Option<&'static str> {
    Some(match topic {
        USER => "authenticator",
        USER_ROLE => "safekeeper",
        MEMBERSHIP | ORGANIZATION => "user-directory",
        RESTRICTION => "access-rule",
        REVOCATION => "safekeeper",
        _ => return None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_one_owner() {
        for t in ALL {
            assert!(owner(t).is_some(), "{t}");
        }
        assert_eq!(owner("unknown.v1"), None);
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
