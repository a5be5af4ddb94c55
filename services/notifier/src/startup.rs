//! Wiring only: the database, the server of the platform's endpoints, the
//! consumer of `notification.v1`, the sender and the pruning of sent
//! deliveries. Production and tests run this same code; tests bind port 0.

use std::sync::Arc;

use actix_web::{
    dev::{Server, ServerHandle},
    web,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig},
    retention::{Pruner, Step},
    server,
};
use tokio::{
    sync::{watch, Notify},
    task::JoinHandle,
};

use crate::{
    config::Settings, consumer, mail::Mailer, routes, sender::Sender, state::AppState, store,
};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/notifier");
pub const OPENAPI: &str = include_str!("../openapi.json");

/// One attempt may take this many of the relay's timeouts (lettre's
/// applies to each command of the conversation) before it counts as
/// failed.
const TIMEOUTS_PER_ATTEMPT: u32 = 4;

pub struct Application {
    port: u16,
    server: Server,
    /// How long SIGTERM drains before the stop (`SHUTDOWN_DRAIN_SECONDS`).
    drain: std::time::Duration,
    background: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// The consumer of `notification.v1`.
pub fn consumer_config(s: &Settings) -> ConsumerConfig {
    ConsumerConfig {
        brokers: s.common.kafka_brokers.clone(),
        group_id: s.consumer_group.clone(),
        topics: vec![topics::NOTIFICATION.to_owned()],
        partitions: s.common.kafka_topic_partitions,
        replication: s.common.kafka_topic_replication,
    }
}

/// What the notifier prunes ([`platform::retention`]): published outbox
/// rows (it writes none), then deliveries sent more than
/// `SENT_RETENTION_DAYS` ago.
pub fn pruner(state: &AppState) -> Pruner {
    let s = &state.settings;
    let sent = s.sent_retention.map(|keep| {
        Step::new("deliveries", move |c, n| {
            store::prune_sent(c, platform::retention::cutoff(keep), n)
        })
    });
    Pruner::new(
        state.pool.clone(),
        s.retention.clone(),
        sent.into_iter().collect(),
    )
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("notifier");
        let mailer = Mailer::new(&settings.smtp)?;
        let pool = db::migrated_pool(&settings.common, MIGRATIONS).await?;
        let state = web::Data::new(AppState { pool, settings });
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
        let wake = Arc::new(Notify::new());
        let consumer = tokio::spawn({
            let (cfg, pool, wake, rx) = (
                consumer_config(s),
                state.pool.clone(),
                wake.clone(),
                rx.clone(),
            );
            async move {
                let apply: events::ApplyFn = Arc::new(move |c, topic, e| {
                    if consumer::apply(c, topic, e)? {
                        wake.notify_one();
                    }
                    Ok(())
                });
                if let Err(e) = events::run_consumer(cfg, pool, apply, rx).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the notification consumer stopped"
                    );
                }
            }
        });
        let sender = Sender {
            pool: state.pool.clone(),
            mailer,
            retry: s.retry,
            poll: s.send_poll,
            attempt_limit: s.smtp.timeout * TIMEOUTS_PER_ATTEMPT,
            wake,
        };
        let sender = tokio::spawn(sender.run(rx.clone()));
        let pruner = tokio::spawn(pruner(&state).run(rx));
        tracing::info!(port, "notifier listening");
        Ok(Self {
            port,
            server,
            drain: s.common.shutdown_drain,
            background: vec![consumer, sender, pruner],
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests); `run_until_stopped` then
    /// stops the consumer, the sender and the pruning.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM (after a drain) or SIGINT ([`server::serve`]),
    /// then stops the background work.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = server::serve(self.server, self.drain).await;
        let _ = self.shutdown.send(true);
        for h in self.background {
            let _ = h.await;
        }
        Ok(result?)
    }
}
