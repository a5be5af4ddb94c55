use std::{collections::HashSet, time::Duration};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
pub use testkit::{assert_problem, eventually};

pub use testkit::PASSWORD;
pub const SPA: &str = "test-spa";
pub const SPA_REDIRECT: &str = "http://127.0.0.1:8765/callback";
pub const SERVICE: &str = "test-service";
pub const SERVICE_SECRET: &str = "test-service-secret-0123456789";
pub const THIRD_PARTY: &str = "third-party";
/// A resource server: it may introspect tokens issued to other clients.
pub const RESOURCE_SERVER: &str = "test-resource-server";
pub const RESOURCE_SERVER_SECRET: &str = "test-resource-server-secret-0123";

/// The authenticator and the safekeeper ([`testkit::TestPlatform`]) with
/// this suite's clients registered.
pub struct TestPlatform(testkit::TestPlatform);

impl std::ops::Deref for TestPlatform {
    type Target = testkit::TestPlatform;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

pub struct Tweaks {
    pub code_ttl: Duration,
}

impl Default for Tweaks {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(60),
        }
    }
}

pub async fn spawn() -> TestPlatform {
    spawn_with(Tweaks::default()).await
}

pub async fn spawn_with(t: Tweaks) -> TestPlatform {
    let p = testkit::TestPlatform::builder()
        .code_ttl(t.code_ttl)
        .build()
        .await;
    for client in [
        json!({"client_id": SPA, "name": "Test SPA", "public": true, "first_party": true,
               "redirect_uris": [SPA_REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
               "scopes": ["read:task", "edit:task", "create:task", "su_read:task", "su_edit:task"]}),
        json!({"client_id": THIRD_PARTY, "name": "Third Party App", "public": true, "first_party": false,
               "redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code"],
               "scopes": ["read:task"]}),
        json!({"client_id": SERVICE, "name": "Test Service", "client_secret": SERVICE_SECRET,
               "grant_types": ["client_credentials"], "scopes": ["su_read:task"]}),
        json!({"client_id": RESOURCE_SERVER, "name": "Test Resource Server", "client_secret": RESOURCE_SERVER_SECRET,
               "grant_types": ["client_credentials"], "scopes": ["introspect:token"]}),
    ] {
        p.create_client(client).await;
    }
    TestPlatform(p)
}

impl TestPlatform {
    /// The safekeeper's own database, for tests that age rows.
    pub fn sk_database_url(&self) -> String {
        self.sk_db.url.clone()
    }

    /// Registers an account, waits until the safekeeper knows it, grants
    /// `role`; returns (username, id).
    pub async fn user_with_role(&self, role: Option<&str>) -> (String, String) {
        let p = self.person(role).await;
        (p.username, p.id)
    }

    pub async fn user_role_events(
        &self,
        user_id: &str,
        want: usize,
    ) -> Vec<platform::events::Envelope> {
        let keys: HashSet<String> = [user_id.to_owned()].into();
        testkit::collect_events(
            &self.brokers,
            "iam.user-role.v1",
            &keys,
            want,
            Duration::from_secs(30),
        )
        .await
    }
}

/// Asserts an RFC 6749 error answer; returns the body.
pub async fn assert_oauth_error(r: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], error, "{v}");
    v
}
