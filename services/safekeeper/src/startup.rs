//! Wiring only: state, server, outbox relay, `iam.user.v1` consumer.

use std::sync::Arc;

use actix_web::{dev::Server, middleware::from_fn, web, App, HttpServer};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig, OutboxSignal, RelayConfig},
    jwt::{KeyRing, KeySource, RemoteJwks, Verifier, ACCESS_TYP, SESSION_TYP},
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

/// Expired codes, refresh tokens, revocation-list entries and spent grant
/// families are deleted once a minute after start, then every hour.
async fn prune_periodically(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut wait = std::time::Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        wait = std::time::Duration::from_secs(3600);
        let ttl = state.settings.access_ttl;
        match db::with_conn(&state.pool, move |c| {
            grants::prune_expired(c, ttl).map_err(crate::error::ApiError::from)
        })
        .await
        {
            Ok(p) => tracing::info!(
                codes = p.codes,
                refresh_tokens = p.refresh_tokens,
                revoked_access_tokens = p.revoked_access_tokens,
                families = p.families,
                "pruned expired grants"
            ),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "pruning expired grants failed"),
        }
    }
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
        let (listener, port) = server::bind(&s.common.http_host, s.common.port)?;
        let max_body = s.common.max_body_bytes;
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(routes::forget_cached_clients))
                .wrap(platform::input::RejectControlCharacters::new(max_body))
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
        let pruner = tokio::spawn(prune_periodically(state.clone(), rx.clone()));
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
            background: vec![relay, consumer, pruner],
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        for h in self.background {
            let _ = h.await;
        }
        Ok(result?)
    }
}
