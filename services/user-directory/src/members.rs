//! This replica's memory of `GET /v1/users/{id}`: the organization and the
//! response body by user and organization, so that a repeated read is a
//! memory read rather than a database round trip.
//!
//! Coherence follows [`platform::coherent`]: every change of `users` or
//! `memberships` sends `NOTIFY directory_members, '<user id>'`, and a change
//! of `organizations` sends `'*'` (triggers, delivered at commit to every
//! replica's listener); a read that raced a change is never kept, and
//! nothing is kept while the listener is disconnected. Only members are
//! kept (a 404 is always read afresh), so a user created here is found at
//! once; a change applied from the provider is seen within a few
//! milliseconds of its commit, as the provider's events are asynchronous
//! anyway.

use std::sync::Arc;

use actix_web::web::Bytes;
use platform::coherent::{self, Coherent, Subscriber};
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::Organization;

pub const CHANNEL: &str = "directory_members";
pub const ENTRIES: usize = 100_000;

/// What a read found: the organization (its admin is checked on every
/// request) and the member's response body.
pub struct Member {
    pub organization: Organization,
    pub body: Bytes,
}

/// By user, then organization.
pub type MemberCache = Coherent<Uuid, Uuid, Arc<Member>>;

struct Listening(Arc<MemberCache>);

impl Subscriber for Listening {
    fn connected(&self) {
        self.0.reset(true);
    }

    fn notified(&self, _channel: &str, payload: &str) {
        match payload.parse::<Uuid>() {
            Ok(user) => self.0.changed(&user),
            // `*`: an organization changed, or a table was emptied.
            Err(_) => self.0.clear(),
        }
    }

    fn disconnected(&self) {
        self.0.reset(false);
    }
}

/// Listens on its own connection and thread until shutdown.
pub fn spawn_listener(
    cache: Arc<MemberCache>,
    database_url: String,
    shutdown: watch::Receiver<bool>,
) -> Option<std::thread::JoinHandle<()>> {
    if !cache.enabled() {
        return None;
    }
    coherent::spawn_listener(
        "directory-members",
        database_url,
        &[CHANNEL],
        Arc::new(Listening(cache)),
        shutdown,
    )
}
