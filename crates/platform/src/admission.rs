//! Admission control: at most `MAX_IN_FLIGHT` requests are handled at once
//! by a service; one more waits up to `ADMISSION_WAIT_MS` for a slot, then
//! is answered at once `503` problem+json with `Retry-After`, never left to
//! queue until its client gives up.
//!
//! Every queue behind the HTTP server (the database pool's checkout, the
//! blocking pool, the event writers, the hashing threads) only ever holds
//! requests that were admitted here, so this one limit bounds them all,
//! whatever each bounds on its own. The probes and the metrics
//! (`/healthz`, `/readyz`, `/metrics`) bypass it: an overloaded service
//! answers 503 to its clients, not to its orchestrator, which would
//! otherwise restart it at the worst moment.
//!
//! The hot path is one `try_acquire` on a semaphore; a refusal is a
//! prepared body and three headers. Refusals are counted in
//! `http_requests_total{status="503"}` under their route and in
//! `http_requests_refused_total`, and logged at most once a second.

use std::{
    rc::Rc,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix_web::{
    body::EitherBody,
    dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform},
    http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER},
    web::Bytes,
    Error, HttpMessage, HttpResponse,
};
use futures::{
    future::{ready, LocalBoxFuture, Ready},
    StreamExt,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::Problem;

/// Paths that are never refused: liveness, readiness, metrics.
pub const EXEMPT_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// What a refused client is told to wait before it tries again.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// How long a refusal waits for the rest of a small request body before it
/// answers. A body left unread would make actix close the connection after
/// the 503, and a client that reconnects costs the server more than one
/// that sends again on the same connection.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// The `MAX_IN_FLIGHT` of a service that does not set it: room for every
/// HTTP worker and every pooled connection to be busy, four times over,
/// so that a short burst queues for the pool (bounded by
/// `DATABASE_CHECKOUT_WAIT_MS`) or the other bounded queues rather than
/// being refused, while a flood is refused before it queues for seconds.
/// 72 with 2 workers and 16 connections.
pub fn default_max_in_flight(workers: usize, pool_size: u32) -> usize {
    4 * (workers.max(1) + pool_size as usize)
}

/// The admission middleware. One per server, cloned into each worker's
/// `App` (the workers share its slots):
/// `App::new().wrap(...).wrap(admission.clone())`, outermost, so that a
/// refusal costs no more than it must.
#[derive(Clone)]
pub struct Admission {
    shared: Arc<Shared>,
}

struct Shared {
    /// `None`: no limit (`MAX_IN_FLIGHT=0`).
    permits: Option<Arc<Semaphore>>,
    limit: usize,
    wait: Duration,
    /// How much of a refused request's body is read (the body limit).
    drain_limit: usize,
    body: Bytes,
    started: Instant,
    /// Seconds since `started` of the last warning, and refusals since.
    warned_at: AtomicU64,
    unwarned: AtomicU64,
}

impl Admission {
    /// At most `max_in_flight` requests at once (0: no limit), a further
    /// one waiting up to `wait` for a slot. `max_body_bytes`: the service's
    /// body limit (a refused body up to that size is read and dropped, so
    /// that the connection stays open).
    pub fn new(max_in_flight: usize, wait: Duration, max_body_bytes: usize) -> Self {
        let problem = Problem::unavailable(
            "the service is handling as many requests as it can; \
             send this one again after Retry-After seconds",
        )
        .with("max_in_flight", max_in_flight);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        Self {
            shared: Arc::new(Shared {
                permits: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
                limit: max_in_flight,
                wait,
                drain_limit: max_body_bytes,
                body: Bytes::from(body),
                started: Instant::now(),
                warned_at: AtomicU64::new(0),
                unwarned: AtomicU64::new(0),
            }),
        }
    }

    /// The limit (0: none).
    pub fn max_in_flight(&self) -> usize {
        self.shared.limit
    }

    /// Requests being handled now (probes and metrics aside).
    pub fn in_flight(&self) -> usize {
        match &self.shared.permits {
            Some(p) => self.shared.limit - p.available_permits(),
            None => 0,
        }
    }
}

impl Shared {
    /// The 503 for `req`, counted, its body read first when it is small
    /// and arrives promptly.
    async fn refuse(self: Arc<Self>, mut req: ServiceRequest) -> ServiceResponse {
        let started = Instant::now();
        let length = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if length > 0 && length <= self.drain_limit {
            let mut payload = req.take_payload();
            let _ = tokio::time::timeout(DRAIN_WAIT, async {
                let mut read = 0;
                while let Some(Ok(chunk)) = payload.next().await {
                    read += chunk.len();
                    if read >= length {
                        break;
                    }
                }
            })
            .await;
        }
        self.count(&req, started.elapsed());
        let resp = HttpResponse::ServiceUnavailable()
            .insert_header((CONTENT_TYPE, "application/problem+json"))
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((RETRY_AFTER, RETRY_AFTER_SECONDS))
            .body(self.body.clone());
        req.into_response(resp)
    }

    fn count(&self, req: &ServiceRequest, elapsed: Duration) {
        let metrics = crate::metrics::global();
        let route = req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let method = crate::telemetry::method_label(req.method().as_str());
        metrics.observe_request(method, &route, 503, elapsed);
        metrics.count(
            "http_requests_refused_total",
            "requests answered 503 at once because MAX_IN_FLIGHT requests were being handled",
            "",
            1,
        );
        // One warning a second at most: a flood must not become a flood of
        // log lines too.
        let unwarned = self.unwarned.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        if now > last
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.unwarned.fetch_sub(unwarned, Ordering::Relaxed);
            tracing::warn!(
                refused = unwarned,
                max_in_flight = self.limit,
                "at capacity: requests refused with 503 since the last warning"
            );
        }
    }
}

