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
//! A small body (a `Content-Length` up to the service's body limit) is
//! read before the request takes a slot, within [`BODY_WAIT`] (else 408):
//! a client sending its body slowly must not hold a slot meanwhile, or a
//! few such clients would have every other request refused. It also lets a
//! refused request's connection stay open (actix closes one whose body
//! was left unread).
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
    dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform},
    http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER},
    web::{Bytes, BytesMut},
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

/// Longest a client may take to send a small body once its head has
/// arrived (as long as it may take for the head); then 408.
pub const BODY_WAIT: Duration = Duration::from_secs(5);

/// The `MAX_IN_FLIGHT` of a service that does not set it: room for every
/// HTTP worker and every pooled connection to be busy, sixteen times
/// over, so that a burst (a hundred parallel requests from one client)
/// queues for the pool (bounded by `DATABASE_CHECKOUT_WAIT_MS`) or the
/// other bounded queues rather than being refused, while a flood is
/// refused before it queues for seconds. 288 with 2 workers and 16
/// connections.
pub fn default_max_in_flight(workers: usize, pool_size: u32) -> usize {
    16 * (workers.max(1) + pool_size as usize)
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
    /// The largest body read before a slot is taken (the body limit).
    small_body: usize,
    body: Bytes,
    started: Instant,
    /// Seconds since `started` of the last warning, and refusals since.
    warned_at: AtomicU64,
    unwarned: AtomicU64,
}

impl Admission {
    /// At most `max_in_flight` requests at once (0: no limit), a further
    /// one waiting up to `wait` for a slot. `max_body_bytes`: the service's
    /// body limit (a body up to that size is read before a slot is taken).
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
                small_body: max_body_bytes,
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
    /// The 503 for `req`, counted.
    fn refuse(&self, req: ServiceRequest, started: Instant) -> ServiceResponse {
        self.count(&req, started.elapsed());
        let resp = HttpResponse::ServiceUnavailable()
            .insert_header((CONTENT_TYPE, "application/problem+json"))
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((RETRY_AFTER, RETRY_AFTER_SECONDS))
            .body(self.body.clone());
        req.into_response(resp)
    }

    /// The length of `req`'s body when it is small enough to read before a
    /// slot is taken.
    fn small_body(&self, req: &ServiceRequest) -> Option<usize> {
        let length = req
            .headers()
            .get(CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse::<usize>()
            .ok()?;
        (length > 0 && length <= self.small_body).then_some(length)
    }

    /// Counts an answer made here (the request span never sees it).
    fn observe(req: &ServiceRequest, status: u16, elapsed: Duration) {
        let route = req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let method = crate::telemetry::method_label(req.method().as_str());
        crate::metrics::global().observe_request(method, &route, status, elapsed);
    }

    fn count(&self, req: &ServiceRequest, elapsed: Duration) {
        let metrics = crate::metrics::global();
        Self::observe(req, 503, elapsed);
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

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let Some(permits) = &self.shared.permits else {
            return self.admit(req, None);
        };
        if exempt(req.path()) {
            return self.admit(req, None);
        }
        let started = Instant::now();
        if let Some(length) = self.shared.small_body(&req) {
            let (permits, shared) = (Arc::clone(permits), Arc::clone(&self.shared));
            let service = Rc::clone(&self.service);
            return Box::pin(async move {
                if let Err(problem) = read_body(&mut req, length).await {
                    Shared::observe(&req, problem.status, started.elapsed());
                    return Ok(req.error_response(problem).map_into_right_body());
                }
                let permit = match Arc::clone(&permits).try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => wait_for(&permits, shared.wait).await,
                };
                match permit {
                    Some(permit) => {
                        let resp = service.call(req).await;
                        drop(permit);
                        resp.map(ServiceResponse::map_into_left_body)
                    }
                    None => Ok(shared.refuse(req, started).map_into_right_body()),
                }
            });
        }
        match Arc::clone(permits).try_acquire_owned() {
            Ok(permit) => self.admit(req, Some(permit)),
            Err(TryAcquireError::NoPermits) if !self.shared.wait.is_zero() => {
                let (permits, shared) = (Arc::clone(permits), Arc::clone(&self.shared));
                let service = Rc::clone(&self.service);
                Box::pin(async move {
                    match wait_for(&permits, shared.wait).await {
                        Some(permit) => {
                            let resp = service.call(req).await;
                            drop(permit);
                            resp.map(ServiceResponse::map_into_left_body)
                        }
                        None => Ok(shared.refuse(req, started).map_into_right_body()),
                    }
                })
            }
            Err(_) => {
                let resp = self.shared.refuse(req, started).map_into_right_body();
                Box::pin(ready(Ok(resp)))
            }
        }
    }
}

/// A slot, if one frees within `wait`.
async fn wait_for(permits: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if wait.is_zero() {
        return None;
    }
    match tokio::time::timeout(wait, Arc::clone(permits).acquire_owned()).await {
        Ok(Ok(permit)) => Some(permit),
        _ => None,
    }
}

/// Reads `req`'s body of `length` bytes (its `Content-Length`) and puts it
/// back, whole, for the handler.
async fn read_body(req: &mut ServiceRequest, length: usize) -> Result<(), Problem> {
    let mut payload = req.take_payload();
    let mut body = BytesMut::with_capacity(length);
    let read = tokio::time::timeout(BODY_WAIT, async {
        while let Some(chunk) = payload.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() >= length {
                break;
            }
        }
        Ok::<_, actix_web::error::PayloadError>(())
    })
    .await;
    match read {
        Ok(Ok(())) => {
            req.set_payload(Payload::from(body.freeze()));
            Ok(())
        }
        Ok(Err(e)) => Err(Problem::bad_request(format!(
            "the request body could not be read: {e}"
        ))),
        Err(_) => Err(Problem::new(
            actix_web::http::StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
        )
        .with_detail(format!(
            "the body did not arrive within {} s of the request head",
            BODY_WAIT.as_secs()
        ))),
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

    /// Sends `head` (and `body`) on a new connection to `port`; answers the
    /// connection.
    async fn send(port: u16, text: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(text.as_bytes()).await.unwrap();
        c
    }

    /// The status of the next response on `c`.
    async fn status_of(c: &mut tokio::net::TcpStream) -> u16 {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
    }

    #[actix_web::test]
    async fn a_slow_body_does_not_hold_a_slot_while_it_arrives() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(|| {
            App::new()
                .wrap(Admission::new(1, Duration::ZERO, 1024))
                .route(
                    "/echo",
                    web::post().to(|body: web::Bytes| async move { HttpResponse::Ok().body(body) }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);

        // Half a body, then nothing for a while.
        let mut slow = send(
            port,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The only slot is free for another client.
        let mut fast = send(
            port,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok",
        )
        .await;
        assert_eq!(status_of(&mut fast).await, 200);
        // And the slow one is served once its body is complete.
        use tokio::io::AsyncWriteExt;
        slow.write_all(b"-body!").await.unwrap();
        assert_eq!(status_of(&mut slow).await, 200);
        handle.stop(false).await;
    }

    #[test]
    fn the_default_leaves_room_for_every_worker_and_connection() {
        assert_eq!(default_max_in_flight(2, 16), 288);
        assert!(default_max_in_flight(0, 0) >= 1);
    }
}
