//! The identity provider: where accounts and credentials live. Two real
//! implementations, chosen by `IDENTITY_PROVIDER`: our authenticator over
//! HTTP (the default) and the WorkOS User Management API. The directory's
//! database stays the source for reads; the provider is called to create,
//! change, remove and authenticate accounts.

pub mod authenticator;
pub mod workos;

use std::{future::Future, net::IpAddr};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use crate::{config::ProviderSettings, directory_config::OrganizationEntry, domain::Email};

/// An account to create.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub email: String,
    /// What the account signs in with (see [`Provider::login_for`]).
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    /// The user's environment role (WorkOS keeps it in the user's
    /// `metadata`; the authenticator has no such field). `None` for an
    /// organization's admin.
    pub environment_role: Option<String>,
    /// A password that passed our policy (organization admins), or
    pub password: Option<SecretString>,
    /// a bcrypt hash (imports), or neither: an invitation.
    pub password_hash: Option<String>,
    /// The end user who asked for the account themselves (`POST
    /// /org/create`), relayed so the provider can limit creations per
    /// address; `None` when an organization's admin creates accounts.
    pub end_user_address: Option<IpAddr>,
}

/// A change of an account: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// WorkOS keeps it in the user's `metadata`; the authenticator has no
    /// such field (the directory alone keeps it).
    pub environment_role: Option<String>,
}

impl AccountChange {
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.first_name.is_none()
            && self.last_name.is_none()
            && self.environment_role.is_none()
    }
}

/// Credentials the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The account's reference id.
    pub reference_id: String,
    /// The account's session epoch at sign-in (the `sep` of the
    /// authenticator's session token; 0 where the provider has none):
    /// the account's sessions end when it rises above this.
    pub session_epoch: i64,
}

/// An account as the provider shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub reference_id: String,
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub updated_at: Option<DateTime<Utc>>,
    /// The account's version, where the provider numbers them (the
    /// authenticator; its events carry the same numbers).
    pub version: Option<i64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// A duplicate (409): the provider has an account with this `field`.
    #[error("the identity provider already has an account with this {field}")]
    Conflict { field: String },
    /// The provider refused the input for good (400/422).
    #[error("the identity provider refused the request: {detail}")]
    Rejected {
        field: Option<String>,
        rule: Option<String>,
        detail: String,
    },
    #[error("the identity provider does not know this account")]
    NotFound,
    #[error("the credentials are wrong")]
    InvalidCredentials,
    #[error("the account is deactivated")]
    Inactive,
    #[error("too many attempts; retry in {0} seconds")]
    Throttled(u64),
    /// Anything that may work if tried again: timeout, 5xx. The call may
    /// or may not have taken effect.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The call never reached the provider (no connection, no token): it
    /// certainly took no effect.
    #[error("the identity provider is unreachable: {0}")]
    NotSent(String),
}

impl ProviderError {
    /// Worth retrying, and the outcome is unknown: something must look
    /// at the provider later before anything is undone.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ProviderError::Unavailable(_))
    }

    /// Classifies an answer that was not a success.
    pub(crate) fn from_status(status: StatusCode, body: &Value) -> Self {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let detail = text("detail")
            .or_else(|| text("message"))
            .unwrap_or_else(|| format!("status {status}"));
        match status.as_u16() {
            404 => ProviderError::NotFound,
            409 => ProviderError::Conflict {
                field: text("field").unwrap_or_else(|| "email".into()),
            },
            429 => ProviderError::Throttled(1),
            400 | 422 => ProviderError::Rejected {
                field: text("field"),
                rule: text("rule").or_else(|| text("code")),
                detail,
            },
            s if s >= 500 => ProviderError::Unavailable(format!("status {status}: {detail}")),
            _ => ProviderError::Unavailable(format!("unexpected status {status}: {detail}")),
        }
    }
}

pub(crate) fn transport(e: reqwest::Error) -> ProviderError {
    if e.is_connect() {
        return ProviderError::NotSent(format!("{e}"));
    }
    ProviderError::Unavailable(if e.is_timeout() {
        "timed out".into()
    } else {
        format!("{e}")
    })
}

