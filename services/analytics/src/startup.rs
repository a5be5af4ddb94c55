//! Wiring only: state, server and the consumer of task, accounting and
//! account events. Production and tests run this same code; tests bind
//! port 0.

use std::sync::Arc;

use actix_web::{
    dev::{Server, ServerHandle},
    web,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig},
    jwt::{KeySource, RemoteJwks, Verifier, ACCESS_TYP},
    revocation::Revocations,
    server,
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{config::Settings, consumer, routes, state::AppState};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/analytics");
pub const OPENAPI: &str = include_str!("../openapi.json");

pub struct Application {
    port: u16,
    server: Server,
    /// How long SIGTERM drains before the stop (`SHUTDOWN_DRAIN_SECONDS`).
    drain: std::time::Duration,
    tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// Migrates, connects, prepares the token verifier.
pub async fn build_state(settings: Settings) -> anyhow::Result<web::Data<AppState>> {
    let pool = db::migrated_pool(&settings.common, MIGRATIONS).await?;
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
        zone: settings.business_time_zone,
        access,
        tokens: platform::jwt::TokenCache::new(settings.caller_cache_entries),
        revocations: Revocations::new(),
        dashboard: settings
            .dashboard
            .clone()
            .map(dashboard::Dashboard::new)
            .transpose()?,
        settings,
    }))
}

/// The topics the read models are built from.
pub fn consumer_config(s: &Settings) -> ConsumerConfig {
    ConsumerConfig {
        brokers: s.common.kafka_brokers.clone(),
        group_id: s.consumer_group.clone(),
        topics: vec![
            topics::TASK.to_owned(),
            topics::ACCOUNTING_TRANSACTION.to_owned(),
            topics::USER.to_owned(),
            topics::USER_ROLE.to_owned(),
        ],
        partitions: s.common.kafka_topic_partitions,
        replication: s.common.kafka_topic_replication,
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("analytics");
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
        // A backlog (a replay, a start after a pause) is applied in runs,
        // a transaction each; nothing waits on its commits.
        let apply: events::ApplyFn = Arc::new(consumer::apply);
        let batching =
            events::Batching::new(events::Batching::each(apply.clone()), Arc::new(|| {}))?;
        let consumer = {
            let cfg = consumer_config(s);
            let pool = state.pool.clone();
            let rx = rx.clone();
            async move {
                if let Err(e) = events::run_batched_consumer(cfg, pool, apply, batching, rx).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the task and accounting events consumer stopped"
                    );
                }
            }
        };
        let tasks = vec![tokio::spawn(consumer)];
        tracing::info!(port, "analytics listening");
        Ok(Self {
            port,
            server,
            drain: s.common.shutdown_drain,
            tasks,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests); `run_until_stopped` then
    /// stops the consumer (which commits its offsets).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM (after a drain) or SIGINT ([`server::serve`]),
    /// then stops the background tasks.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = server::serve(self.server, self.drain).await;
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        Ok(result?)
    }
}
