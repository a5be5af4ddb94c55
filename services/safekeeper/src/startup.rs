//! Wiring only: state, server, outbox relay, `iam.user.v1` consumer.

use std::sync::Arc;

use actix_web::{dev::Server, middleware::from_fn, web, App, HttpServer};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig, OutboxSignal, RelayConfig},
    jwt::{KeyRing, KeySource, RemoteJwks, Verifier, ACCESS_TYP, SESSION_TYP},
    retention::Pruner,
    server::{self, Probe},
    telemetry,
};
use secrecy::ExposeSecret;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    clients::{self, ClientCache},
    config::Settings,
    consumer, grants, routes,
    state::AppState,
};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/safekeeper");
pub const OPENAPI: &str = include_str!("../openapi.json");

pub struct Application {
    port: u16,
    server: Server,
    /// How long SIGTERM drains before the stop (`SHUTDOWN_DRAIN_SECONDS`).
    drain: std::time::Duration,
    background: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

pub async fn build_state(settings: Settings) -> anyhow::Result<web::Data<AppState>> {
    let pool = db::migrated_pool(&settings.common, MIGRATIONS).await?;
    // Revocations are kept as long as the tokens they cover may live.
    grants::note_access_ttl(settings.access_ttl);
    let keys = Arc::new(KeyRing::load(
        settings.signing_key_pem(),
        settings
            .previous_keys_pem
            .as_ref()
            .map(|s| s.expose_secret()),
        &settings
            .common
            .state_dir
            .join("safekeeper")
            .join("signing-key.pem"),
        settings.require_signing_key,
    )?);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let sessions = Verifier::new(
        KeySource::Remote(Arc::new(RemoteJwks::new(
            format!("{}/.well-known/jwks.json", settings.authenticator_url),
            http.clone(),
        ))),
        settings.authenticator_issuer.clone(),
        SESSION_TYP,
    );
    let access = Verifier::new(
        KeySource::Local(Arc::new(keys.decoding_keys())),
        settings.issuer.clone(),
        ACCESS_TYP,
    )
    .with_audience(settings.audience.clone());
    Ok(web::Data::new(AppState {
        pool,
        keys,
        sessions,
        access,
        http,
        outbox: OutboxSignal::default(),
        clients: Arc::new(ClientCache::new(settings.client_cache_ttl)),
        relay: Default::default(),
        settings,
    }))
}

/// What the safekeeper prunes ([`platform::retention`]): published outbox
/// rows, then expired grants ([`grants::retention_steps`]).
pub fn pruner(state: &AppState) -> Pruner {
    let s = &state.settings;
    Pruner::new(
        state.pool.clone(),
        s.retention.clone(),
        grants::retention_steps(s.access_ttl, s.expired_grant_retention),
    )
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("safekeeper");
        let state = build_state(settings).await?;
        let s = &state.settings;
        let probe = Probe {
            pool: state.pool.clone(),
            producer: events::producer(&s.common.kafka_brokers)?,
        };
        let (listener, port) = server::bind_common(&s.common)?;
        let max_body = s.common.max_body_bytes;
        let app_state = state.clone();
        let admission = server::admission(&s.common, s.http_workers);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(routes::forget_cached_clients))
                .wrap(platform::input::RejectControlCharacters::new(max_body))
                .wrap(from_fn(telemetry::request_span))
                .wrap(from_fn(server::close_when_draining))
                .wrap(admission.clone())
                .app_data(app_state.clone())
                .configure(server::configure(probe.clone(), OPENAPI, max_body))
                .configure(routes::configure)
        });
        let server = platform::with_limits!(server, &s.common, s.http_workers)
            .listen(listener)?
            .run();
        let (shutdown, rx) = watch::channel(false);
        // Stops by itself on shutdown.
        clients::spawn_listener(
            state.clients.clone(),
            s.common.database_url.clone(),
            rx.clone(),
        );
        let relay = tokio::spawn(events::run_relay(
            RelayConfig {
                brokers: s.common.kafka_brokers.clone(),
                database_url: s.common.database_url.clone(),
                topics: vec![topics::USER_ROLE, topics::REVOCATION],
                partitions: s.common.kafka_topic_partitions,
                replication: s.common.kafka_topic_replication,
                poll: s.outbox_poll,
                batch: 500,
                notify: None,
            },
            state.outbox.clone(),
            rx.clone(),
        ));
        let pruner = tokio::spawn(pruner(&state).run(rx.clone()));
        let signal = state.outbox.clone();
        let consumer = tokio::spawn({
            let cfg = ConsumerConfig {
                brokers: s.common.kafka_brokers.clone(),
                group_id: s.consumer_group.clone(),
                topics: vec![topics::USER.to_owned()],
                partitions: s.common.kafka_topic_partitions,
                replication: s.common.kafka_topic_replication,
            };
            let pool = state.pool.clone();
            async move {
                let apply: events::ApplyFn = Arc::new(move |c, t, e| {
                    consumer::apply(c, t, e)?;
                    // A superuser's admin grant may have written an event.
                    signal.nudge();
                    Ok(())
                });
                if let Err(e) = events::run_consumer(cfg, pool, apply, rx).await {
                    tracing::error!(error = format!("{e:#}"), "the iam.user.v1 consumer stopped");
                }
            }
        });
        tracing::info!(port, "safekeeper listening");
        Ok(Self {
            port,
            server,
            drain: s.common.shutdown_drain,
            background: vec![relay, consumer, pruner],
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = server::serve(self.server, self.drain).await;
        let _ = self.shutdown.send(true);
        for h in self.background {
            let _ = h.await;
        }
        Ok(result?)
    }
}
