//! Test support for the platform's crates, used as a dev-dependency only:
//! nothing here ships in a service.
//!
//! - [`TestDatabase`]: a database per test, cloned from a template that
//!   the service's migrations ran into once ([`db`]);
//! - [`OwnedBroker`] and [`collect_events`]: a broker a test can stop and
//!   restart, and reading events back ([`broker`]);
//! - one module per service (behind a feature of the same name) that
//!   starts it inside the test process on a listener bound beforehand,
//!   from default settings rather than the shell's environment;
//! - [`TestPlatform`]: an authenticator and a safekeeper wired together,
//!   with the superuser's admin token, clients and people with roles;
//! - [`SmtpSink`]: an SMTP server that keeps what it is sent ([`smtp`]);
//! - [`eventually`], [`assert_problem`], [`session`]: the small helpers
//!   every service's tests use.

pub mod broker;
pub mod db;
mod http;
pub mod logs;
pub mod smtp;

#[cfg(feature = "access-rule")]
pub mod access_rule;
#[cfg(feature = "accounting")]
pub mod accounting;
#[cfg(feature = "analytics")]
pub mod analytics;
#[cfg(feature = "authenticator")]
pub mod authenticator;
#[cfg(feature = "notifier")]
pub mod notifier;
#[cfg(feature = "safekeeper")]
pub mod safekeeper;
#[cfg(feature = "safekeeper")]
mod stack;
#[cfg(feature = "task")]
pub mod task;
#[cfg(feature = "user-directory")]
pub mod user_directory;

use std::{future::Future, path::PathBuf, time::Duration};

pub use broker::{collect_events, shared_brokers, OwnedBroker};
pub use db::TestDatabase;
pub use http::{
    assert_problem, assert_routes_match_its_document, json_of, json_of_with, session, text_of,
};
pub use logs::CapturedLogs;
pub use platform::server::BoundListener;
pub use smtp::{ReceivedMail, SmtpSink};
#[cfg(feature = "safekeeper")]
pub use stack::{Person, TestPlatform, TestPlatformBuilder, PASSWORD};

/// Polls `check` until it answers `Some`, for at most `secs` seconds, and
/// returns what it answered: the way to wait for an event to be applied.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A listener on a free loopback port, bound now and held until the
/// service it is given to starts serving on it: its port can be handed
/// to other services first, and nothing else can take it meanwhile.
pub fn listener() -> BoundListener {
    BoundListener::loopback().expect("a free loopback port")
}

/// A port that was free a moment ago, for a process that binds it itself
/// (a broker, a browser driver) or for an address nobody listens on. A
/// service in the test process takes a bound [`listener`] instead: this
/// port may be taken by another test before it is used.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A folder removed when the test ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
