//! The directory's one error type. Every variant maps to a problem
//! document; internal causes go with the problem and are logged once, when the
//! response is written.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use platform::{db::StoreError, Problem};

use crate::{domain::Invalid, provider::ProviderError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid {}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    #[error("{0}")]
    BadRequest(String),
    #[error("organization name is taken")]
    OrganizationTaken,
    #[error("the admin email is taken")]
    AdminEmailTaken,
    #[error("a user with this email exists")]
    EmailTaken,
    #[error("a creation of this user is in progress")]
    CreationInProgress,
    #[error("another change of this user is in progress")]
    ChangeInProgress,
    #[error("the user is also a member of another organization")]
    SharedAccount,
    /// A change whose provider call may have taken effect: the reconciler
    /// completes it (or, if it cannot, undoes it).
    #[error("the change is unfinished: {0}")]
    ChangeUnfinished(String),
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A refresh token that is unknown, expired, spent or revoked: all
    /// answered alike.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// The organization was deleted at the identity provider (WorkOS).
    #[error("the organization is deleted at the identity provider")]
    OrganizationDeletedAtProvider,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    TooLarge {
        detail: String,
        limit_name: &'static str,
        limit: usize,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("webhook refused: {0}")]
    BadSignature(String),
    #[error("webhooks are not configured")]
    WebhooksDisabled,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for ApiError {
    fn from(v: Invalid) -> Self {
        ApiError::Invalid(v)
    }
}

impl ApiError {
    pub fn problem(&self) -> Problem {
        match self {
            ApiError::Invalid(v) => Problem::from(v),
            ApiError::BadRequest(d) => Problem::bad_request(d.clone()),
            ApiError::OrganizationTaken => Problem::conflict(
                "organization-taken",
                "an organization with this name exists (names are unique regardless of case)",
            )
            .with("field", "organization_name"),
            ApiError::AdminEmailTaken => Problem::conflict(
                "email-taken",
                "this email already administers an organization or has an account",
            )
            .with("field", "email"),
            ApiError::EmailTaken => Problem::conflict(
                "email-taken",
                "a user with this email exists (regardless of case)",
            )
            .with("field", "email"),
            ApiError::CreationInProgress => Problem::conflict(
                "creation-in-progress",
                "this user is being created by another request",
            )
            .with("field", "email"),
            ApiError::ChangeInProgress => Problem::conflict(
                "change-in-progress",
                "another change of this user is in progress; try again shortly",
            ),
            ApiError::SharedAccount => Problem::conflict(
                "account-shared",
                "this user is also a member of another organization, so their account is \
                 not yours alone to change or remove; only their role here can be changed",
            ),
            ApiError::ChangeUnfinished(why) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "change-unfinished",
                "Change unfinished",
            )
            .with_detail("the identity provider did not answer in time; the directory completes the change shortly (or undoes it if it cannot be made): read the user to see the outcome")
            .with_retry_after(2)
            .noting(format_args!("a change was left to the reconciler: {why}")),
            ApiError::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid credentials",
            )
            .with_detail("the email or password is wrong"),
            ApiError::InvalidGrant => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-grant", "Invalid grant")
                    .with_detail("the refresh token is invalid, expired or revoked; log in again")
                    .with("error", "invalid_grant")
            }
            ApiError::OrganizationDeletedAtProvider => Problem::conflict(
                "organization-deleted-at-provider",
                "the organization was deleted at the identity provider: it takes no new members \
                 (its admin may still read it, and delete it with DELETE /org/delete)",
            ),
            ApiError::Unauthenticated(d) => Problem::unauthorized(d.clone()),
            ApiError::Forbidden(d) => Problem::forbidden(d.clone()),
            ApiError::NotFound(d) => Problem::not_found(d.clone()),
            ApiError::TooLarge {
                detail,
                limit_name,
                limit,
            } => Problem::too_large(detail.clone(), limit_name, *limit),
            ApiError::UnsupportedMediaType(d) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .with_detail(d.clone()),
            ApiError::BadSignature(d) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid-signature",
                "Invalid webhook signature",
            )
            .with_detail(d.clone()),
            ApiError::WebhooksDisabled => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhooks-disabled",
                "Webhooks are not configured",
            )
            .with_detail("set WORKOS_WEBHOOK_SECRET to receive WorkOS webhooks"),
            ApiError::Provider(e) => match e {
                ProviderError::Conflict { field } => Problem::conflict(
                    "email-taken",
                    format!("the identity provider already has an account with this {field}"),
                )
                .with("field", field),
                ProviderError::Rejected {
                    field,
                    rule,
                    detail,
                } => Problem::from(&contracts::FieldError::new(
                    field.as_deref().unwrap_or("body"),
                    rule.as_deref().unwrap_or("provider_rule"),
                    detail.clone(),
                )),
                ProviderError::InvalidCredentials => ApiError::InvalidCredentials.problem(),
                ProviderError::Inactive => Problem::new(
                    StatusCode::FORBIDDEN,
                    "account-inactive",
                    "Account deactivated",
                )
                .with_detail("this account has been deactivated"),
                ProviderError::Throttled(s) => Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-attempts",
                    "Too many attempts",
                )
                .with_detail(format!("try again in {s} seconds"))
                .with_retry_after(*s),
                ProviderError::NotFound
                | ProviderError::Unavailable(_)
                | ProviderError::NotSent(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider-unavailable",
                    "Identity provider unavailable",
                )
                .with_detail("the identity provider did not answer as expected; nothing was kept, try again shortly")
                .with_retry_after(2)
                .noting(format_args!("identity provider call failed: {e}")),
            },
            ApiError::Store(e) => Problem::from(e),
            ApiError::Database(e) => platform::db::database_problem(e),
            ApiError::Internal(e) => Problem::internal(e.as_ref()),
        }
    }
}

impl ResponseError for ApiError {
    /// The problem document's: mapped in one place, [`ApiError::problem`].
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().error_response()
    }
}