/// What every identity provider does for the directory.
pub trait IdentityProvider {
    /// Step one of a creation.
    fn create_user(
        &self,
        new: &NewIdentity,
    ) -> impl Future<Output = Result<Identity, ProviderError>> + Send;
    /// Step one of many creations: one answer per account, in order. By
    /// default one [`create_user`](Self::create_user) per account, all at
    /// once.
    fn create_users(
        &self,
        new: &[NewIdentity],
    ) -> impl Future<Output = Vec<Result<Identity, ProviderError>>> + Send
    where
        Self: Sync,
    {
        join_all(new.iter().map(|n| self.create_user(n)))
    }
    /// Step two: the membership in the organization with the role. The
    /// provider's id of the membership, if it keeps memberships.
    fn create_membership(
        &self,
        user_reference: &str,
        organization: &OrganizationEntry,
        role: &str,
    ) -> impl Future<Output = Result<Option<String>, ProviderError>> + Send;
    fn find_user(
        &self,
        login: &str,
    ) -> impl Future<Output = Result<Option<Identity>, ProviderError>> + Send;
    /// Undoes a creation (or removes an organization's admin). Removing an
    /// account that is gone already succeeds.
    fn remove_user(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// Takes back an account a compensation removed (the authenticator
    /// only deactivates; WorkOS deletes, so there is nothing to restore).
    fn restore_user(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    fn change_email(
        &self,
        reference: &str,
        email: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    fn set_password(
        &self,
        reference: &str,
        password: &SecretString,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// Changes an account's email, names and environment role (each
    /// only if given); setting the same values again changes nothing, so
    /// the call may be repeated.
    fn update_user(
        &self,
        reference: &str,
        change: &AccountChange,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// Gives membership `membership` (the provider's id, where it keeps
    /// memberships) the organization role `role`; may be repeated.
    fn set_membership_role(
        &self,
        membership: Option<&str>,
        role: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// Checks credentials that `end_user` (the address of the person
    /// signing in, when known) typed in; the provider throttles failures
    /// by that address, not by the directory's.
    fn authenticate(
        &self,
        login: &str,
        password: &SecretString,
        end_user: Option<IpAddr>,
    ) -> impl Future<Output = Result<Authenticated, ProviderError>> + Send;
}

/// The configured provider.
pub enum Provider {
    Authenticator(authenticator::AuthenticatorProvider),
    WorkOs(workos::WorkOsProvider),
}

macro_rules! delegate {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            Provider::Authenticator($p) => $call.await,
            Provider::WorkOs($p) => $call.await,
        }
    };
}

impl Provider {
    pub fn from_settings(
        s: &ProviderSettings,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(std::time::Duration::from_secs(3))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(match s {
            ProviderSettings::Authenticator {
                authenticator_url,
                safekeeper_url,
                client_id,
                client_secret,
            } => Provider::Authenticator(authenticator::AuthenticatorProvider::new(
                http,
                authenticator_url.clone(),
                safekeeper_url.clone(),
                client_id.clone(),
                client_secret.clone(),
            )),
            ProviderSettings::WorkOs {
                base_url,
                api_key,
                client_id,
            } => Provider::WorkOs(workos::WorkOsProvider::new(
                http,
                base_url.clone(),
                api_key.clone(),
                client_id.clone(),
            )),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Provider::Authenticator(_) => "authenticator",
            Provider::WorkOs(_) => "workos",
        }
    }

    /// Whether step two (the membership) happens at the provider; the
    /// authenticator keeps no organizations.
    pub fn keeps_memberships(&self) -> bool {
        matches!(self, Provider::WorkOs(_))
    }

    /// The most accounts one [`create_users`](Self::create_users) call
    /// should carry: the authenticator creates many with one request;
    /// WorkOS takes one request per account, so one each lets the caller
    /// keep its number of requests in flight.
    pub fn max_batch(&self) -> usize {
        match self {
            Provider::Authenticator(_) => authenticator::MAX_BATCH,
            Provider::WorkOs(_) => 1,
        }
    }

    /// What an account of `email` signs in with: the authenticator logs in
    /// by username (derived from the email), WorkOS by email.
    pub fn login_for(&self, email: &Email) -> String {
        match self {
            Provider::Authenticator(_) => email.derived_username(),
            Provider::WorkOs(_) => email.as_str().to_lowercase(),
        }
    }

    pub async fn create_user(&self, new: &NewIdentity) -> Result<Identity, ProviderError> {
        delegate!(self, p => p.create_user(new))
    }

    pub async fn create_users(&self, new: &[NewIdentity]) -> Vec<Result<Identity, ProviderError>> {
        delegate!(self, p => p.create_users(new))
    }

    pub async fn create_membership(
        &self,
        user_reference: &str,
        organization: &OrganizationEntry,
        role: &str,
    ) -> Result<Option<String>, ProviderError> {
        delegate!(self, p => p.create_membership(user_reference, organization, role))
    }

    pub async fn find_user(&self, login: &str) -> Result<Option<Identity>, ProviderError> {
        delegate!(self, p => p.find_user(login))
    }

    pub async fn remove_user(&self, reference: &str) -> Result<(), ProviderError> {
        delegate!(self, p => p.remove_user(reference))
    }

    pub async fn restore_user(&self, reference: &str) -> Result<(), ProviderError> {
        delegate!(self, p => p.restore_user(reference))
    }

    pub async fn change_email(&self, reference: &str, email: &str) -> Result<(), ProviderError> {
        delegate!(self, p => p.change_email(reference, email))
    }

    pub async fn update_user(
        &self,
        reference: &str,
        change: &AccountChange,
    ) -> Result<(), ProviderError> {
        if change.is_empty() {
            return Ok(());
        }
        delegate!(self, p => p.update_user(reference, change))
    }

    pub async fn set_membership_role(
        &self,
        membership: Option<&str>,
        role: &str,
    ) -> Result<(), ProviderError> {
        delegate!(self, p => p.set_membership_role(membership, role))
    }

    pub async fn set_password(
        &self,
        reference: &str,
        password: &SecretString,
    ) -> Result<(), ProviderError> {
        delegate!(self, p => p.set_password(reference, password))
    }

    pub async fn authenticate(
        &self,
        login: &str,
        password: &SecretString,
        end_user: Option<IpAddr>,
    ) -> Result<Authenticated, ProviderError> {
        delegate!(self, p => p.authenticate(login, password, end_user))
    }

    /// Whether `token` is a live session of a superuser of our
    /// authenticator (an operator). Always false with WorkOS, whose
    /// sessions the directory does not see.
    pub async fn is_superuser_session(&self, token: &str) -> Result<bool, ProviderError> {
        match self {
            Provider::Authenticator(p) => p.is_superuser_session(token).await,
            _ => Ok(false),
        }
    }
}
