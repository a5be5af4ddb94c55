//! What every service serves besides its own API, and how it is wired:
//! `GET /healthz`, `GET /readyz` (database and broker), `GET /metrics`,
//! `GET /openapi.json`, problem+json for bad bodies and unknown routes, and
//! a 400 for control characters in a path, query or body ([`crate::input`]).
//!
//! Stopping ([`serve`]): on SIGTERM a service first drains for
//! `SHUTDOWN_DRAIN_SECONDS` (default 5): it keeps serving, but `/readyz`
//! answers 503 and every response closes its connection, so that a load
//! balancer takes it out of rotation and clients' pooled connections move
//! elsewhere; then it stops accepting, gives in-flight requests
//! [`SHUTDOWN_TIMEOUT_SECONDS`] to finish, and exits. SIGINT (Ctrl-C), or a
//! second signal while draining, skips the rest of the drain.
//!
//! Closing a listener resets the connections the kernel has completed but
//! the server not yet accepted: their clients, which sent a request, see it
//! broken off. So before the stop the listener's door is closed first
//! ([`close_doors_at_stop`]): the kernel ignores new connection attempts
//! (the client tries again a second later, and finds the port refused once
//! the listener is gone), the server accepts and answers what had queued,
//! and only then is the listener closed, with nothing left in its queue.
//! A container runtime's default security profile may refuse the filter
//! (EPERM, seen under Docker's defaults): the stop then goes on without
//! it, warns, and a connection queued at that moment may be reset. Behind
//! a load balancer the drain has taken the replica out of rotation by
//! then, so no new connection should arrive.
//!
//! Every queue in front of a handler is bounded: connections
//! (`HTTP_MAX_CONNECTIONS`, then the listen backlog `HTTP_BACKLOG`), the
//! time a client may take to send its request head
//! ([`CLIENT_REQUEST_TIMEOUT`]), the requests handled at once
//! (`MAX_IN_FLIGHT`, [`crate::admission`]; beyond it a fast 503 with
//! `Retry-After`) and the blocking threads each worker may start
//! ([`blocking_threads_per_worker`]).

use std::{
    net::{SocketAddr, TcpListener, ToSocketAddrs},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::{
    body::MessageBody,
    dev::{Server, ServerHandle, ServiceRequest, ServiceResponse},
    http::{ConnectionType, StatusCode},
    middleware::{from_fn, Next},
    web, App, Error, HttpResponse, HttpServer,
};
use diesel::{sql_query, RunQueryDsl};
use rdkafka::producer::{FutureProducer, Producer};
use serde_json::json;

use crate::{admission::Admission, config::CommonConfig, db::PgPool, problem::extractors};

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Probe {
    pub pool: PgPool,
    pub producer: FutureProducer,
}

impl Probe {
    async fn database_ok(&self) -> bool {
        let pool = self.pool.clone();
        crate::db::blocking(move || {
            pool.get_timeout(Duration::from_secs(1))
                .ok()
                .and_then(|mut c| sql_query("SELECT 1").execute(&mut c).ok())
                .is_some()
        })
        .await
        .unwrap_or(false)
    }

    async fn broker_ok(&self) -> bool {
        let producer = self.producer.clone();
        crate::db::blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(1))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

/// A further condition of readiness (say, a set read from a topic up to
/// its end): `/readyz` answers 503 while `check` answers false, and shows
/// it under `checks.<name>`.
#[derive(Clone)]
pub struct ReadyCheck {
    pub name: &'static str,
    pub check: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl ReadyCheck {
    pub fn new(name: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self {
            name,
            check: Arc::new(check),
        }
    }
}

/// `GET /healthz`: the process is alive.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database and the broker answer (and the
/// service's [`ReadyCheck`], if it has one, passes), else 503; 503 with
/// the status `draining` once the process is stopping ([`serve`]).
async fn readyz(probe: web::Data<Probe>, extra: Option<web::Data<ReadyCheck>>) -> HttpResponse {
    if is_draining() {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "draining"}));
    }
    let (db, broker) = tokio::join!(probe.database_ok(), probe.broker_ok());
    let more = extra.as_ref().map(|e| (e.name, (e.check)()));
    let all = db && broker && more.is_none_or(|(_, ok)| ok);
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut checks = json!({"database": word(db), "broker": word(broker)});
    if let Some((name, ok)) = more {
        checks[name] = json!(word(ok));
    }
    HttpResponse::build(status).json(json!({
        "status": word(all),
        "checks": checks,
    }))
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::global().render())
}

