//! The organization admins' tokens as data: their claims, and the cache
//! of tokens verified already. Apart from `auth` (which verifies them and
//! needs the service's state), so that the state can hold the cache
//! without the two modules importing each other.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `typ` of the organization admins' tokens.
pub const ORG_TYP: &str = "org+jwt";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgClaims {
    pub iss: String,
    /// The admin's account at the identity provider.
    pub sub: String,
    /// The organization's id (stable across renames).
    pub org: Uuid,
    pub org_name: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The admin's session epoch at the provider when the token was
    /// issued (always 0 with WorkOS, which has none; tokens issued before
    /// the claim existed read as 0).
    #[serde(default)]
    pub sep: i64,
}

/// Tokens verified already, with their claims, until they expire: a
/// signature is checked once per token, not once per request. A hit needs
/// the very same token text, so nothing unverified ever matches; what
/// may change after issue (the organization, its admin) is still checked
/// in the database on every request.
pub struct TokenCache {
    entries: RwLock<HashMap<String, Arc<OrgClaims>>>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    pub(crate) fn get(&self, token: &str, now: i64) -> Option<Arc<OrgClaims>> {
        let entries = self.entries.read().ok()?;
        entries.get(token).filter(|c| c.exp > now).cloned()
    }

    pub(crate) fn put(&self, token: &str, claims: Arc<OrgClaims>, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.to_owned(), claims);
    }
}
