//! Errors: problem+json for the platform API, RFC 6749 error objects for
//! the OAuth2 endpoints.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use platform::{db::StoreError, Problem};
use serde::Serialize;

use crate::{grants::ClientError, rbac::CatalogueError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("missing scopes")]
    MissingScopes(Vec<String>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A service we depend on (the authenticator's JWKS) is unreachable.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<CatalogueError> for ApiError {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::Unknown { .. } => ApiError::BadRequest(e.to_string()),
            CatalogueError::Exists { .. } => ApiError::Conflict(e.to_string()),
            CatalogueError::Db(d) => ApiError::Database(d),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Exists => ApiError::Conflict(e.to_string()),
            ClientError::UnknownScope(_) => ApiError::BadRequest(e.to_string()),
            ClientError::NotFound => ApiError::NotFound(e.to_string()),
            ClientError::Db(d) => ApiError::Database(d),
        }
    }
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::BadRequest(d) => Problem::bad_request(d.clone()),
            ApiError::Unauthenticated(d) => Problem::unauthorized(d.clone()),
            ApiError::Forbidden(d) => Problem::forbidden(d.clone()),
            ApiError::MissingScopes(m) => Problem::new(
                StatusCode::FORBIDDEN,
                "missing-scopes",
                "Scopes not granted",
            )
            .with_detail(format!("you do not hold: {}", m.join(", ")))
            .with("missing_scopes", m),
            ApiError::NotFound(d) => Problem::not_found(d.clone()),
            ApiError::Conflict(d) => Problem::conflict("conflict", d.clone()),
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

/// An RFC 6749 section 5.2 error from the token, introspection and
/// revocation endpoints.
#[derive(Debug, thiserror::Error, Serialize)]
#[error("{error}: {error_description}")]
pub struct OAuthError {
    pub error: &'static str,
    pub error_description: String,
    #[serde(skip)]
    pub status: u16,
    /// Answer with `WWW-Authenticate: Basic` (client authentication failed
    /// through the Authorization header).
    #[serde(skip)]
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: description.into(),
            status: 400,
            basic_challenge: false,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }

    pub fn invalid_client(d: impl Into<String>, basic: bool) -> Self {
        Self {
            status: 401,
            basic_challenge: basic,
            ..Self::new("invalid_client", d)
        }
    }

    pub fn server_error() -> Self {
        Self {
            status: 500,
            ..Self::new("server_error", "the server could not complete the request")
        }
    }
}

impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Store(StoreError::Pool(_)) => Self {
                status: 503,
                ..Self::new("temporarily_unavailable", "try again shortly")
            },
            ApiError::Database(ref d) if platform::db::is_connection_lost(d) => Self {
                status: 503,
                ..Self::new("temporarily_unavailable", "try again shortly")
            },
            other => {
                // Logged once here, with its chain; the client learns
                // nothing of the cause.
                tracing::error!(error.chain = %platform::problem::chain(&other), "request failed");
                Self::server_error()
            }
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        r.insert_header(("Cache-Control", "no-store"))
            .insert_header(("Pragma", "no-cache"));
        if self.basic_challenge {
            r.insert_header(("WWW-Authenticate", "Basic realm=\"safekeeper\""));
        }
        r.json(self)
    }
}