/// Registers the common routes and extractor settings; a service calls it
/// with `App::configure` beside its own routes.
pub fn configure(
    probe: Probe,
    openapi: &'static str,
    max_body_bytes: usize,
) -> impl FnOnce(&mut web::ServiceConfig) {
    configure_with(probe, None, openapi, max_body_bytes)
}

/// [`configure`], with a further condition of readiness.
pub fn configure_with(
    probe: Probe,
    ready: Option<ReadyCheck>,
    openapi: &'static str,
    max_body_bytes: usize,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        if let Some(r) = ready {
            cfg.app_data(web::Data::new(r));
        }
        cfg.app_data(web::Data::new(probe))
            .app_data(extractors::json_config(max_body_bytes))
            .app_data(extractors::query_config())
            .app_data(extractors::path_config())
            .app_data(extractors::form_config())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route(
                "/openapi.json",
                web::get().to(move || async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(openapi)
                }),
            )
            .default_service(web::to(extractors::not_found));
    }
}

/// 200 with a JSON body serialised before (a cached answer, say).
pub fn json_bytes(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

/// The listen backlog of [`bind`].
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Longest a client may take to send a request head on a new connection
/// before it is answered 408 and dropped (actix's default, made explicit).
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest an idle kept-alive connection is kept open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Longest a closing connection is given to read the last response.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Seconds in-flight requests get to finish at shutdown.
pub const SHUTDOWN_TIMEOUT_SECONDS: u64 = 10;

/// Set when the process received SIGTERM and drains before it stops. One
/// process serves one service; tests that run several in one process never
/// signal them.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Whether the process is draining before it stops ([`serve`]).
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Middleware: while the process drains, every response closes its
/// connection, so that a client's next request opens a new one, which the
/// load balancer sends to another replica.
pub async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    if is_draining() {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

/// Runs `server` (built with [`with_limits!`], which leaves the signals to
/// this) until it stops: on SIGTERM it drains for `drain`, then stops
/// gracefully; on SIGINT it stops at once, gracefully too. See the module's
/// documentation.
pub async fn serve(server: Server, drain: Duration) -> std::io::Result<()> {
    let watcher = tokio::spawn(stop_on_signal(server.handle(), drain));
    let result = server.await;
    watcher.abort();
    DOORS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    result
}

async fn stop_on_signal(handle: ServerHandle, drain: Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %crate::problem::chain(&e), "cannot listen for stop signals; stop with SIGKILL");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {
            DRAINING.store(true, Ordering::Relaxed);
            tracing::info!(
                drain_seconds = drain.as_secs_f64(),
                "SIGTERM: not ready any more; draining, then stopping"
            );
            tokio::select! {
                _ = tokio::time::sleep(drain) => {}
                _ = term.recv() => tracing::info!("a second SIGTERM: stopping now"),
                _ = int.recv() => tracing::info!("SIGINT: stopping now"),
            }
        }
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    close_doors().await;
    tracing::info!("no longer accepting connections; finishing the requests in flight");
    handle.stop(true).await;
}

/// Copies of the listeners this process serves on, for [`close_doors`].
static DOORS: std::sync::Mutex<Vec<socket2::Socket>> = std::sync::Mutex::new(Vec::new());

/// How long the server is given to accept the connections that queued
/// before the door closed: it accepts as they come, so a moment is plenty.
const QUEUED_CONNECTIONS_GRACE: Duration = Duration::from_millis(100);

/// Has [`serve`] close `listener`'s door before the server closes the
/// listener at the stop, so that no connection waiting in its queue is
/// reset (see the module's documentation). [`bind_common`] does this for
/// the listener it binds; a test that serves on a [`BoundListener`] never
/// signals its process, and leaves it out.
pub fn close_doors_at_stop(listener: &TcpListener) -> std::io::Result<()> {
    let copy = socket2::Socket::from(listener.try_clone()?);
    DOORS.lock().unwrap_or_else(|e| e.into_inner()).push(copy);
    Ok(())
}

/// Closes the doors of the listeners given to [`close_doors_at_stop`]: a
/// socket filter makes the kernel ignore new connection attempts on them
/// (their first packet, a SYN); then it waits [`QUEUED_CONNECTIONS_GRACE`]
/// for the server to accept what had queued, and the handshakes already
/// under way.
async fn close_doors() {
    let doors = std::mem::take(&mut *DOORS.lock().unwrap_or_else(|e| e.into_inner()));
    if doors.is_empty() {
        return;
    }
    for door in &doors {
        if let Err(e) = drop_new_connections(door) {
            tracing::warn!(error = %e, "cannot close the listener's door; connections queued at the stop may be reset");
        }
    }
    tokio::time::sleep(QUEUED_CONNECTIONS_GRACE).await;
}

/// Attaches a classic BPF program that drops every TCP segment with SYN set
/// and ACK clear (a new connection attempt) and keeps the rest, so that a
/// handshake under way completes. A connection the listener completes
/// afterwards inherits the filter, which does it no harm: it is never sent
/// such a segment. The program reads the TCP header, where a TCP socket's
/// filter starts.
#[cfg(target_os = "linux")]
fn drop_new_connections(socket: &socket2::Socket) -> std::io::Result<()> {
    use socket2::SockFilter;
    const LOAD_BYTE: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const JUMP_IF_EQUAL: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    const FLAGS_OFFSET: u32 = 13;
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    socket.attach_filter(&[
        SockFilter::new(LOAD_BYTE, 0, 0, FLAGS_OFFSET),
        SockFilter::new(AND, 0, 0, SYN | ACK),
        // SYN without ACK: on to the next instruction, else skip it.
        SockFilter::new(JUMP_IF_EQUAL, 0, 1, SYN),
        SockFilter::new(RETURN, 0, 0, 0),
        SockFilter::new(RETURN, 0, 0, u32::MAX),
    ])
}

#[cfg(not(target_os = "linux"))]
fn drop_new_connections(_: &socket2::Socket) -> std::io::Result<()> {
    Err(std::io::Error::other("socket filters are Linux's"))
}

/// Binds `host:port` (port 0 picks a free one) with a listen backlog of
/// [`DEFAULT_BACKLOG`] and returns the listener with the port it got.
pub fn bind(host: &str, port: u16) -> anyhow::Result<(TcpListener, u16)> {
    bind_with_backlog(host, port, DEFAULT_BACKLOG)
}

/// `common`'s pre-bound listener when it has one (see
/// [`BoundListener`]), else its host and port bound with its
/// `HTTP_BACKLOG`.
pub fn bind_common(common: &CommonConfig) -> anyhow::Result<(TcpListener, u16)> {
    if let Some(listener) = common.listener.as_ref().and_then(BoundListener::take) {
        let port = listener.local_addr()?.port();
        return Ok((listener, port));
    }
    let (listener, port) = bind_with_backlog(&common.http_host, common.port, common.http_backlog)?;
    close_doors_at_stop(&listener)?;
    Ok((listener, port))
}

/// A listener bound ahead of the service that serves on it: its port is
/// known (and held) before the service starts. The first
/// [`bind_common`] takes it; a setting that carries it can be cloned.
#[derive(Clone)]
pub struct BoundListener(std::sync::Arc<std::sync::Mutex<Option<TcpListener>>>);

impl BoundListener {
    /// Binds `127.0.0.1` on a free port with the default backlog.
    pub fn loopback() -> anyhow::Result<Self> {
        Ok(Self::from(bind("127.0.0.1", 0)?.0))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port())
    }

    fn take(&self) -> Option<TcpListener> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl From<TcpListener> for BoundListener {
    fn from(listener: TcpListener) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(listener))))
    }
}

