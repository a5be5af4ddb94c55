//! This replica's memory of its callers, so that an authenticated request
//! needs no signature check and no database read before its own work:
//!
//! - [`platform::jwt::TokenCache`]: access tokens whose signature, issuer, audience and
//!   `typ` were verified, with their claims, until they expire. Only the
//!   very same token string is found.
//! - [`UserCache`]: rows of the users read model. Every change of the
//!   table sends `NOTIFY task_users, '<id>'` (a trigger), and the consumer
//!   of this replica marks a user as changing before its transaction
//!   commits.
//! - [`PageCache`]: `/v1/task/own` response bodies. Every change of `task`
//!   sends `NOTIFY task_pages, '<assignee>'` (a statement trigger), and a
//!   handler of this replica that changed tasks drops their assignees'
//!   pages once it has committed, before it answers.
//!
//! Both follow [`platform::coherent`]: a read that raced a change is never
//! kept, nothing is kept while the listener is disconnected, and another
//! replica's change is seen here within a few milliseconds of its commit.

use std::sync::Arc;

use actix_web::web::Bytes;
use platform::coherent::{self, Coherent, Subscriber};
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::User;

/// The channel of the `users_notify` trigger (migrations/task).
pub const USERS_CHANNEL: &str = "task_users";
/// The channel of the `task_pages_notify` trigger: an assignee's tasks
/// changed.
pub const PAGES_CHANNEL: &str = "task_pages";

/// Rows of the users read model by id (see [`platform::coherent`]).
pub type UserCache = Coherent<Uuid, (), User>;

/// The response bodies of `/v1/task/own` by assignee and request: a page
/// holds the names of its tasks' creators and updaters too, so any change
/// of the users read model drops them all.
pub type PageCache = Coherent<Uuid, PageKey, Bytes>;

/// A larger page (big `_size`, long descriptions) is not kept.
pub const PAGE_MAX_BYTES: usize = 32 * 1024;

/// What an `/own` page depends on besides the assignee's tasks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PageKey {
    /// Bounds in microseconds since the epoch.
    pub start: i64,
    pub end: i64,
    pub from: i64,
    pub size: i64,
    pub newest_first: bool,
    pub counting: bool,
}

/// Both caches, as the listener tells them what changed.
pub struct Caches {
    pub users: Arc<UserCache>,
    pub pages: Arc<PageCache>,
}

impl Subscriber for Caches {
    fn connected(&self) {
        self.users.reset(true);
        self.pages.reset(true);
    }

    fn notified(&self, channel: &str, payload: &str) {
        match (channel, payload.parse::<Uuid>()) {
            (USERS_CHANNEL, Ok(id)) => {
                self.users.changed(&id);
                self.pages.clear();
            }
            (PAGES_CHANNEL, Ok(id)) => self.pages.changed(&id),
            // `*` (a table was emptied), or anything unexpected.
            _ => {
                self.users.clear();
                self.pages.clear();
            }
        }
    }

    fn disconnected(&self) {
        self.users.reset(false);
        self.pages.reset(false);
    }
}

/// Listens on its own connection and thread until shutdown; the caches are
/// live only while it is connected.
pub fn spawn_listener(
    caches: Caches,
    database_url: String,
    shutdown: watch::Receiver<bool>,
) -> Option<std::thread::JoinHandle<()>> {
    if !caches.users.enabled() && !caches.pages.enabled() {
        return None;
    }
    coherent::spawn_listener(
        "task-cache",
        database_url,
        &[USERS_CHANNEL, PAGES_CHANNEL],
        Arc::new(caches),
        shutdown,
    )
}

#[cfg(test)]
mod tests {
    use platform::coherent::Lookup;

    use super::*;

    fn user(n: u128) -> User {
        User {
            id: Uuid::from_u128(n),
            username: Some("ann".into()),
            is_active: true,
            roles: vec![],
            scopes: None,
            user_version: 1,
            role_version: 0,
            updated_at: chrono::Utc::now(),
        }
    }

    fn key(from: i64) -> PageKey {
        PageKey {
            start: 0,
            end: 1,
            from,
            size: 20,
            newest_first: true,
            counting: false,
        }
    }

    fn filled() -> Caches {
        let c = Caches {
            users: Arc::new(UserCache::new(10)),
            pages: Arc::new(PageCache::new(10)),
        };
        c.connected();
        for n in [1, 2] {
            let id = Uuid::from_u128(n);
            let Lookup::Miss(g) = c.users.lookup(&id, &()) else {
                panic!()
            };
            c.users.fill(id, (), user(n), g);
            for from in [0, 20] {
                let Lookup::Miss(g) = c.pages.lookup(&id, &key(from)) else {
                    panic!()
                };
                c.pages.fill(id, key(from), Bytes::from_static(b"[]"), g);
            }
        }
        c
    }

    #[test]
    fn an_assignees_task_change_drops_their_pages_only() {
        let c = filled();
        c.notified(PAGES_CHANNEL, &Uuid::from_u128(1).to_string());
        assert!(matches!(
            c.pages.lookup(&Uuid::from_u128(1), &key(0)),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            c.pages.lookup(&Uuid::from_u128(1), &key(20)),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            c.pages.lookup(&Uuid::from_u128(2), &key(0)),
            Lookup::Hit(_)
        ));
        assert!(matches!(
            c.users.lookup(&Uuid::from_u128(1), &()),
            Lookup::Hit(_)
        ));
    }

    #[test]
    fn a_user_change_drops_that_user_and_every_page() {
        // Pages carry creators' and updaters' names.
        let c = filled();
        c.notified(USERS_CHANNEL, &Uuid::from_u128(1).to_string());
        assert!(matches!(
            c.users.lookup(&Uuid::from_u128(1), &()),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            c.users.lookup(&Uuid::from_u128(2), &()),
            Lookup::Hit(_)
        ));
        assert!(c.pages.is_empty());
        // A truncated table, or losing the listener, forgets everything.
        let c = filled();
        c.notified(PAGES_CHANNEL, "*");
        assert!(c.users.is_empty() && c.pages.is_empty());
        c.disconnected();
        assert!(matches!(
            c.users.lookup(&Uuid::from_u128(1), &()),
            Lookup::Bypass
        ));
    }
}
