//! The task service's one error type. Every variant maps to a problem
//! document; internal causes go with the problem and are logged once, when the
//! response is written.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use platform::{db::StoreError, Problem};
use serde::Serialize;

use crate::domain::Invalid;

/// A move the workflow allows from a status, shown when one is refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AllowedMove {
    pub status_id: i32,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver_role: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid {}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    /// Well-formed, but names something that does not exist or may not be
    /// used (an unknown type, an inactive assignee).
    #[error("{detail}")]
    Unprocessable {
        slug: &'static str,
        field: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("missing scope {0}")]
    MissingScope(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("the move needs the role {role}")]
    ApprovalRequired {
        role: String,
        from: String,
        to: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("no transition from {from} to {to}")]
    TransitionNotAllowed {
        from: String,
        to: String,
        allowed: Vec<AllowedMove>,
    },
    /// A task that other tasks name as their parent cannot be deleted.
    #[error("task {0} has subtasks")]
    HasSubtasks(uuid::Uuid),
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
            ApiError::Unprocessable {
                slug,
                field,
                detail,
            } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                slug,
                "The request is well-formed but cannot be applied",
            )
            .with_detail(detail.clone())
            .with("field", field),
            ApiError::Unauthenticated(d) => Problem::unauthorized(d.clone()),
            ApiError::MissingScope(s) => resource_server::auth::missing_scope(s),
            ApiError::Forbidden(d) => Problem::forbidden(d.clone()),
            ApiError::ApprovalRequired { role, from, to } => Problem::new(
                StatusCode::FORBIDDEN,
                "approval-required",
                "The move needs an approver",
            )
            .with_detail(format!(
                "moving a task from {from} to {to} needs the role {role}"
            ))
            .with("approver_role", role),
            ApiError::NotFound(d) => Problem::not_found(d.clone()),
            ApiError::TransitionNotAllowed { from, to, allowed } => Problem::new(
                StatusCode::CONFLICT,
                "transition-not-allowed",
                "The workflow has no such transition",
            )
            .with_detail(format!(
                "the task's workflow does not move from {from} to {to}"
            ))
            .with("from", from)
            .with("to", to)
            .with("allowed", allowed),
            ApiError::HasSubtasks(id) => Problem::new(
                StatusCode::CONFLICT,
                "task-has-subtasks",
                "The task has subtasks",
            )
            .with_detail(format!(
                "other tasks name task {id} as their parent: delete or move them first"
            )),
            ApiError::Unavailable(d) => Problem::unavailable(d.clone()),
            ApiError::Store(e) => Problem::from(e),
            ApiError::Database(e) => platform::db::database_problem(e),
            ApiError::Internal(e) => Problem::internal(e.as_ref()),
        }
    }

    pub fn unknown(slug: &'static str, field: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            slug,
            field,
            detail: detail.into(),
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