impl std::fmt::Debug for BoundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoundListener(port {})", self.port())
    }
}

/// [`bind`] with a given listen backlog (the kernel caps it at somaxconn).
pub fn bind_with_backlog(
    host: &str,
    port: u16,
    backlog: u32,
) -> anyhow::Result<(TcpListener, u16)> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("resolving {host}:{port}: {e}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match listen_on(addr, backlog) {
            Ok(listener) => {
                let port = listener.local_addr()?.port();
                return Ok((listener, port));
            }
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
    Err(anyhow::anyhow!("binding {host}:{port}: {why}"))
}

fn listen_on(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std's TcpListener::bind does: a restarted service may bind again
    // while the old one's connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Blocking threads each HTTP worker may start (tokio's default is 512
/// divided among the workers). A handler's database work runs there
/// ([`crate::db::with_conn`]); requests are at most `max_in_flight`
/// ([`crate::admission`]), so more threads would never be used by them,
/// and the few beyond are for what bypasses admission (`/readyz`).
/// tokio's queue of blocking work is unbounded, but only admitted
/// requests and the probes feed it, so it holds at most that many.
pub fn blocking_threads_per_worker(max_in_flight: usize) -> usize {
    const PROBES: usize = 8;
    const TOKIO_DEFAULT: usize = 512;
    if max_in_flight == 0 {
        TOKIO_DEFAULT
    } else {
        (max_in_flight + PROBES).min(TOKIO_DEFAULT)
    }
}

/// The admission middleware of a server with `workers` HTTP workers
/// (`MAX_IN_FLIGHT`, `ADMISSION_WAIT_MS`); wrap it outermost.
pub fn admission(common: &CommonConfig, workers: usize) -> Admission {
    let max = common.max_in_flight_for(workers);
    crate::metrics::global().gauge(
        "http_max_in_flight",
        "requests a replica handles at once (MAX_IN_FLIGHT; 0: no limit)",
        max as f64,
    );
    Admission::new(max, common.admission_wait, common.max_body_bytes)
}

/// The limits of a service's HTTP server (see [`with_limits!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub workers: usize,
    /// `HTTP_MAX_CONNECTIONS` shared among the workers.
    pub max_connections_per_worker: usize,
    pub backlog: u32,
    pub blocking_threads_per_worker: usize,
}

