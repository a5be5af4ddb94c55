//! The access-rule service's one error type. Every variant maps to a
//! problem document; internal causes go with the problem and are logged
//! once, when the response is written; never sent.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use platform::{db::StoreError, Problem};

use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field that breaks a rule (400 `invalid-field`).
    #[error("invalid {}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    /// A request missing what it needs or not parseable (400).
    #[error("{0}")]
    BadRequest(String),
    #[error("event_id {0} was already used for a different event")]
    EventIdReused(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A producer over its rate; retry after the duration.
    #[error("this producer is over its rate")]
    TooManyEvents(std::time::Duration),
    /// The operator API cannot verify session tokens right now.
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
            ApiError::EventIdReused(id) => Problem::conflict(
                "event-id-reused",
                "this event_id was already used for a different event; an event resent \
                 with the same id must be identical",
            )
            .with("event_id", id),
            ApiError::Unauthenticated(d) => Problem::unauthorized(d.clone()),
            ApiError::Forbidden(d) => Problem::forbidden(d.clone()),
            ApiError::NotFound(d) => Problem::not_found(d.clone()),
            ApiError::TooManyEvents(wait) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "producer-rate-exceeded",
                "This producer is over its rate",
            )
            .with_detail(
                "the event was not applied; this producer may post \
                 PRODUCER_EVENTS_PER_SECOND events a second: send it again later",
            )
            .with_retry_after(wait.as_secs_f64().ceil().max(1.0) as u64),
            ApiError::Unavailable(d) => Problem::unavailable(d.clone()),
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
