//! What every service serves besides its own API, and how it is wired:
//! `GET /healthz`, `GET /readyz` (database and broker), `GET /metrics`,
//! `GET /openapi.json`, problem+json for bad bodies and unknown routes, and
//! a 400 for control characters in a path, query or body ([`crate::input`]).

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{
    dev::Server, http::StatusCode, middleware::from_fn, web, App, HttpResponse, HttpServer,
};
use diesel::{sql_query, RunQueryDsl};
use rdkafka::producer::{FutureProducer, Producer};
use serde_json::json;

use crate::{config::CommonConfig, db::PgPool, problem::extractors};

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
/// service's [`ReadyCheck`], if it has one, passes), else 503.
async fn readyz(probe: web::Data<Probe>, extra: Option<web::Data<ReadyCheck>>) -> HttpResponse {
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

/// Binds `host:port` (port 0 picks a free one) and returns the listener
/// with the port it got.
pub fn bind(host: &str, port: u16) -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((host, port))
        .map_err(|e| anyhow::anyhow!("binding {host}:{port}: {e}"))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Binds `common`'s host and port and starts a service's HTTP server on
/// `workers` threads: its `routes` with `state`, beside the common routes
/// ([`configure`]; `/readyz` checks `pool` and the broker), each request in
/// a span ([`crate::telemetry::request_span`]), requests holding control
/// characters refused ([`crate::input`]); in-flight requests get 10 s
/// to finish at shutdown. Returns the server (to await) and its port.
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
    let (listener, port) = bind(&common.http_host, common.port)?;
    let max_body = common.max_body_bytes;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(crate::input::RejectControlCharacters::new(max_body))
            .wrap(from_fn(crate::telemetry::request_span))
            .app_data(state.clone())
            .configure(configure_with(
                probe.clone(),
                ready.clone(),
                openapi,
                max_body,
            ))
            .configure(routes)
    })
    .workers(workers)
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok((server, port))
}
