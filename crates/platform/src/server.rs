//! What every service serves besides its own API, and how it is wired:
//! `GET /healthz`, `GET /readyz` (database and broker), `GET /metrics`,
//! `GET /openapi.json`, problem+json for bad bodies and unknown routes.

use std::{net::TcpListener, time::Duration};

use actix_web::{http::StatusCode, web, HttpResponse};
use diesel::{sql_query, RunQueryDsl};
use rdkafka::producer::{FutureProducer, Producer};
use serde_json::json;

use crate::{db::PgPool, problem::extractors};

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

/// Binds `host:port` (port 0 picks a free one) and returns the listener
/// with the port it got.
pub fn bind(host: &str, port: u16) -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((host, port))
        .map_err(|e| anyhow::anyhow!("binding {host}:{port}: {e}"))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}
