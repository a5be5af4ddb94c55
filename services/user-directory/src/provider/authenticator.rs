//! Our authenticator as the identity provider. Every administrative call
//! carries a safekeeper access token with `admin:user`, obtained by client
//! credentials and cached until shortly before it expires. The
//! authenticator deletes no account: removing one deactivates it.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{transport, Identity, IdentityProvider, NewIdentity, ProviderError};
use crate::directory_config::OrganizationEntry;

pub const ADMIN_SCOPE: &str = "admin:user";
/// Accounts per `POST /v1/users/batch` (the authenticator takes up to 500).
pub const MAX_BATCH: usize = 200;

pub struct AuthenticatorProvider {
    http: reqwest::Client,
    url: String,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct Account {
    id: String,
    username: String,
    email: String,
    firstname: String,
    lastname: String,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    version: Option<i64>,
}

impl From<Account> for Identity {
    fn from(a: Account) -> Self {
        Identity {
            reference_id: a.id,
            login: a.username,
            email: a.email,
            first_name: a.firstname,
            last_name: a.lastname,
            updated_at: a.updated_at,
            version: a.version,
        }
    }
}

impl AuthenticatorProvider {
    pub fn new(
        http: reqwest::Client,
        authenticator_url: String,
        safekeeper_url: String,
        client_id: String,
        client_secret: SecretString,
    ) -> Self {
        Self {
            http,
            url: authenticator_url.trim_end_matches('/').to_owned(),
            token_url: format!("{}/oauth2/token", safekeeper_url.trim_end_matches('/')),
            client_id,
            client_secret,
            token: Mutex::new(None),
        }
    }

    async fn access_token(&self) -> Result<String, ProviderError> {
        let mut slot = self.token.lock().await;
        if let Some((t, until)) = slot.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let r = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&[("grant_type", "client_credentials"), ("scope", ADMIN_SCOPE)])
            .send()
            .await
            .map_err(|e| ProviderError::NotSent(format!("the safekeeper: {e}")))?;
        if !r.status().is_success() {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            tracing::error!(%status, body = %body, client_id = %self.client_id, "the safekeeper refused the directory's client credentials");
            return Err(ProviderError::NotSent(format!(
                "no access token from the safekeeper (status {status})"
            )));
        }
        let t: TokenResponse = r
            .json()
            .await
            .map_err(|e| ProviderError::NotSent(format!("the safekeeper's token answer: {e}")))?;
        // Renew a little before expiry so no call carries a dying token.
        let margin = (t.expires_in / 5).clamp(1, 30);
        let until = Instant::now() + Duration::from_secs(t.expires_in.saturating_sub(margin));
        *slot = Some((t.access_token.clone(), until));
        Ok(t.access_token)
    }

    /// One administrative call; a 401 (a token revoked or keys rotated)
    /// gets one retry with a fresh token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ProviderError> {
        for attempt in 0..2 {
            let token = self.access_token().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.url))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.map_err(transport)?;
            let status = r.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok((status, v));
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(ProviderError::Unavailable(format!(
                    "the authenticator refused the directory's access token ({status})"
                )));
            }
            return Err(ProviderError::from_status(status, &v));
        }
        Err(ProviderError::Unavailable(
            "the authenticator keeps refusing fresh access tokens".into(),
        ))
    }
}

fn account(v: Value) -> Result<Identity, ProviderError> {
    serde_json::from_value::<Account>(v)
        .map(Identity::from)
        .map_err(|e| ProviderError::Unavailable(format!("unexpected account JSON: {e}")))
}

/// The body of `POST /v1/users` (one element of `POST /v1/users/batch`).
fn creation_request(new: &NewIdentity) -> Value {
    let mut body = json!({
        "username": new.login,
        "email": new.email,
        "firstname": new.first_name,
        "lastname": new.last_name,
    });
    if let Some(p) = &new.password {
        body["password"] = json!(p.expose_secret());
    }
    if let Some(h) = &new.password_hash {
        body["password_hash"] = json!(h);
    }
    body
}

