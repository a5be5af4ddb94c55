//! Wiring only: build the state, bind, run the server, the outbox relay,
//! the provider sync, the reconciler and the pruning. Production and tests run this
//! same code; tests bind port 0.

use std::sync::Arc;
use tracing::Instrument;

use actix_web::{
    dev::{Server, ServerHandle},
    web,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig, OutboxSignal, RelayConfig},
    jwt::{KeyRing, KeySource, Verifier},
    retention::Pruner,
    server,
};
use secrecy::ExposeSecret;
use tokio::{
    sync::{watch, Notify},
    task::JoinHandle,
};

use crate::{
    auth::ORG_TYP,
    background,
    config::Settings,
    directory_config::ConfigFile,
    members::{self, MemberCache},
    provider::Provider,
    routes,
    state::AppState,
    store, sync,
};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/user-directory");
/// Verified organization tokens remembered at most (about half a
/// kilobyte each).
const TOKEN_CACHE_ENTRIES: usize = 10_000;
pub const OPENAPI: &str = include_str!("../openapi.json");

pub struct Application {
    port: u16,
    server: Server,
    /// How long SIGTERM drains before the stop (`SHUTDOWN_DRAIN_SECONDS`).
    drain: std::time::Duration,
    background: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    state: web::Data<AppState>,
}

/// Builds the shared state: migrates, loads keys, the config file and the
/// provider client.
pub async fn build_state(settings: Settings) -> anyhow::Result<web::Data<AppState>> {
    let pool = db::migrated_pool(&settings.common, MIGRATIONS).await?;
    let dev_key = settings
        .common
        .state_dir
        .join("user-directory")
        .join("signing-key.pem");
    let keys = Arc::new(KeyRing::load(
        settings.signing_key_pem(),
        settings
            .previous_keys_pem
            .as_ref()
            .map(|s| s.expose_secret()),
        &dev_key,
        settings.require_signing_key,
    )?);
    let org_tokens = Verifier::new(
        KeySource::Local(Arc::new(keys.decoding_keys())),
        settings.issuer.clone(),
        ORG_TYP,
    );
    let provider = Provider::from_settings(&settings.provider, settings.provider_timeout)?;
    let config = ConfigFile::load(settings.directory_config.clone())?;
    if settings.webhook_secret.is_none() {
        tracing::info!("WORKOS_WEBHOOK_SECRET is not set: POST /v1/webhooks/workos answers 503");
    }
    Ok(web::Data::new(AppState {
        pool,
        provider,
        keys,
        org_tokens,
        token_cache: crate::org_token::TokenCache::new(TOKEN_CACHE_ENTRIES),
        members: Arc::new(MemberCache::new(members::ENTRIES)),
        config,
        outbox: OutboxSignal::default(),
        events: Notify::new(),
        reconcile: Notify::new(),
        settings,
    }))
}

/// What the directory prunes ([`platform::retention`]): published outbox
/// rows, then finished work past its window ([`store::retention_steps`]).
pub fn pruner(state: &AppState) -> Pruner {
    Pruner::new(
        state.pool.clone(),
        state.settings.retention.clone(),
        store::retention_steps(&state.settings.windows),
    )
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("user-directory");
        let state = build_state(settings).await?;
        let s = &state.settings;
        let (server, port) = server::start(
            &s.common,
            s.http_workers,
            state.clone(),
            state.pool.clone(),
            OPENAPI,
            routes::configure,
        )?;
        let (shutdown, rx) = watch::channel(false);
        // Stops by itself on shutdown.
        members::spawn_listener(
            state.members.clone(),
            s.common.database_url.clone(),
            rx.clone(),
        );
        let mut background = vec![
            tokio::spawn(events::run_relay(
                RelayConfig {
                    brokers: s.common.kafka_brokers.clone(),
                    database_url: s.common.database_url.clone(),
                    topics: vec![topics::ORGANIZATION, topics::MEMBERSHIP],
                    partitions: s.common.kafka_topic_partitions,
                    replication: s.common.kafka_topic_replication,
                    poll: s.outbox_poll,
                    batch: 500,
                    notify: None,
                },
                state.outbox.clone(),
                rx.clone(),
            )),
            tokio::spawn(
                background::run_applier(state.clone(), rx.clone())
                    .instrument(tracing::info_span!("provider_applier")),
            ),
            tokio::spawn(
                background::run_reconciler(state.clone(), rx.clone())
                    .instrument(tracing::info_span!("reconciler")),
            ),
            tokio::spawn(pruner(&state).run(rx.clone())),
        ];
        match &state.provider {
            Provider::WorkOs(_) => background.push(tokio::spawn(
                background::run_events_reader(state.clone(), rx.clone())
                    .instrument(tracing::info_span!("workos_events_reader")),
            )),
            Provider::Authenticator(_) => {
                let cfg = ConsumerConfig {
                    brokers: s.common.kafka_brokers.clone(),
                    group_id: s.consumer_group.clone(),
                    topics: vec![topics::USER.to_owned()],
                    partitions: s.common.kafka_topic_partitions,
                    replication: s.common.kafka_topic_replication,
                };
                let pool = state.pool.clone();
                let signal = state.outbox.clone();
                let rx = rx.clone();
                background.push(tokio::spawn(async move {
                    let apply: events::ApplyFn = Arc::new(move |c, _topic, e| {
                        sync::apply_iam_user(c, e)?;
                        signal.nudge();
                        Ok(())
                    });
                    if let Err(e) = events::run_consumer(cfg, pool, apply, rx).await {
                        tracing::error!(
                            error = format!("{e:#}"),
                            "the iam.user.v1 consumer stopped"
                        );
                    }
                }));
            }
        }
        background::resume_imports(state.clone()).await;
        tracing::info!(
            port,
            provider = state.provider.name(),
            "user-directory listening"
        );
        Ok(Self {
            port,
            server,
            drain: s.common.shutdown_drain,
            background,
            shutdown,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Stops the server (tests use it to restart the service).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM (after a drain) or SIGINT ([`server::serve`]), then
    /// stops the background work.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = server::serve(self.server, self.drain).await;
        let _ = self.shutdown.send(true);
        for h in self.background {
            let _ = h.await;
        }
        Ok(result?)
    }
}
