//! Wiring only: build the state, bind, run the server, the outbox relay,
//! the `iam.user.v1` consumer and the reload of the rules' suspensions.
//! Production and tests run this same code; tests bind port 0.

use std::sync::Arc;

use actix_web::{
    dev::{Server, ServerHandle},
    middleware::from_fn,
    web, App, HttpServer,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig, OutboxSignal, RelayConfig},
    jwt::{KeySource, RemoteJwks, Verifier, SESSION_TYP},
    server::{self, Probe},
    telemetry,
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    cache::{self, CheckCache},
    config::Settings,
    consumer,
    domain::Rule,
    error::ApiError,
    routes,
    state::{AppState, Suspensions},
    store,
    tripwire::{self, TripwireChecks},
};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/access-rule");
pub const OPENAPI: &str = include_str!("../openapi.json");

pub struct Application {
    port: u16,
    server: Server,
    background: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// Builds the shared state: migrates (and changes no data), loads the
/// rules' suspensions.
pub async fn build_state(settings: Settings) -> anyhow::Result<web::Data<AppState>> {
    let url = settings.common.database_url.clone();
    db::blocking(move || db::migrate(&url, MIGRATIONS)).await??;
    let pool = db::build_pool(
        &settings.common.database_url,
        settings.common.database_pool_size,
    )?;
    let sessions = Verifier::new(
        KeySource::Remote(Arc::new(RemoteJwks::new(
            settings.jwks_url(),
            reqwest::Client::new(),
        ))),
        settings.auth_issuer.clone(),
        SESSION_TYP,
    );
    let state = web::Data::new(AppState {
        pool,
        sessions,
        suspensions: Suspensions::default(),
        cache: Arc::new(CheckCache::new(settings.check_cache_entries)),
        tripwire: TripwireChecks::default(),
        outbox: OutboxSignal::default(),
        settings,
    });
    reload_suspensions(&state).await?;
    Ok(state)
}

async fn reload_suspensions(state: &AppState) -> Result<(), ApiError> {
    let rows = db::with_conn(&state.pool, |c| store::all_rules(c).map_err(ApiError::from)).await?;
    for r in &rows {
        state.suspensions.update(r);
    }
    Ok(())
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("access-rule");
        let state = build_state(settings).await?;
        let s = &state.settings;
        let probe = Probe {
            pool: state.pool.clone(),
            producer: events::producer(&s.common.kafka_brokers)?,
        };
        let (listener, port) = server::bind(&s.common.http_host, s.common.port)?;
        let max_body = s.common.max_body_bytes;
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(telemetry::request_span))
                .app_data(app_state.clone())
                .configure(server::configure(probe.clone(), OPENAPI, max_body))
                .configure(routes::configure)
        })
        .workers(s.http_workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        let (shutdown, rx) = watch::channel(false);
        let relay = tokio::spawn(events::run_relay(
            RelayConfig {
                brokers: s.common.kafka_brokers.clone(),
                database_url: s.common.database_url.clone(),
                topics: vec![topics::RESTRICTION],
                partitions: s.common.kafka_topic_partitions,
                replication: s.common.kafka_topic_replication,
                poll: s.outbox_poll,
                batch: 500,
            },
            state.outbox.clone(),
            rx.clone(),
        ));
        let consumer = tokio::spawn({
            let cfg = ConsumerConfig {
                brokers: s.common.kafka_brokers.clone(),
                group_id: s.consumer_group.clone(),
                topics: vec![topics::USER.to_owned()],
                partitions: s.common.kafka_topic_partitions,
                replication: s.common.kafka_topic_replication,
            };
            let pool = state.pool.clone();
            let rules = s.rules;
            let signal = state.outbox.clone();
            let cache = state.cache.clone();
            let rx = rx.clone();
            async move {
                let apply: events::ApplyFn = Arc::new(move |c, _topic, e| {
                    if let Some(user) = consumer::apply(c, e, &rules)? {
                        cache.invalidate(&user);
                        signal.nudge();
                    }
                    Ok(())
                });
                if let Err(e) = events::run_consumer(cfg, pool, apply, rx).await {
                    tracing::error!(error = format!("{e:#}"), "the iam.user.v1 consumer stopped");
                }
            }
        });
        let refresher = tokio::spawn({
            let state = state.clone();
            let mut rx = rx;
            async move {
                let mut tick = tokio::time::interval(state.settings.rules_refresh);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx.changed() => break,
                    }
                    if let Err(e) = reload_suspensions(&state).await {
                        tracing::warn!(error = %e, "reloading the rules' suspensions failed");
                    }
                    // A safety net: a check missed by a crash right after a
                    // restricting commit runs here.
                    for rule in Rule::ALL {
                        if let Err(e) = tripwire::check(&state, rule).await {
                            tracing::warn!(rule = %rule, error = %e, "tripwire check failed");
                        }
                    }
                }
            }
        });
        let listener = tokio::spawn(cache::run_listener(
            state.cache.clone(),
            s.common.database_url.clone(),
            shutdown.subscribe(),
        ));
        tracing::info!(port, "access-rule listening");
        Ok(Self {
            port,
            server,
            background: vec![relay, consumer, refresher, listener],
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (tests use it to restart the service).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (actix drains in-flight requests), then
    /// stops the relay, the consumer and the reload.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        for h in self.background {
            let _ = h.await;
        }
        Ok(result?)
    }
}
