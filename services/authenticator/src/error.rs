//! The authenticator's one error type. Every variant maps to a problem
//! document; internal causes go with the problem and are logged once, when the
//! response is written.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use platform::{db::StoreError, Problem};

use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid {}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    #[error("{0}")]
    BadRequest(String),
    #[error("username is taken")]
    UsernameTaken,
    #[error("email is taken")]
    EmailTaken,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("account is deactivated")]
    AccountInactive,
    #[error("too many failed attempts")]
    TooManyAttempts { retry_after_seconds: u64 },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A request above a limit: 413 naming the limit (`limit_name`).
    #[error("{detail}")]
    TooLarge {
        detail: String,
        limit_name: &'static str,
        limit: usize,
    },
    /// Too much work queued (the password hashing): 503 with `Retry-After`.
    #[error("too busy")]
    Overloaded { retry_after_seconds: u64 },
    /// A service we depend on (the safekeeper's JWKS) is unreachable.
    #[error("{0}")]
    Unavailable(String),
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
            ApiError::UsernameTaken => {
                Problem::conflict("username-taken", "an account with this username exists")
                    .with("field", "username")
            }
            ApiError::EmailTaken => {
                Problem::conflict("email-taken", "an account with this email exists")
                    .with("field", "email")
            }
            ApiError::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid credentials",
            )
            .with_detail("the username or password is wrong"),
            ApiError::AccountInactive => Problem::new(
                StatusCode::FORBIDDEN,
                "account-inactive",
                "Account deactivated",
            )
            .with_detail(
                "this account has been deactivated; ask an administrator to reactivate it",
            ),
            ApiError::TooManyAttempts {
                retry_after_seconds,
            } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                "Too many attempts",
            )
            .with_detail(format!("try again in {retry_after_seconds} seconds"))
            .with_retry_after(*retry_after_seconds),
            ApiError::Unauthenticated(d) => Problem::unauthorized(d.clone()),
            ApiError::Forbidden(d) => Problem::forbidden(d.clone()),
            ApiError::NotFound(d) => Problem::not_found(d.clone()),
            ApiError::TooLarge {
                detail,
                limit_name,
                limit,
            } => Problem::too_large(detail.clone(), limit_name, *limit),
            ApiError::Unavailable(d) => Problem::unavailable(d.clone()),
            ApiError::Overloaded {
                retry_after_seconds,
            } => Problem::unavailable(
                "too many sign-ins are being checked right now; try again shortly",
            )
            .with_retry_after(*retry_after_seconds),
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
