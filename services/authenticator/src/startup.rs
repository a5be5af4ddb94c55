//! Wiring only: build the state, bind, run the server, the outbox relay
//! and the pruning of published outbox rows.
//! Production and tests run this same code; tests bind port 0.

use std::sync::Arc;

use anyhow::Context;

use actix_web::{dev::Server, web};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use platform::{
    db,
    events::{self, topics, OutboxSignal, RelayConfig},
    jwt::{KeyRing, KeySource, RemoteJwks, Verifier, ACCESS_TYP, SESSION_TYP},
    retention::Pruner,
    server,
};
use secrecy::ExposeSecret;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    config::Settings,
    domain::{Email, NewPassword, Username},
    error::ApiError,
    hashing::Hasher,
    ratelimit::Throttle,
    routes,
    routes_support::{create_account, Registration},
    state::AppState,
    store,
};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/authenticator");
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

/// Builds the shared state: migrates, loads keys, prepares the hasher.
pub async fn build_state(settings: Settings) -> anyhow::Result<web::Data<AppState>> {
    let pool = db::migrated_pool(&settings.common, MIGRATIONS).await?;
    let dev_key = settings
        .common
        .state_dir
        .join("authenticator")
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
    let sessions = Verifier::new(
        KeySource::Local(Arc::new(keys.decoding_keys())),
        settings.issuer.clone(),
        SESSION_TYP,
    );
    let access = Verifier::new(
        KeySource::Remote(Arc::new(RemoteJwks::new(
            format!("{}/.well-known/jwks.json", settings.safekeeper_url),
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()?,
        ))),
        settings.safekeeper_issuer.clone(),
        ACCESS_TYP,
    )
    .with_audience(settings.access_audience.clone());
    let limits = settings.hashing.clone();
    let hasher = db::blocking(move || Hasher::new(limits)).await??;
    let throttle = match &settings.throttle_store.redis_url {
        Some(url) => {
            let t = Throttle::redis(
                settings.throttle.clone(),
                url,
                &settings.throttle_store.key_prefix,
            )
            .context("REDIS_URL for the login throttle")?;
            tracing::info!("the login throttle counts in Redis, shared by every replica");
            t
        }
        None => {
            tracing::info!(
                "the login throttle counts in memory (REDIS_URL is not set): one replica only"
            );
            Throttle::in_memory(settings.throttle.clone())
        }
    };
    Ok(web::Data::new(AppState {
        pool,
        hasher,
        keys,
        sessions,
        access,
        throttle,
        outbox: OutboxSignal::default(),
        revocations: platform::revocation::Revocations::new(),
        settings,
    }))
}

/// Creates the bootstrap superuser when it does not exist yet. An existing
/// account of that name is left alone (its password is not reset).
pub async fn ensure_superuser(
    state: &AppState,
    username: &str,
    email: &str,
    password: secrecy::SecretString,
) -> anyhow::Result<bool> {
    let name = username.to_owned();
    let existing = db::with_conn(&state.pool, move |c| {
        store::by_username(c, &name).map_err(ApiError::from)
    })
    .await?;
    if existing.is_some() {
        return Ok(false);
    }
    let username =
        Username::parse(username).map_err(|e| anyhow::anyhow!("superuser: {}", e.message))?;
    let reg = Registration {
        password: NewPassword::parse(password, Some(username.as_str()))
            .map_err(|e| anyhow::anyhow!("superuser password: {}", e.message))?,
        email: Email::parse(email)
            .map_err(|e| anyhow::anyhow!("superuser email: {}", e.message))?,
        firstname: "Platform".into(),
        lastname: "Administrator".into(),
        phone: String::new(),
        username,
    };
    match create_account(state, reg, true).await {
        Ok(a) => {
            tracing::info!(account.id = %a.id, username = %a.username, "bootstrap superuser created");
            Ok(true)
        }
        // Another replica won the race.
        Err(ApiError::UsernameTaken) => Ok(false),
        Err(e) => Err(anyhow::anyhow!("creating the superuser: {e}")),
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        platform::metrics::global().set_service("authenticator");
        let state = build_state(settings).await?;
        let s = &state.settings;
        if let Some(admin) = &s.bootstrap_admin {
            ensure_superuser(
                &state,
                &admin.username,
                &admin.email,
                admin.password.clone(),
            )
            .await?;
        }
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
                topics: vec![topics::USER, topics::NOTIFICATION],
                partitions: s.common.kafka_topic_partitions,
                replication: s.common.kafka_topic_replication,
                poll: s.outbox_poll,
                batch: 500,
                notify: None,
            },
            state.outbox.clone(),
            rx.clone(),
        ));
        // Published outbox rows only: the authenticator keeps nothing else
        // that expires.
        let pruner = Pruner::new(state.pool.clone(), s.retention.clone(), vec![]);
        let pruner = tokio::spawn(pruner.run(rx));
        tracing::info!(port, "authenticator listening");
        Ok(Self {
            port,
            server,
            drain: s.common.shutdown_drain,
            background: vec![relay, pruner],
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

    /// Serves until SIGTERM (after a drain) or SIGINT ([`server::serve`]), then
    /// stops the relay and the pruning.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = server::serve(self.server, self.drain).await;
        let _ = self.shutdown.send(true);
        for h in self.background {
            let _ = h.await;
        }
        Ok(result?)
    }
}
