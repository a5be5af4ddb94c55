//! WorkOS User Management as the identity provider: `POST
//! /user_management/users`, `GET/PUT/DELETE /user_management/users/{id}`,
//! `POST /user_management/organization_memberships`, membership
//! deactivate/reactivate, password authentication, and the Events API. A
//! bearer API key; the base URL is configurable.

use std::net::IpAddr;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    authenticator::urlencode, transport, AccountChange, Authenticated, Identity, IdentityProvider,
    NewIdentity, ProviderError,
};

/// The key of a user's `metadata` that holds the directory's environment
/// role. WorkOS's own environment roles are role definitions given to
/// organization memberships (`role_slug`), where the directory puts the
/// organization role; a user-wide role has no field of its own there.
pub const ENVIRONMENT_ROLE_KEY: &str = "environment_role";
use crate::directory_config::OrganizationEntry;

/// The events the directory applies.
pub const EVENTS: [&str; 9] = [
    "user.created",
    "user.updated",
    "user.deleted",
    "organization_membership.created",
    "organization_membership.updated",
    "organization_membership.deleted",
    "organization.created",
    "organization.updated",
    "organization.deleted",
];

pub struct WorkOsProvider {
    http: reqwest::Client,
    base: String,
    api_key: SecretString,
    client_id: String,
}

#[derive(Deserialize)]
struct User {
    id: String,
    email: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<User> for Identity {
    fn from(u: User) -> Self {
        Identity {
            reference_id: u.id,
            login: u.email.to_lowercase(),
            email: u.email,
            first_name: u.first_name.unwrap_or_default(),
            last_name: u.last_name.unwrap_or_default(),
            updated_at: u.updated_at,
            version: None,
        }
    }
}

fn user(v: Value) -> Result<Identity, ProviderError> {
    serde_json::from_value::<User>(v)
        .map(Identity::from)
        .map_err(|e| ProviderError::Unavailable(format!("unexpected user JSON: {e}")))
}

/// A page of the Events API.
pub struct EventPage {
    pub events: Vec<Value>,
    /// The cursor to read on from (the last event's id).
    pub after: Option<String>,
}

impl WorkOsProvider {
    pub fn new(
        http: reqwest::Client,
        base: String,
        api_key: SecretString,
        client_id: String,
    ) -> Self {
        Self {
            http,
            base,
            api_key,
            client_id,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ProviderError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.api_key.expose_secret());
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(transport)?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok((status, v));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            tracing::error!(%status, "WorkOS refused the API key");
            return Err(ProviderError::Unavailable(format!(
                "WorkOS refused the API key ({status})"
            )));
        }
        // WorkOS reports a taken email as a 422 with a code naming it.
        let code = v.get("code").and_then(Value::as_str).unwrap_or_default();
        let nested = v.get("errors").and_then(Value::as_array).is_some_and(|es| {
            es.iter()
                .any(|e| e.get("code").and_then(Value::as_str) == Some("email_not_available"))
        });
        if status == StatusCode::UNPROCESSABLE_ENTITY && (code == "email_not_available" || nested) {
            return Err(ProviderError::Conflict {
                field: "email".into(),
            });
        }
        Err(ProviderError::from_status(status, &v))
    }

