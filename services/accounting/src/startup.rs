//! Wiring only: state, server, the consumer of task and account events,
//! the outbox relay and the daily close. Production and tests run this
//! same code; tests bind port 0.

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

use crate::{close, config::Settings, consumer, domain::Calendar, routes, state::AppState};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/accounting");
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
        calendar: Calendar {
            zone: settings.close_time_zone,
            close_hour: settings.close_hour,
        },
        access,
        tokens: platform::jwt::TokenCache::new(settings.caller_cache_entries),
        revocations: Revocations::new(),
        outbox: OutboxSignal::default(),
        dashboard: settings
            .dashboard
            .clone()
            .map(dashboard::Dashboard::new)
            .transpose()?,
        settings,
    }))
}

/// The topics the ledger and the users read model are built from.
pub fn consumer_config(s: &Settings) -> ConsumerConfig {
    ConsumerConfig {
        brokers: s.common.kafka_brokers.clone(),
        group_id: s.consumer_group.clone(),
        topics: vec![
            topics::TASK.to_owned(),
            topics::USER.to_owned(),
            topics::USER_ROLE.to_owned(),
        ],
        partitions: s.common.kafka_topic_partitions,
        replication: s.common.kafka_topic_replication,
    }
}

/// The topics this service's outbox writes.
pub fn relay_config(s: &Settings) -> RelayConfig {
    RelayConfig {
        brokers: s.common.kafka_brokers.clone(),
        database_url: s.common.database_url.clone(),
        topics: vec![topics::ACCOUNTING_TRANSACTION, topics::NOTIFICATION],
        partitions: s.common.kafka_topic_partitions,
        replication: s.common.kafka_topic_replication,
        poll: s.outbox_poll,
        batch: 500,
        notify: None,
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("accounting");
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
        let mut tasks = vec![tokio::spawn(events::run_relay(
            relay_config(s),
            state.outbox.clone(),
            rx.clone(),
        ))];
        let batching = {
            let (calendar, signal) = (state.calendar, state.outbox.clone());
            // The kinds of the entries the run being applied appended,
            // counted once it commits (a run that rolls back is applied
            // again one event at a time, and counted then).
            let appended: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
            let kept = appended.clone();
            events::Batching::new(
                Arc::new(move |c, run| {
                    let kinds = consumer::apply_run(c, &calendar, run)?;
                    *kept.lock().unwrap_or_else(|p| p.into_inner()) = kinds;
                    Ok(())
                }),
                Arc::new(move || {
                    let kinds =
                        std::mem::take(&mut *appended.lock().unwrap_or_else(|p| p.into_inner()));
                    consumer::count_entries(&kinds);
                    signal.nudge();
                }),
            )?
        };
        tasks.push(tokio::spawn({
            let cfg = consumer_config(s);
            let pool = state.pool.clone();
            let calendar = state.calendar;
            let signal = state.outbox.clone();
            let rx = rx.clone();
            async move {
                // The entry's transaction has committed when `apply`
                // returns: the relay may publish it at once. A run's
                // commit wakes it the same way.
                let apply: events::ApplyFn = Arc::new(move |c, topic, e| {
                    if consumer::apply(c, &calendar, topic, e)? {
                        signal.nudge();
                    }
                    Ok(())
                });
                if let Err(e) = events::run_batched_consumer(cfg, pool, apply, batching, rx).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the task and account events consumer stopped"
                    );
                }
            }
        }));
        // Published outbox rows only (`OUTBOX_RETENTION_HOURS`).
        tasks.push(tokio::spawn(
            Pruner::new(state.pool.clone(), s.retention.clone(), Vec::new()).run(rx.clone()),
        ));
        if s.close_loop {
            tasks.push(tokio::spawn(close::run_loop(
                state.pool.clone(),
                state.calendar,
                state.outbox.clone(),
                rx.clone(),
            )));
        }
        tracing::info!(port, "accounting listening");
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
    /// stops the consumer (which commits its offsets), the relay, the
    /// close and the pruner.
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
