//! What every service serves besides its own API, and how it is wired:
//! `GET /healthz`, `GET /readyz` (database and broker), `GET /metrics`,
//! `GET /openapi.json`, problem+json for bad bodies and unknown routes, and
//! a 400 for control characters in a path, query or body ([`crate::input`]).

use std::{net::TcpListener, time::Duration};

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

/// `GET /healthz`: the process is alive.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database and the broker answer, else 503.
async fn readyz(probe: web::Data<Probe>) -> HttpResponse {
    let (db, broker) = tokio::join!(probe.database_ok(), probe.broker_ok());
    let status = if db && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    HttpResponse::build(status).json(json!({
        "status": word(db && broker),
        "checks": {"database": word(db), "broker": word(broker)},
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
    move |cfg| {
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
            .configure(configure(probe.clone(), openapi, max_body))
            .configure(routes)
    })
    .workers(workers)
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok((server, port))
}
