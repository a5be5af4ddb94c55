//! The platform most tests start from: an authenticator and a safekeeper
//! on the shared broker, each with its own database, wired to each other;
//! the superuser's admin token; clients; people with roles.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::{
    authenticator::{self as auth, ROOT_PASSWORD, ROOT_USER},
    eventually, safekeeper as sk, shared_brokers, TestDatabase,
};

/// The password of every [`Person`].
pub const PASSWORD: &str = "Sturdy-Passw0rd!";

/// A registered account, signed in.
#[derive(Debug, Clone)]
pub struct Person {
    pub username: String,
    pub id: String,
    pub session: String,
}

/// An authenticator and a safekeeper, running.
pub struct TestPlatform {
    /// The authenticator's and the safekeeper's base URLs.
    pub auth: String,
    pub sk: String,
    pub brokers: String,
    /// No redirects followed, so that tests see each step.
    pub http: reqwest::Client,
    /// The superuser's access token with `admin:rbac`, `admin:client` and
    /// `admin:user`.
    pub admin: String,
    pub auth_db: TestDatabase,
    pub sk_db: TestDatabase,
    _auth: auth::Running,
    _sk: sk::Running,
}

/// How the platform starts (`TestPlatform::builder()`).
#[derive(Default)]
pub struct TestPlatformBuilder {
    code_ttl: Option<Duration>,
}

impl TestPlatformBuilder {
    /// How long the safekeeper's authorization codes live (60 s).
    pub fn code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = Some(ttl);
        self
    }

    /// Starts both services and waits for the superuser's admin role to
    /// reach the safekeeper (through `iam.user.v1`).
    pub async fn build(self) -> TestPlatform {
        let brokers = shared_brokers();
        let (auth_db, sk_db) = (auth::database(), sk::database());
        // The authenticator accepts the safekeeper's tokens (its sign-in
        // page relays logins with one), so it must know where the
        // safekeeper will listen.
        let sk_listener = crate::listener();
        let mut ao = auth::Options::new(brokers.clone(), &auth_db);
        ao.safekeeper_url = Some(format!("http://127.0.0.1:{}", sk_listener.port()));
        let a = auth::spawn(ao).await;
        let mut so = sk::Options::new(brokers.clone(), &sk_db, &a.address);
        so.listener = sk_listener;
        if let Some(ttl) = self.code_ttl {
            so.code_ttl = ttl;
        }
        let s = sk::spawn(so).await;
        let http = crate::http_client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let mut p = TestPlatform {
            auth: a.address.clone(),
            sk: s.address.clone(),
            brokers,
            http,
            admin: String::new(),
            auth_db,
            sk_db,
            _auth: a,
            _sk: s,
        };
        let root = p.session(ROOT_USER, ROOT_PASSWORD).await;
        p.admin = eventually(120, "the superuser's admin role", || {
            p.try_token(&root, "admin:rbac,admin:client,admin:user")
        })
        .await;
        p
    }
}

impl TestPlatform {
    pub fn builder() -> TestPlatformBuilder {
        TestPlatformBuilder::default()
    }

    /// The safekeeper's URL of `path`.
    pub fn sk(&self, path: &str) -> String {
        format!("{}{}", self.sk, path)
    }

    /// A session token of `username` from the authenticator.
    pub async fn session(&self, username: &str, password: &str) -> String {
        crate::session(&self.http, &self.auth, username, password).await
    }

    /// `POST /v1/authorize`: an access token for `scopes` in exchange for
    /// a session token (the task-management design's flow).
    pub async fn authorize(&self, session: &str, scopes: &str) -> Response {
        self.http
            .post(self.sk("/v1/authorize"))
            .bearer_auth(session)
            .json(&json!({"scopes": scopes}))
            .send()
            .await
            .expect("the safekeeper answers")
    }