impl Limits {
    pub fn new(common: &CommonConfig, workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            workers,
            max_connections_per_worker: common.http_max_connections.div_ceil(workers),
            backlog: common.http_backlog,
            blocking_threads_per_worker: blocking_threads_per_worker(
                common.max_in_flight_for(workers),
            ),
        }
    }
}

/// Applies the platform's limits to a service's `HttpServer` (before
/// `listen`): `workers` workers, `HTTP_MAX_CONNECTIONS` shared among them,
/// the timeouts of [`crate::server`] and the blocking threads for
/// `MAX_IN_FLIGHT` ([`Limits`]); signals are left to [`serve`]. A macro, as `HttpServer`'s type bounds
/// name crates the platform does not depend on.
/// `platform::with_limits!(HttpServer::new(...), &common, workers)`.
#[macro_export]
macro_rules! with_limits {
    ($server:expr, $common:expr, $workers:expr) => {{
        let limits = $crate::server::Limits::new($common, $workers);
        $server
            .workers(limits.workers)
            .max_connections(limits.max_connections_per_worker)
            .backlog(limits.backlog)
            .client_request_timeout($crate::server::CLIENT_REQUEST_TIMEOUT)
            .keep_alive($crate::server::KEEP_ALIVE)
            .client_disconnect_timeout($crate::server::CLIENT_DISCONNECT_TIMEOUT)
            .worker_max_blocking_threads(limits.blocking_threads_per_worker)
            .shutdown_timeout($crate::server::SHUTDOWN_TIMEOUT_SECONDS)
            .disable_signals()
    }};
}

/// Binds `common`'s host and port and starts a service's HTTP server on
/// `workers` threads: its `routes` with `state`, beside the common routes
/// ([`configure`]; `/readyz` checks `pool` and the broker), at most
/// `MAX_IN_FLIGHT` requests at once ([`crate::admission`]), each request in
/// a span ([`crate::telemetry::request_span`]), requests holding control
/// characters refused ([`crate::input`]), the limits of [`with_limits!`];
/// in-flight requests get 10 s to finish at shutdown. Returns the server
/// (to run with [`serve`]) and its port.
pub fn start<S: Send + Sync + 'static>(
    common: &CommonConfig,
    workers: usize,
    state: web::Data<S>,
    pool: PgPool,
    openapi: &'static str,
    routes: fn(&mut web::ServiceConfig),
) -> anyhow::Result<(Server, u16)> {
    start_with(common, workers, state, pool, openapi, routes, None)
}

/// [`start`], with a further condition of readiness (`/readyz` answers
/// 503 while `ready` fails).
pub fn start_with<S: Send + Sync + 'static>(
    common: &CommonConfig,
    workers: usize,
    state: web::Data<S>,
    pool: PgPool,
    openapi: &'static str,
    routes: fn(&mut web::ServiceConfig),
    ready: Option<ReadyCheck>,
) -> anyhow::Result<(Server, u16)> {
    let probe = Probe {
        pool,
        producer: crate::events::producer(&common.kafka_brokers)?,
    };
    let (listener, port) = bind_common(common)?;
    let max_body = common.max_body_bytes;
    let admission = admission(common, workers);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(crate::input::RejectControlCharacters::new(max_body))
            .wrap(from_fn(crate::telemetry::request_span))
            .wrap(from_fn(close_when_draining))
            .wrap(admission.clone())
            .app_data(state.clone())
            .configure(configure_with(
                probe.clone(),
                ready.clone(),
                openapi,
                max_body,
            ))
            .configure(routes)
    });
    let server = crate::with_limits!(server, common, workers)
        .listen(listener)?
        .run();
    Ok((server, port))
}
