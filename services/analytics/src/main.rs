//! `analytics` serves management's reports and consumes task and
//! accounting events into its read models.

use analytics::{config::Settings, startup};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    // `analytics dlq list|replay TOPIC`: the dead letters of a consumed topic.
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
        Some(other) => anyhow::bail!("unknown command {other:?}; use serve or dlq"),
    }
}