    /// The access token [`Self::authorize`] gives, or `None` when refused.
    pub async fn try_token(&self, session: &str, scopes: &str) -> Option<String> {
        let r = self.authorize(session, scopes).await;
        (r.status() == StatusCode::OK).then_some(())?;
        Some(
            r.json::<Value>().await.ok()?["access_token"]
                .as_str()?
                .to_owned(),
        )
    }

    /// An access token of `who` for `scopes`, waiting until the safekeeper
    /// knows the grants that allow them.
    pub async fn token(&self, who: &Person, scopes: &str) -> String {
        eventually(30, "an access token", || {
            self.try_token(&who.session, scopes)
        })
        .await
    }

    /// A call to the safekeeper's admin API with the superuser's token.
    pub async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = self
            .http
            .request(method, self.sk(path))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("the safekeeper answers")
    }

    /// Registers an OAuth2 client (`POST /v1/admin/clients` with `client`).
    pub async fn create_client(&self, client: Value) {
        let r = self
            .admin_call(Method::POST, "/v1/admin/clients", Some(client))
            .await;
        let status = r.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap_or_default()
        );
    }

    /// A client-credentials access token of `client` for `scope`.
    pub async fn client_token(&self, client: &str, secret: &str, scope: &str) -> String {
        let r = self
            .http
            .post(self.sk("/oauth2/token"))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .expect("the safekeeper answers");
        assert_eq!(r.status(), StatusCode::OK, "a token for {client}");
        r.json::<Value>().await.expect("a JSON body")["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// Registers an account in the authenticator, signs it in, waits
    /// until the safekeeper knows it, and grants it `role` there.
    pub async fn person(&self, role: Option<&str>) -> Person {
        let n = uuid::Uuid::new_v4().simple().to_string();
        let username = format!("u.{}", &n[..12]);
        let r = self
            .http
            .post(format!("{}/v1/user", self.auth))
            .json(&json!({"username": username, "password": PASSWORD,
                          "email": format!("{username}@example.com"),
                          "firstname": "Test", "lastname": "User"}))
            .send()
            .await
            .expect("the authenticator answers");
        assert_eq!(r.status(), StatusCode::CREATED, "registering {username}");
        let id = r.json::<Value>().await.expect("a JSON body")["id"]
            .as_str()
            .expect("an account id")
            .to_owned();
        let session = self.session(&username, PASSWORD).await;
        let p = Person {
            username,
            id,
            session,
        };
        eventually(30, "the account in the safekeeper", || async {
            let r = self
                .admin_call(
                    Method::GET,
                    &format!("/v1/admin/users?username={}", p.username),
                    None,
                )
                .await;
            let v: Value = r.json().await.ok()?;
            (!v.as_array()?.is_empty()).then_some(())
        })
        .await;
        if let Some(role) = role {
            self.grant(&p, role).await;
        }
        p
    }

    /// Grants `role` to `p` in the safekeeper.
    pub async fn grant(&self, p: &Person, role: &str) {
        let r = self
            .admin_call(
                Method::POST,
                &format!("/v1/admin/users/{}/roles", p.id),
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "granting {role}");
    }

    /// Revokes `role` from `p` in the safekeeper.
    pub async fn revoke(&self, p: &Person, role: &str) {
        let r = self
            .admin_call(
                Method::DELETE,
                &format!("/v1/admin/users/{}/roles/{role}", p.id),
                None,
            )
            .await;
        assert!(r.status().is_success(), "revoking {role}: {}", r.status());
    }

    /// Deactivates an account in the authenticator, as its superuser.
    pub async fn deactivate(&self, id: &str) {
        let root = self.session(ROOT_USER, ROOT_PASSWORD).await;
        let r = self
            .http
            .post(format!("{}/v1/users/{id}/deactivate", self.auth))
            .bearer_auth(root)
            .send()
            .await
            .expect("the authenticator answers");
        assert_eq!(r.status(), StatusCode::OK);
    }
}
