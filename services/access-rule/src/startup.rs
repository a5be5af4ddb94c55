//! Wiring only: build the state, bind, run the server, the outbox relay,
//! the `iam.user.v1` consumer, the reload of the rules' suspensions and
//! the pruning.
//! Production and tests run this same code; tests bind port 0.

use std::sync::Arc;
use tracing::Instrument;

use actix_web::{
    dev::{Server, ServerHandle},
    web,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, ConsumerConfig, OutboxSignal, RelayConfig, RelayNotify},
    jwt::{KeySource, RemoteJwks, Verifier, ACCESS_TYP, SESSION_TYP},
    retention::{Pruner, Step},
    revocation::Revocations,
    server,
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    cache::{self, CheckCache},
    config::Settings,
    consumer,
    domain::Rule,
    error::ApiError,
    producers::RateLimits,
    routes,
    state::AppState,
    store,
    tripwire::{Suspensions, TripwireChecks},
    writer::EventWriters,
};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/access-rule");
pub const OPENAPI: &str = include_str!("../openapi.json");

pub struct Application {
    port: u16,
    server: Server,
    /// How long SIGTERM drains before the stop (`SHUTDOWN_DRAIN_SECONDS`).
    drain: std::time::Duration,
    background: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// Verified access tokens remembered (producers and readers are few).
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// Builds the shared state: migrates (and changes no data), loads the
/// rules' suspensions.
pub async fn build_state(settings: Settings) -> anyhow::Result<web::Data<AppState>> {
    let pool = db::migrated_pool(&settings.common, MIGRATIONS).await?;
    let sessions = Verifier::new(
        KeySource::Remote(Arc::new(RemoteJwks::new(
            settings.jwks_url(),
            reqwest::Client::new(),
        ))),
        settings.auth_issuer.clone(),
        SESSION_TYP,
    );
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let access = Verifier::new(
        KeySource::Remote(Arc::new(RemoteJwks::new(settings.access_jwks_url(), http))),
        settings.safekeeper_issuer.clone(),
        ACCESS_TYP,
    )
    .with_audience(settings.access_audience.clone());
    let writers = EventWriters::start(
        &settings.common.database_url,
        settings.rules,
        settings.batch,
    )?;
    let suspensions = Arc::new(Suspensions::default());
    let outbox = OutboxSignal::default();
    let tripwire = TripwireChecks::new(
        pool.clone(),
        settings.rules,
        settings.tripwire_check_interval,
        suspensions.clone(),
        outbox.clone(),
    );
    let state = web::Data::new(AppState {
        writers,
        pool,
        sessions,
        access,
        tokens: platform::jwt::TokenCache::new(TOKEN_CACHE_ENTRIES),
        producers: RateLimits::new(settings.producer_rate, settings.producer_burst),
        revocations: Revocations::new(),
        suspensions,
        cache: Arc::new(CheckCache::new(settings.check_cache_entries)),
        tripwire,
        outbox,
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

/// What access-rule prunes ([`platform::retention`]): published outbox
/// rows, then stored events past `EVENT_RETENTION_DAYS` (the record that
/// makes a resent `event_id` apply once).
pub fn pruner(state: &AppState) -> Pruner {
    let s = &state.settings;
    let events = s.event_retention.map(|keep| {
        Step::new("events", move |c, n| {
            store::prune_events(c, platform::retention::cutoff(keep), n)
        })
    });
    Pruner::new(
        state.pool.clone(),
        s.retention.clone(),
        events.into_iter().collect(),
    )
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("access-rule");
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
        let relay = tokio::spawn(events::run_relay(
            RelayConfig {
                brokers: s.common.kafka_brokers.clone(),
                database_url: s.common.database_url.clone(),
                topics: vec![topics::RESTRICTION],
                partitions: s.common.kafka_topic_partitions,
                replication: s.common.kafka_topic_replication,
                poll: s.outbox_poll,
                batch: 500,
                notify: Some(RelayNotify {
                    topic: topics::RESTRICTION,
                    channel: crate::cache::CHANNEL,
                }),
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
                        tracing::warn!(error = %platform::problem::chain(&e), "reloading the rules' suspensions failed");
                    }
                    // A safety net: a check missed by a crash right after a
                    // restricting commit runs here.
                    for rule in Rule::ALL {
                        if let Err(e) = state.tripwire.check(rule).await {
                            tracing::warn!(rule = %rule, error = %platform::problem::chain(&e), "tripwire check failed");
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("rules_refresher"))
        });
        let pruner = tokio::spawn(pruner(&state).run(shutdown.subscribe()));
        let listener = tokio::spawn(
            cache::run_listener(
                state.cache.clone(),
                s.common.database_url.clone(),
                store::check_page,
                shutdown.subscribe(),
            )
            .instrument(tracing::info_span!("check_cache_listener")),
        );
        tracing::info!(port, "access-rule listening");
        Ok(Self {
            port,
            server,
            drain: s.common.shutdown_drain,
            background: vec![relay, consumer, refresher, listener, pruner],
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

    /// Serves until SIGTERM (after a drain) or SIGINT ([`server::serve`]), then
    /// stops the relay, the consumer and the reload.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = server::serve(self.server, self.drain).await;
        let _ = self.shutdown.send(true);
        for h in self.background {
            let _ = h.await;
        }
        Ok(result?)
    }
}