fn exempt(path: &str) -> bool {
    EXEMPT_PATHS.contains(&path)
}

impl<S, B> Transform<S, ServiceRequest> for Admission
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = AdmissionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AdmissionService {
            service: Rc::new(service),
            shared: Arc::clone(&self.shared),
        }))
    }
}

pub struct AdmissionService<S> {
    service: Rc<S>,
    shared: Arc<Shared>,
}

impl<S, B> AdmissionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    /// Serves `req`, holding `permit` (if any) until the response is made.
    fn admit(
        &self,
        req: ServiceRequest,
        permit: Option<OwnedSemaphorePermit>,
    ) -> LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, Error>> {
        let fut = self.service.call(req);
        Box::pin(async move {
            let resp = fut.await;
            drop(permit);
            resp.map(ServiceResponse::map_into_left_body)
        })
    }
}

impl<S, B> Service<ServiceRequest> for AdmissionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some(permits) = &self.shared.permits else {
            return self.admit(req, None);
        };
        if exempt(req.path()) {
            return self.admit(req, None);
        }
        match Arc::clone(permits).try_acquire_owned() {
            Ok(permit) => self.admit(req, Some(permit)),
            Err(TryAcquireError::NoPermits) if !self.shared.wait.is_zero() => {
                let (permits, shared) = (Arc::clone(permits), Arc::clone(&self.shared));
                let service = Rc::clone(&self.service);
                Box::pin(async move {
                    match tokio::time::timeout(shared.wait, permits.acquire_owned()).await {
                        Ok(Ok(permit)) => {
                            let resp = service.call(req).await;
                            drop(permit);
                            resp.map(ServiceResponse::map_into_left_body)
                        }
                        _ => Ok(shared.refuse(req).await.map_into_right_body()),
                    }
                })
            }
            Err(_) => {
                let shared = Arc::clone(&self.shared);
                Box::pin(async move { Ok(shared.refuse(req).await.map_into_right_body()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as web_test, web, App};
    use tokio::sync::Notify;

    /// An app whose `POST /slow` holds its slot until `release` is
    /// notified.
    macro_rules! app {
        ($max:expr, $wait:expr, $release:expr) => {{
            let release: Arc<Notify> = $release.clone();
            Rc::new(
                web_test::init_service(
                    App::new()
                        .wrap(Admission::new($max, $wait, 1024))
                        .route(
                            "/slow",
                            web::post().to(move |_body: web::Bytes| {
                                let release = release.clone();
                                async move {
                                    release.notified().await;
                                    HttpResponse::Ok().body("done")
                                }
                            }),
                        )
                        .route("/healthz", web::get().to(HttpResponse::Ok)),
                )
                .await,
            )
        }};
    }

    macro_rules! spawn_slow {
        ($app:expr) => {{
            let app = Rc::clone(&$app);
            actix_web::rt::spawn(async move {
                let req = web_test::TestRequest::post().uri("/slow").to_request();
                web_test::call_service(&*app, req).await.status()
            })
        }};
    }

    #[actix_web::test]
    async fn beyond_the_limit_a_request_is_refused_with_retry_after_and_probes_pass() {
        let release = Arc::new(Notify::new());
        let app = app!(1, Duration::ZERO, release);
        let first = spawn_slow!(app);
        // Let the first one take the only slot.
        tokio::time::sleep(Duration::from_millis(20)).await;

        let req = web_test::TestRequest::post()
            .uri("/slow")
            .set_payload("a small body")
            .to_request();
        let refused = web_test::call_service(&*app, req).await;
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers().get(RETRY_AFTER).unwrap(), "1");
        assert_eq!(
            refused.headers().get(CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        let body: serde_json::Value = web_test::read_body_json(refused).await;
        assert_eq!(body["status"], 503);
        assert_eq!(body["max_in_flight"], 1);

        let probe = web_test::TestRequest::get().uri("/healthz").to_request();
        assert_eq!(web_test::call_service(&*app, probe).await.status(), 200);

        release.notify_one();
        assert_eq!(first.await.unwrap(), 200);
        // The slot is free again.
        let again = spawn_slow!(app);
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.notify_one();
        assert_eq!(again.await.unwrap(), 200);
    }

    #[actix_web::test]
    async fn a_request_waits_for_a_slot_that_frees_within_the_wait() {
        let release = Arc::new(Notify::new());
        let app = app!(1, Duration::from_secs(10), release);
        let first = spawn_slow!(app);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = spawn_slow!(app);
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.notify_one();
        assert_eq!(first.await.unwrap(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.notify_one();
        assert_eq!(second.await.unwrap(), 200);
    }

    #[actix_web::test]
    async fn no_limit_admits_everything() {
        let release = Arc::new(Notify::new());
        let app = app!(0, Duration::ZERO, release);
        let running: Vec<_> = (0..5).map(|_| spawn_slow!(app)).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..5 {
            release.notify_one();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for r in running {
            assert_eq!(r.await.unwrap(), 200);
        }
    }

    #[test]
    fn the_default_leaves_room_for_every_worker_and_connection() {
        assert_eq!(default_max_in_flight(2, 16), 72);
        assert!(default_max_in_flight(0, 0) >= 1);
    }
}
