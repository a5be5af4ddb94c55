//! Our authenticator as the identity provider. Every administrative call
//! carries a safekeeper access token with `provision:user` (ordinary
//! accounts only: never a superuser's, never a role), obtained by client
//! credentials and cached until shortly before it expires. The same token
//! carries `login:relay` when the directory's client holds it: then an
//! organization admin's sign-in (and the creation of an organization's
//! admin account) names the end user's address, so that the authenticator
//! throttles the person signing in, not every sign-in that passes through
//! the directory. The authenticator deletes no account: removing one
//! deactivates it.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};
use futures::future::join_all;
use platform::jwt::{END_USER_ADDRESS_HEADER, LOGIN_RELAY_SCOPE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{
    transport, AccountChange, Authenticated, Identity, IdentityProvider, NewIdentity, ProviderError,
};
use crate::directory_config::OrganizationEntry;

pub const PROVISION_SCOPE: &str = "provision:user";
/// Accounts per `POST /v1/users/batch` (the authenticator takes up to 500).
pub const MAX_BATCH: usize = 200;

pub struct AuthenticatorProvider {
    http: reqwest::Client,
    url: String,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    token: Mutex<Option<AccessToken>>,
}

/// The directory's access token, while it is good.
#[derive(Clone)]
struct AccessToken {
    value: String,
    until: Instant,
    /// Granted `login:relay`: may name an end user's address.
    relay: bool,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    /// Absent when the scopes are the ones asked for (RFC 6749, 5.1).
    #[serde(default)]
    scope: Option<String>,
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
    /// A call to the authenticator or the safekeeper, carrying the served
    /// request's `X-Request-Id` (when there is one) so that their logs name
    /// the same request as ours.
    fn outbound(&self, method: Method, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        platform::telemetry::with_request_id(self.http.request(method, url))
    }

    /// `GET /v1/me` with `token`: a live (active, not ended) session of a
    /// superuser.
    pub async fn is_superuser_session(&self, token: &str) -> Result<bool, ProviderError> {
        let answer = self
            .outbound(Method::GET, format!("{}/v1/me", self.url))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("the authenticator: {e}")))?;
        if !answer.status().is_success() {
            return Ok(false);
        }
        let me: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("the authenticator's /v1/me: {e}")))?;
        Ok(me["is_superuser"] == true && me["is_active"] == true)
    }

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

    async fn access_token(&self) -> Result<AccessToken, ProviderError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.until {
                return Ok(t.clone());
            }
        }
        let scopes = format!("{PROVISION_SCOPE} {LOGIN_RELAY_SCOPE}");
        let r = self
            .outbound(Method::POST, &self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&[("grant_type", "client_credentials"), ("scope", &scopes)])
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
        let relay = t
            .scope
            .as_deref()
            .is_none_or(|s| s.split_ascii_whitespace().any(|s| s == LOGIN_RELAY_SCOPE));
        if !relay {
            tracing::warn!(client_id = %self.client_id, "the directory's client does not hold login:relay: the authenticator throttles every admin sign-in by the directory's own address");
        }
        // Renew a little before expiry so no call carries a dying token.
        let margin = (t.expires_in / 5).clamp(1, 30);
        let token = AccessToken {
            value: t.access_token,
            until: Instant::now() + Duration::from_secs(t.expires_in.saturating_sub(margin)),
            relay,
        };
        *slot = Some(token.clone());
        Ok(token)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// One administrative call; a 401 (a token revoked or keys rotated)
    /// gets one retry with a fresh token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ProviderError> {
        self.call_for(method, path, body, None).await
    }

    /// [`call`](Self::call) on behalf of the end user at `end_user`, whose
    /// address is named when the token may relay it.
    async fn call_for(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        end_user: Option<IpAddr>,
    ) -> Result<(StatusCode, Value), ProviderError> {
        for attempt in 0..2 {
            let token = self.access_token().await?;
            let mut req = self
                .outbound(method.clone(), format!("{}{path}", self.url))
                .bearer_auth(&token.value);
            if let (Some(address), true) = (end_user, token.relay) {
                req = req.header(END_USER_ADDRESS_HEADER, address.to_string());
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.map_err(transport)?;
            let status = r.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.forget_token().await;
                continue;
            }
            let retry_after = retry_after(&r);
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok((status, v));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                // Too many sign-ups from the end user's address, say.
                return Err(ProviderError::Throttled(retry_after.unwrap_or(1)));
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
        let (_, v) = self
            .call_for(Method::POST, "/v1/users", Some(&body), new.end_user_address)
            .await?;
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

    /// `PATCH /v1/users/{id}` with `email`, `firstname`, `lastname` (what
    /// `provision:user` may change of an ordinary account). The
    /// authenticator has no environment roles: a change of that alone
    /// calls nothing.
    async fn update_user(
        &self,
        reference: &str,
        change: &AccountChange,
    ) -> Result<(), ProviderError> {
        let mut body = serde_json::Map::new();
        for (k, v) in [
            ("email", &change.email),
            ("firstname", &change.first_name),
            ("lastname", &change.last_name),
        ] {
            if let Some(v) = v {
                body.insert(k.into(), json!(v));
            }
        }
        if body.is_empty() {
            return Ok(());
        }
        self.call(
            Method::PATCH,
            &format!("/v1/users/{reference}"),
            Some(&Value::Object(body)),
        )
        .await
        .map(|_| ())
    }

    /// The authenticator keeps no organizations: the role lives in the
    /// directory alone.
    async fn set_membership_role(
        &self,
        _membership: Option<&str>,
        _role: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
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

    /// `POST /v1/login`, naming the end user's address beside the
    /// directory's access token (when it holds `login:relay`), then `GET
    /// /v1/me` with the session token for the account's id.
    async fn authenticate(
        &self,
        login: &str,
        password: &SecretString,
        end_user: Option<IpAddr>,
    ) -> Result<Authenticated, ProviderError> {
        let body = json!({"username": login, "password": password.expose_secret()});
        let mut attempt = 0;
        let (status, retry_after, v) = loop {
            attempt += 1;
            let mut req = self
                .outbound(Method::POST, format!("{}/v1/login", self.url))
                .json(&body);
            let mut relayed = false;
            if let Some(address) = end_user {
                // Without a token the sign-in still works, throttled by the
                // directory's own address: better than no sign-in at all
                // while the safekeeper is away.
                match self.access_token().await {
                    Ok(t) if t.relay => {
                        req = req
                            .bearer_auth(&t.value)
                            .header(END_USER_ADDRESS_HEADER, address.to_string());
                        relayed = true;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %platform::problem::chain(&e), "signing an admin in without relaying their address")
                    }
                }
            }
            let r = req.send().await.map_err(transport)?;
            let status = r.status();
            let retry_after = retry_after(&r);
            let v: Value = r.json().await.unwrap_or(Value::Null);
            // A 401 or 403 that is not about the credentials is about the
            // directory's token: revoked or rotated (a fresh one is worth
            // one try), or without `login:relay`.
            let about_token = relayed
                && match status {
                    StatusCode::UNAUTHORIZED => !is_problem(&v, "invalid-credentials"),
                    StatusCode::FORBIDDEN => !is_problem(&v, "account-inactive"),
                    _ => false,
                };
            if !about_token {
                break (status, retry_after, v);
            }
            self.forget_token().await;
            if attempt >= 2 {
                tracing::error!(%status, body = %v, client_id = %self.client_id, "the authenticator refused the directory's relay token");
                return Err(ProviderError::Unavailable(format!(
                    "the authenticator refused the directory's access token ({status})"
                )));
            }
        };
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
        let session_epoch = session_epoch(session)?;
        // Who that is, from the authenticator itself.
        let me: Value = self
            .outbound(Method::GET, format!("{}/v1/me", self.url))
            .bearer_auth(session)
            .send()
            .await
            .map_err(transport)?
            .error_for_status()
            .map_err(transport)?
            .json()
            .await
            .map_err(transport)?;
        let reference_id = me
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Unavailable("/v1/me answered no id".into()))?;
        Ok(Authenticated {
            reference_id,
            session_epoch,
        })
    }
}