    /// `PUT /user_management/organization_memberships/{id}/deactivate` or
    /// `/reactivate`.
    pub async fn set_membership_active(
        &self,
        membership: &str,
        active: bool,
    ) -> Result<(), ProviderError> {
        let verb = if active { "reactivate" } else { "deactivate" };
        self.call(
            Method::PUT,
            &format!("/user_management/organization_memberships/{membership}/{verb}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /events?events=...&after=...&limit=100`: events in order.
    pub async fn events_after(&self, after: Option<&str>) -> Result<EventPage, ProviderError> {
        let mut path = String::from("/events?limit=100");
        for e in EVENTS {
            path.push_str("&events=");
            path.push_str(e);
        }
        if let Some(a) = after {
            path.push_str("&after=");
            path.push_str(&urlencode(a));
        }
        let (_, v) = self.call(Method::GET, &path, None).await?;
        let events = v
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let after = events
            .last()
            .and_then(|e| e.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(EventPage { events, after })
    }
}

impl IdentityProvider for WorkOsProvider {
    async fn create_user(&self, new: &NewIdentity) -> Result<Identity, ProviderError> {
        let mut body = json!({
            "email": new.email,
            "first_name": new.first_name,
            "last_name": new.last_name,
        });
        if let Some(p) = &new.password {
            body["password"] = json!(p.expose_secret());
        }
        if let Some(h) = &new.password_hash {
            body["password_hash"] = json!(h);
            body["password_hash_type"] = json!("bcrypt");
        }
        if let Some(r) = &new.environment_role {
            body["metadata"] = json!({ ENVIRONMENT_ROLE_KEY: r });
        }
        let (_, v) = self
            .call(Method::POST, "/user_management/users", Some(&body))
            .await?;
        user(v)
    }

    async fn create_membership(
        &self,
        user_reference: &str,
        organization: &OrganizationEntry,
        role: &str,
    ) -> Result<Option<String>, ProviderError> {
        let org = organization
            .workos_id
            .as_deref()
            .ok_or_else(|| ProviderError::Rejected {
                field: Some("organization".into()),
                rule: Some("workos_id".into()),
                detail: format!(
                    "organization {} has no workos_id in the directory config",
                    organization.name
                ),
            })?;
        let (_, v) = self
            .call(
                Method::POST,
                "/user_management/organization_memberships",
                Some(
                    &json!({"user_id": user_reference, "organization_id": org, "role_slug": role}),
                ),
            )
            .await?;
        Ok(v.get("id").and_then(Value::as_str).map(str::to_owned))
    }

    async fn find_user(&self, login: &str) -> Result<Option<Identity>, ProviderError> {
        let (_, v) = self
            .call(
                Method::GET,
                &format!("/user_management/users?email={}", urlencode(login)),
                None,
            )
            .await?;
        let first = v
            .get("data")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .cloned();
        first.map(user).transpose()
    }

    async fn remove_user(&self, reference: &str) -> Result<(), ProviderError> {
        match self
            .call(
                Method::DELETE,
                &format!("/user_management/users/{reference}"),
                None,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn restore_user(&self, _reference: &str) -> Result<(), ProviderError> {
        Err(ProviderError::NotFound)
    }

    async fn change_email(&self, reference: &str, email: &str) -> Result<(), ProviderError> {
        self.call(
            Method::PUT,
            &format!("/user_management/users/{reference}"),
            Some(&json!({"email": email})),
        )
        .await
        .map(|_| ())
    }

    /// `PUT /user_management/users/{id}` with `email`, `first_name`,
    /// `last_name` and `metadata.environment_role`, those given.
    async fn update_user(
        &self,
        reference: &str,
        change: &AccountChange,
    ) -> Result<(), ProviderError> {
        let mut body = json!({});
        for (k, v) in [
            ("email", &change.email),
            ("first_name", &change.first_name),
            ("last_name", &change.last_name),
        ] {
            if let Some(v) = v {
                body[k] = json!(v);
            }
        }
        if let Some(r) = &change.environment_role {
            body["metadata"] = json!({ ENVIRONMENT_ROLE_KEY: r });
        }
        self.call(
            Method::PUT,
            &format!("/user_management/users/{reference}"),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// `PUT /user_management/organization_memberships/{id}` with
    /// `role_slug`.
    async fn set_membership_role(
        &self,
        membership: Option<&str>,
        role: &str,
    ) -> Result<(), ProviderError> {
        let Some(membership) = membership else {
            return Err(ProviderError::Rejected {
                field: Some("role".into()),
                rule: Some("workos_membership".into()),
                detail: "this membership has no WorkOS id to change the role of".into(),
            });
        };
        self.call(
            Method::PUT,
            &format!("/user_management/organization_memberships/{membership}"),
            Some(&json!({ "role_slug": role })),
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
            Method::PUT,
            &format!("/user_management/users/{reference}"),
            Some(&json!({"password": password.expose_secret()})),
        )
        .await
        .map(|_| ())
    }

    /// Password authentication; the end user's address goes as
    /// `ip_address` (WorkOS records it and applies its own protections).
    /// WorkOS has no session epochs: 0.
    async fn authenticate(
        &self,
        login: &str,
        password: &SecretString,
        end_user: Option<IpAddr>,
    ) -> Result<Authenticated, ProviderError> {
        let mut body = json!({
            "client_id": self.client_id,
            "client_secret": self.api_key.expose_secret(),
            "grant_type": "password",
            "email": login,
            "password": password.expose_secret(),
        });
        if let Some(address) = end_user {
            body["ip_address"] = json!(address.to_string());
        }
        let r = self
            .http
            .post(format!("{}/user_management/authenticate", self.base))
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return v
                .pointer("/user/id")
                .and_then(Value::as_str)
                .map(|id| Authenticated {
                    reference_id: id.to_owned(),
                    session_epoch: 0,
                })
                .ok_or_else(|| ProviderError::Unavailable("authenticate answered no user".into()));
        }
        match status.as_u16() {
            400 | 401 | 403 | 404 | 422 => Err(ProviderError::InvalidCredentials),
            _ => Err(ProviderError::from_status(status, &v)),
        }
    }
}
