//! RFC 9457 problem details: the one error body every service answers with.
//!
//! Policy: a handler's error enum maps each variant to a [`Problem`], and
//! only there: its status code is the problem's. Client errors carry a
//! `detail` that helps the caller fix the request. A server error is
//! opaque: its cause chain travels with the problem, never sent, and is
//! logged once, when the response is written.

use std::fmt;

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

/// Base of the `type` URIs; each problem type names a section of the docs.
pub const TYPE_BASE: &str = "https://errors.platform.example/";

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members (RFC 9457 section 3.2), flattened into the body.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    /// Seconds for a `Retry-After` header (429, 503).
    #[serde(skip)]
    pub retry_after_seconds: Option<u64>,
    /// Extra response headers (`WWW-Authenticate`, say).
    #[serde(skip)]
    pub headers: Vec<(&'static str, String)>,
    /// A server error's cause chain: logged with the response, never sent.
    #[serde(skip)]
    pub cause: Option<String>,
}

impl Problem {
    /// `slug` becomes the last segment of the `type` URI.
    pub fn new(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            extensions: Map::new(),
            retry_after_seconds: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    /// Keeps `cause`'s chain with the problem, for the log (see
    /// [`chain`]); the client never sees it.
    pub fn caused_by(mut self, cause: &(dyn std::error::Error + 'static)) -> Self {
        self.cause = Some(chain(cause));
        self
    }

    /// [`Self::caused_by`] for a cause that is only text.
    pub fn noting(mut self, cause: impl fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.extensions.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "The request is well-formed but invalid",
        )
        .with_detail(detail)
    }

    /// 401 with the `WWW-Authenticate: Bearer` challenge (RFC 6750).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
        )
        .with_detail(detail)
        .with_header("WWW-Authenticate", "Bearer")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(detail)
    }

    /// 413 naming the limit that was passed (`limit_name`: `limit_bytes`,
    /// say).
    pub fn too_large(detail: impl Into<String>, limit_name: &str, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        )
        .with_detail(detail)
        .with(limit_name, limit)
    }

    pub fn conflict(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, "Conflict").with_detail(detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service temporarily unavailable",
        )
        .with_detail(detail)
        .with_retry_after(1)
    }

    /// An opaque 500. The cause's chain goes with it to the log, once,
    /// when the response is written; the client only learns that something
    /// failed on our side.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .caused_by(cause)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<&contracts::FieldError> for Problem {
    /// `400 invalid-field`, naming the field and the rule (see
    /// [`contracts::field`]).
    fn from(e: &contracts::FieldError) -> Self {
        Self::new(
            StatusCode::from_u16(contracts::field::STATUS).unwrap_or(StatusCode::BAD_REQUEST),
            contracts::field::TYPE,
            contracts::field::TITLE,
        )
        .with_detail(e.message.clone())
        .with("field", &e.field)
        .with("rule", &e.rule)
    }
}

/// `cause` and its sources, outermost first, joined by `: `: how every
/// error is logged.
pub fn chain(cause: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = cause.to_string();
    let mut source = cause.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.title, self.status)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(chain) = &self.cause {
            if self.status >= 500 && self.status != 503 {
                tracing::error!(error.chain = %chain, status = self.status, "request failed");
            } else {
                tracing::warn!(error.chain = %chain, status = self.status, "request refused");
            }
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.content_type("application/problem+json");
        resp.insert_header(("Cache-Control", "no-store"));
        if let Some(s) = self.retry_after_seconds {
            resp.insert_header(("Retry-After", s.to_string()));
        }
        for (name, value) in &self.headers {
            resp.insert_header((*name, value.as_str()));
        }
        resp.json(self)
    }
}

/// Extractor configuration so that malformed bodies, paths and queries
/// answer problem+json rather than actix's plain-text errors.
pub mod extractors {
    use actix_web::{error, web, HttpRequest};

    use super::Problem;

    pub fn json_config(limit_bytes: usize) -> web::JsonConfig {
        web::JsonConfig::default()
            .limit(limit_bytes)
            .error_handler(|err, _req: &HttpRequest| {
                // A control character past the part the middleware holds.
                if let error::JsonPayloadError::Payload(e) = &err {
                    if let Some(refused) = crate::input::refusal_in(e) {
                        return refused.problem().into();
                    }
                }
                let problem = match &err {
                    error::JsonPayloadError::ContentType => Problem::new(
                        actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported-media-type",
                        "Unsupported media type",
                    )
                    .with_detail("send the body as application/json"),
                    error::JsonPayloadError::Overflow { limit }
                    | error::JsonPayloadError::OverflowKnownLength { limit, .. } => {
                        Problem::too_large(
                            format!("the body may hold at most {limit} bytes"),
                            "limit_bytes",
                            *limit,
                        )
                    }
                    error::JsonPayloadError::Deserialize(e) => {
                        Problem::bad_request(format!("invalid JSON body: {e}"))
                    }
                    other => Problem::bad_request(format!("invalid JSON body: {other}")),
                };
                problem.into()
            })
    }

    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|err, _req| {
            Problem::bad_request(format!("invalid query string: {err}")).into()
        })
    }

    pub fn path_config() -> web::PathConfig {
        web::PathConfig::default()
            .error_handler(|err, _req| Problem::not_found(format!("invalid path: {err}")).into())
    }

    pub fn form_config() -> web::FormConfig {
        web::FormConfig::default().error_handler(|err, _req| {
            let refused = match &err {
                error::UrlencodedError::Payload(e) => crate::input::refusal_in(e),
                _ => None,
            };
            match refused {
                Some(r) => r.problem().into(),
                None => Problem::bad_request(format!("invalid form: {err}")).into(),
            }
        })
    }

    /// The answer for a route nobody registered.
    pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, Problem> {
        Err(Problem::not_found(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_errors_cause_goes_with_it_to_the_log_and_never_to_the_client() {
        let cause = std::io::Error::other("disk on fire");
        let p = Problem::internal(&cause);
        assert_eq!(p.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(p.cause.as_deref(), Some("disk on fire"));
        let body = serde_json::to_string(&p).unwrap();
        assert!(!body.contains("disk"), "{body}");
    }

    #[test]
    fn a_field_error_is_400_invalid_field_naming_field_and_rule() {
        let e = contracts::FieldError::new("email", "email_format", "not an address");
        let p = Problem::from(&e);
        assert_eq!(p.status_code(), StatusCode::BAD_REQUEST);
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(body["type"], format!("{TYPE_BASE}invalid-field"));
        assert_eq!(
            (&body["field"], &body["rule"]),
            (&"email".into(), &"email_format".into())
        );
        assert_eq!(body["detail"], "not an address");
    }

    #[test]
    fn a_row_that_is_not_there_is_404_and_a_lost_connection_503() {
        use diesel::result::{DatabaseErrorKind, Error};
        let missing = crate::db::database_problem(&Error::NotFound);
        assert_eq!(missing.status_code(), StatusCode::NOT_FOUND);
        let lost = crate::db::database_problem(&Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection".to_owned()),
        ));
        assert_eq!(lost.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(lost.cause.is_some());
    }
}