/// The seconds of a `Retry-After` header.
fn retry_after(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `v` is the problem+json of type `slug`.
fn is_problem(v: &Value, slug: &str) -> bool {
    v.get("type")
        .and_then(Value::as_str)
        .and_then(|t| t.rsplit('/').next())
        == Some(slug)
}

/// The `sep` claim (the account's session epoch) of a session token the
/// authenticator has just answered over our own connection to it: read,
/// not verified again (`GET /v1/me` verifies the token right after). A
/// token without the claim (an authenticator without epochs) reads as 0.
fn session_epoch(session_token: &str) -> Result<i64, ProviderError> {
    #[derive(Deserialize)]
    struct Epoch {
        #[serde(default)]
        sep: i64,
    }
    let unreadable =
        || ProviderError::Unavailable("login answered an unreadable session token".into());
    let payload = session_token.split('.').nth(1).ok_or_else(unreadable)?;
    let bytes = B64URL.decode(payload).map_err(|_| unreadable())?;
    serde_json::from_slice::<Epoch>(&bytes)
        .map(|e| e.sep)
        .map_err(|_| unreadable())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &Value) -> String {
        format!(
            "eyJhbGciOiJFZERTQSJ9.{}.c2ln",
            B64URL.encode(payload.to_string())
        )
    }

    #[test]
    fn the_session_epoch_is_read_from_the_session_token() {
        assert_eq!(
            session_epoch(&token(&json!({"sub": "a", "sep": 7}))).ok(),
            Some(7)
        );
        // An authenticator without epochs: 0.
        assert_eq!(session_epoch(&token(&json!({"sub": "a"}))).ok(), Some(0));
        for bad in ["", "one-part", "a.%%%.c", &token(&json!({"sep": "seven"}))] {
            assert!(session_epoch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn problems_are_told_apart_by_type() {
        let v = json!({"type": "https://errors.platform.example/invalid-credentials"});
        assert!(is_problem(&v, "invalid-credentials"));
        assert!(!is_problem(&v, "account-inactive"));
        assert!(!is_problem(&Value::Null, "invalid-credentials"));
    }
}
