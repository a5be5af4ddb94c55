//! `access-rule` serves the API (see its README and `/openapi.json`).

use access_rule::{config::Settings, startup::Application};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    // `access-rule dlq list|replay TOPIC`: the dead letters of a consumed topic.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(done) = platform::dlq::command(&settings.common.kafka_brokers, &args).await {
        return done;
    }
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
