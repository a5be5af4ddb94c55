//! `task` serves the API; `task rebuild-read-model` empties the users read
//! model and resets its consumer group to the earliest offset (run it with
//! the service stopped), then exits.

use task::{config::Settings, rebuild, startup};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    // `task dlq list|replay TOPIC`: the dead letters of a consumed topic.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(done) = platform::dlq::command(&settings.common.kafka_brokers, &args).await {
        return done;
    }
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            startup::Application::build(settings)
                .await?
                .run_until_stopped()
                .await
        }
        Some("rebuild-read-model") => rebuild::rebuild_read_model(&settings).await,
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use serve, rebuild-read-model or dlq")
        }
    }
}
