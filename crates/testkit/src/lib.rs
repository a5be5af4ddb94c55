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
//! - [`Browser`]: headless Chromium over WebDriver, for the tests named
//!   `…_in_headless_chromium` ([`browser`]);
//! - [`eventually`], [`assert_problem`], [`session`]: the small helpers
//!   every service's tests use.

pub mod broker;
pub mod browser;
pub mod dashboard;
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

pub use broker::{collect_events, shared_brokers, skip_group_to_latest, OwnedBroker};
pub use browser::Browser;
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

/// How long a test client keeps an idle connection: less than the
/// services' keep-alive (`platform::server::KEEP_ALIVE`, 5 s), so that a
/// client never sends a request on a connection the server is closing
/// (hyper's `IncompleteMessage`).
pub const CLIENT_IDLE: Duration = Duration::from_secs(2);

/// A client builder for tests: idle connections dropped after
/// [`CLIENT_IDLE`].
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(CLIENT_IDLE)
}

/// A client for tests (redirects followed, as `reqwest::Client::new()`).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client")
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

/// A service running inside the test process (the task service, accounting,
/// analytics, the notifier), stopped as SIGTERM would stop it.
pub struct Running {
    pub address: String,
    handle: actix_web::dev::ServerHandle,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Runs a built application in the background; `port` is where it
    /// listens.
    pub fn start(
        port: u16,
        handle: actix_web::dev::ServerHandle,
        run: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> Self {
        Self {
            address: format!("http://127.0.0.1:{port}"),
            handle,
            join: tokio::spawn(run),
        }
    }

    /// Stops the server and its background work (the consumer commits its
    /// offsets).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), self.join).await;
    }
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
