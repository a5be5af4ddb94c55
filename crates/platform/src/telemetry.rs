//! Logs and the per-request root span.
//!
//! Every request runs inside a span `http.request` carrying `request_id`
//! (taken from an inbound `X-Request-Id` when it looks sane, made up
//! otherwise, and echoed back), method and route. Completion is logged once
//! with status and latency, and counted in [`crate::metrics`]. The id is
//! also the task's ([`current_request_id`]), so that a call to another
//! service of the platform made while serving the request carries it
//! ([`with_request_id`]) and both services' logs name the same request.

use std::{sync::Once, time::Instant};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    Error, HttpMessage,
};
use tracing::Instrument;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being served, readable by handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

thread_local! {
    /// The request id on a blocking-pool thread, for the work a request
    /// handed it ([`on_blocking_thread`]).
    static BLOCKING_REQUEST_ID: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

/// The id of the request this task is serving (or, on the blocking pool,
/// that handed it the work being done), if there is one.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID
        .try_with(Clone::clone)
        .ok()
        .or_else(|| BLOCKING_REQUEST_ID.with(|id| id.borrow().clone()))
}

/// Runs `work` on this (blocking-pool) thread with `request_id` as the
/// current request's id, and leaves the thread without one afterwards.
pub fn on_blocking_thread<T>(request_id: Option<String>, work: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BLOCKING_REQUEST_ID.with(|id| *id.borrow_mut() = None);
        }
    }
    BLOCKING_REQUEST_ID.with(|id| *id.borrow_mut() = request_id);
    let _reset = Reset;
    work()
}

/// `call` with the served request's `X-Request-Id`, for a call to another
/// service of the platform (not to a third party: the id is ours).
pub fn with_request_id(call: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current_request_id() {
        Some(id) => call.header(REQUEST_ID_HEADER, id),
        None => call,
    }
}

static INIT: Once = Once::new();

/// Installs the global subscriber once per process. `RUST_LOG` filters
/// (default `info`); `LOG_FORMAT=json` switches to one JSON object a line.
pub fn init(format: LogFormat) {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,librdkafka=warn"));
        let registry = tracing_subscriber::registry().with(filter);
        let result = match format {
            LogFormat::Json => registry
                .with(
                    fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(true),
                )
                .try_init(),
            LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
        };
        // A test harness may have installed one already; that is fine.
        let _ = result;
    });
}

/// Installs a subscriber for tests: silent unless `TEST_LOG` is set.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init(LogFormat::Text);
    }
}

fn acceptable_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

/// Middleware: root span, request id, access log line, request metrics.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(acceptable_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "http.request",
        request_id = %request_id,
        http.method = %method,
        http.route = %route,
        http.status = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = CURRENT_REQUEST_ID
        .scope(request_id.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    let elapsed = started.elapsed();
    let status = match &result {
        Ok(resp) => resp.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    span.record("http.status", status);
    crate::metrics::global().observe_request(method_label(&method), &route, status, elapsed);
    let _enter = span.enter();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(
            http.status = status,
            latency_ms = elapsed_ms,
            "request served"
        );
    } else {
        tracing::debug!(
            http.status = status,
            latency_ms = elapsed_ms,
            "request served"
        );
    }
    drop(_enter);
    let mut resp = result?;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    Ok(resp)
}

/// The request-method label of the metrics: a known method, or `OTHER`, so
/// that made-up method names cannot create new series.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    #[test]
    fn made_up_methods_share_one_metrics_label() {
        assert_eq!(super::method_label("GET"), "GET");
        assert_eq!(super::method_label("PATCH"), "PATCH");
        assert_eq!(super::method_label("XJUNK1"), "OTHER");
        assert_eq!(super::method_label("get"), "OTHER");
    }
}
