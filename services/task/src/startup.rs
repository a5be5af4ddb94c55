//! Wiring only: state, server, the consumer that feeds the users read
//! model, the outbox relay that publishes `task.v1` and the pruning of
//! published outbox rows. Production and tests run this same code; tests
//! bind port 0.

use std::sync::Arc;

use actix_web::{
    dev::{Server, ServerHandle},
    web,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig, OutboxSignal, RelayConfig},
    jwt::{KeySource, RemoteJwks, Verifier, ACCESS_TYP},
    retention::Pruner,
    revocation::Revocations,
    server,
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    cache::{self, Caches, PageCache, UserCache},
    config::Settings,
    consumer, routes,
    state::AppState,
    store,
};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/task");
pub const OPENAPI: &str = include_str!("../openapi.json");

pub struct Application {
    port: u16,
    server: Server,
    /// How long SIGTERM drains before the stop (`SHUTDOWN_DRAIN_SECONDS`).
    drain: std::time::Duration,
    consumer: JoinHandle<()>,
    /// The outbox relay and the pruning.
    background: Vec<JoinHandle<()>>,
    listener: Option<std::thread::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// Migrates, connects, loads the catalogue, prepares the token verifier.
pub async fn build_state(settings: Settings) -> anyhow::Result<web::Data<AppState>> {
    let pool = db::migrated_pool(&settings.common, MIGRATIONS).await?;
    let catalogue = db::with_conn(&pool, |c| -> anyhow::Result<_> {
        Ok(store::load_catalogue(c)?)
    })
    .await?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let access = Verifier::new(
        KeySource::Remote(Arc::new(RemoteJwks::new(settings.jwks_url(), http))),
        settings.safekeeper_issuer.clone(),
        ACCESS_TYP,
    )
    .with_audience(settings.access_audience.clone());
    Ok(web::Data::new(AppState {
        pool,
        catalogue: Arc::new(catalogue),
        access,
        tokens: platform::jwt::TokenCache::new(settings.caller_cache_entries),
        users: Arc::new(UserCache::new(settings.caller_cache_entries)),
        pages: Arc::new(PageCache::new(settings.page_cache_entries)),
        revocations: Revocations::new(),
        outbox: OutboxSignal::default(),
        settings,
    }))
}

/// The topics the read model is built from.
pub fn consumer_config(s: &Settings) -> ConsumerConfig {
    ConsumerConfig {
        brokers: s.common.kafka_brokers.clone(),
        group_id: s.consumer_group.clone(),
        topics: vec![topics::USER.to_owned(), topics::USER_ROLE.to_owned()],
        partitions: s.common.kafka_topic_partitions,
        replication: s.common.kafka_topic_replication,
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("task");
        let state = build_state(settings).await?;
        let s = &state.settings;
        // Not ready until the revocations were read to the topic's end.
        let (server, port) = server::start_with(
            &s.common,
            s.http_workers,
            state.clone(),
            state.pool.clone(),
            OPENAPI,
            routes::configure,
            Some(state.revocations.ready_check()),
        )?;
        let (shutdown, rx) = watch::channel(false);
        state.revocations.spawn(&s.common, rx.clone());
        let listener = cache::spawn_listener(
            Caches {
                users: state.users.clone(),
                pages: state.pages.clone(),
            },
            s.common.database_url.clone(),
            rx.clone(),
        );
        let consumer = tokio::spawn({
            let cfg = consumer_config(s);
            let rx = rx.clone();
            let pool = state.pool.clone();
            let users = state.users.clone();
            async move {
                // A user changed in the consumer's transaction is marked
                // as changing before it commits (see `cache`).
                let apply: events::ApplyFn = Arc::new(move |c, topic, e| {
                    if let Some(id) = consumer::apply_changed(c, topic, e)? {
                        users.changing(id);
                    }
                    Ok(())
                });
                if let Err(e) = events::run_consumer(cfg, pool, apply, rx).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the users read model consumer stopped"
                    );
                }
            }
        });
        let relay = tokio::spawn(events::run_relay(
            RelayConfig {
                brokers: s.common.kafka_brokers.clone(),
                database_url: s.common.database_url.clone(),
                topics: vec![topics::TASK],
                partitions: s.common.kafka_topic_partitions,
                replication: s.common.kafka_topic_replication,
                poll: s.outbox_poll,
                batch: 500,
                notify: None,
            },
            state.outbox.clone(),
            rx.clone(),
        ));
        // Published outbox rows only: nothing else of the task service
        // expires.
        let pruner = Pruner::new(state.pool.clone(), s.retention.clone(), vec![]);
        let pruner = tokio::spawn(pruner.run(rx));
        tracing::info!(port, "task listening");
        Ok(Self {
            port,
            server,
            drain: s.common.shutdown_drain,
            consumer,
            background: vec![relay, pruner],
            listener,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests); `run_until_stopped` then
    /// stops the consumer, which commits its offsets.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM (after a drain) or SIGINT ([`server::serve`]), then
    /// stops the consumer, the relay and the pruning.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = server::serve(self.server, self.drain).await;
        let _ = self.shutdown.send(true);
        let _ = self.consumer.await;
        for h in self.background {
            let _ = h.await;
        }
        if let Some(l) = self.listener {
            let _ = tokio::task::spawn_blocking(move || l.join()).await;
        }
        Ok(result?)
    }
}