/// One result of `POST /v1/users/batch`: what `POST /v1/users` would
/// have answered for that account.
#[derive(Deserialize)]
struct BatchResult {
    status: u16,
    #[serde(default)]
    account: Option<Value>,
    #[serde(default)]
    problem: Value,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

/// Each account's answer from a batch answer for `n` accounts. An answer
/// we cannot read may still have created them: outcome unknown.
fn batch_results(
    v: Value,
    n: usize,
) -> Result<Vec<Result<Identity, ProviderError>>, ProviderError> {
    let answer: BatchAnswer = serde_json::from_value(v)
        .map_err(|e| ProviderError::Unavailable(format!("unexpected batch JSON: {e}")))?;
    if answer.results.len() != n {
        return Err(ProviderError::Unavailable(format!(
            "the batch answered {} results for {n} accounts",
            answer.results.len()
        )));
    }
    Ok(answer
        .results
        .into_iter()
        .map(|r| match (r.status, r.account) {
            (201, Some(a)) => account(a),
            (status, _) => Err(ProviderError::from_status(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                &r.problem,
            )),
        })
        .collect())
}

impl IdentityProvider for AuthenticatorProvider {
    async fn create_user(&self, new: &NewIdentity) -> Result<Identity, ProviderError> {
        let body = creation_request(new);
        let (_, v) = self.call(Method::POST, "/v1/users", Some(&body)).await?;
        account(v)
    }

    /// One `POST /v1/users/batch` (the accounts stored in one
    /// transaction); an authenticator without it (404: an older release)
    /// gets one `POST /v1/users` per account.
    async fn create_users(&self, new: &[NewIdentity]) -> Vec<Result<Identity, ProviderError>> {
        if new.is_empty() {
            return Vec::new();
        }
        let body = Value::Array(new.iter().map(creation_request).collect());
        let answer = match self
            .call(Method::POST, "/v1/users/batch", Some(&body))
            .await
        {
            Err(ProviderError::NotFound) => {
                return join_all(new.iter().map(|n| self.create_user(n))).await
            }
            other => other.and_then(|(_, v)| batch_results(v, new.len())),
        };
        answer.unwrap_or_else(|e| vec![Err(e); new.len()])
    }

    /// The authenticator keeps no organizations: the membership lives in
    /// the directory alone.
    async fn create_membership(
        &self,
        _user_reference: &str,
        _organization: &OrganizationEntry,
        _role: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    async fn find_user(&self, login: &str) -> Result<Option<Identity>, ProviderError> {
        let path = format!("/v1/users?limit=20&username_prefix={}", urlencode(login));
        let (_, v) = self.call(Method::GET, &path, None).await?;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in items {
            if item.get("username").and_then(Value::as_str) == Some(login) {
                return account(item).map(Some);
            }
        }
        Ok(None)
    }

    async fn remove_user(&self, reference: &str) -> Result<(), ProviderError> {
        match self
            .call(
                Method::POST,
                &format!("/v1/users/{reference}/deactivate"),
                None,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn restore_user(&self, reference: &str) -> Result<(), ProviderError> {
        self.call(
            Method::POST,
            &format!("/v1/users/{reference}/activate"),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn change_email(&self, reference: &str, email: &str) -> Result<(), ProviderError> {
        self.call(
            Method::PATCH,
            &format!("/v1/users/{reference}"),
            Some(&json!({"email": email})),
        )
        .await
        .map(|_| ())
    }

    async fn set_password(
        &self,
        reference: &str,
        password: &SecretString,
    ) -> Result<(), ProviderError> {
        self.call(
            Method::POST,
            &format!("/v1/users/{reference}/password"),
            Some(&json!({"password": password.expose_secret()})),
        )
        .await
        .map(|_| ())
    }

    async fn authenticate(
        &self,
        login: &str,
        password: &SecretString,
    ) -> Result<String, ProviderError> {
        let r = self
            .http
            .post(format!("{}/v1/login", self.url))
            .json(&json!({"username": login, "password": password.expose_secret()}))
            .send()
            .await
            .map_err(transport)?;
        let status = r.status();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let v: Value = r.json().await.unwrap_or(Value::Null);
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => {
                return Err(ProviderError::InvalidCredentials)
            }
            StatusCode::FORBIDDEN => return Err(ProviderError::Inactive),
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(ProviderError::Throttled(retry_after.unwrap_or(60)))
            }
            other => return Err(ProviderError::from_status(other, &v)),
        }
        let session = v
            .get("session_token")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Unavailable("login answered no session_token".into()))?;
        // Who that is, from the authenticator itself (no token parsing here).
        let me: Value = self
            .http
            .get(format!("{}/v1/me", self.url))
            .bearer_auth(session)
            .send()
            .await
            .map_err(transport)?
            .error_for_status()
            .map_err(transport)?
            .json()
            .await
            .map_err(transport)?;
        me.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Unavailable("/v1/me answered no id".into()))
    }
}

/// Percent-encodes a query value (logins are `a-z0-9._-`, but be safe).
pub(crate) fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
