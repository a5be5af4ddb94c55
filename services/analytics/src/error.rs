//! The analytics service's one error type. Every variant maps to a
//! problem document; internal causes go with the problem and are logged
//! once, when the response is written.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use platform::{db::StoreError, Problem};

use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid {}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    #[error("missing scope {0}")]
    MissingScope(&'static str),
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
            ApiError::MissingScope(s) => resource_server::auth::missing_scope(s),
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
