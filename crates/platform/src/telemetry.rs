//! Logs, the per-request root span, and the trace context that follows a
//! request from service to service.
//!
//! Every request runs inside a span `http.request` carrying `request_id`
//! (taken from an inbound `X-Request-Id` when it looks sane, made up
//! otherwise, and echoed back), `trace_id` (W3C Trace Context: taken from
//! an inbound `traceparent` when it is well formed, made up otherwise),
//! method and route. Completion is logged once with status and latency,
//! and counted in [`crate::metrics`].
//!
//! The request's [`TraceContext`] is also the task's ([`current`]) and,
//! for work it hands the blocking pool, that thread's
//! ([`on_blocking_thread`]). So a call to another service of the platform
//! made while serving it carries `X-Request-Id` and `traceparent`
//! ([`with_request_id`]); an event it writes carries them as Kafka headers
//! (the outbox keeps them); and a consumer handles that event inside the
//! same trace ([`in_context`]). Every service's logs then name the same
//! `trace_id`, from the authenticator through Kafka to the task service.

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

/// The W3C Trace Context header (`00-<trace-id>-<parent-id>-<flags>`).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The id of the request being served, readable by handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where the work being done sits in a trace: the request (or consumed
/// event) it serves, the trace it belongs to, and its own span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub request_id: String,
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero: this service's span, the
    /// parent of the calls and events it makes.
    pub span_id: String,
}

impl TraceContext {
    /// A context for work that continues the trace of `traceparent` when
    /// it is well formed (else starts one), under a span of its own.
    pub fn continuing(traceparent: Option<&str>, request_id: Option<String>) -> Self {
        let trace_id = traceparent
            .and_then(parse_traceparent)
            .unwrap_or_else(|| random_hex(16));
        Self {
            request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            trace_id,
            span_id: random_hex(8),
        }
    }

    /// The `traceparent` of a call or event made from this context.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

/// The trace id of a well-formed version-00 `traceparent`, else `None`
/// (W3C Trace Context, section 3.2).
pub fn parse_traceparent(v: &str) -> Option<String> {
    let mut parts = v.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let ok = parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    ok.then(|| trace.to_owned())
}

/// `bytes` random bytes as lowercase hex, never all zero: trace and span
/// ids. A per-thread SplitMix64 seeded from the OS once, so that a request
/// costs no system call (ids must be unique and unpredictable enough to
/// tell traces apart, not secret).
fn random_hex(bytes: usize) -> String {
    use std::{cell::Cell, fmt::Write};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1);
    }
    let next = || {
        STATE.with(|s| {
            let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    };
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        let _ = write!(out, "{:016x}", next());
    }
    out.truncate(bytes * 2);
    if out.bytes().all(|b| b == b'0') {
        out.replace_range(out.len() - 1.., "1");
    }
    out
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

thread_local! {
    /// The context on a blocking-pool thread, for the work a request or a
    /// consumer handed it ([`on_blocking_thread`]).
    static BLOCKING: std::cell::RefCell<Option<TraceContext>> =
        const { std::cell::RefCell::new(None) };
}

/// The trace context of the work this task (or, on the blocking pool, the
/// work that handed this thread its job) is doing, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT
        .try_with(Clone::clone)
        .ok()
        .or_else(|| BLOCKING.with(|c| c.borrow().clone()))
}

/// The id of the request this task is serving, if there is one.
pub fn current_request_id() -> Option<String> {
    current().map(|c| c.request_id)
}

/// Runs `fut` with `cx` as the task's trace context (a consumer handling
/// an event does, with the context the event's headers carry).
pub async fn in_context<F: std::future::Future>(cx: TraceContext, fut: F) -> F::Output {
    CURRENT.scope(cx, fut).await
}

/// Runs `work` on this (blocking-pool) thread with `cx` as the current
/// trace context, and leaves the thread without one afterwards.
pub fn on_blocking_thread<T>(cx: Option<TraceContext>, work: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BLOCKING.with(|c| *c.borrow_mut() = None);
        }
    }
    BLOCKING.with(|c| *c.borrow_mut() = cx);
    let _reset = Reset;
    work()
}

/// `call` with the served request's `X-Request-Id` and `traceparent`, for
/// a call to another service of the platform (not to a third party: the
/// ids are ours).
pub fn with_request_id(call: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current() {
        Some(cx) => call
            .header(REQUEST_ID_HEADER, &cx.request_id)
            .header(TRACEPARENT_HEADER, cx.traceparent()),
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
    let cx = TraceContext::continuing(
        req.headers()
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some(request_id.clone()),
    );
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "http.request",
        request_id = %request_id,
        trace_id = %cx.trace_id,
        http.method = %method,
        http.route = %route,
        http.status = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = CURRENT
        .scope(cx, next.call(req))
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

    #[test]
    fn only_a_well_formed_version_00_traceparent_is_continued() {
        use super::{parse_traceparent, TraceContext};
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(good).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        let cx = TraceContext::continuing(Some(good), None);
        assert_eq!(cx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(cx.span_id, "00f067aa0ba902b7");
        let next = cx.traceparent();
        assert_eq!(
            parse_traceparent(&next).as_deref(),
            Some(cx.trace_id.as_str())
        );
        let fresh = TraceContext::continuing(Some("garbage"), None);
        assert_eq!(fresh.trace_id.len(), 32);
        assert_eq!(fresh.span_id.len(), 16);
    }
}
