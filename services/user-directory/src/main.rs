//! `user-directory` serves the API.

use user_directory::{config::Settings, startup};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    // `user-directory dlq list|replay TOPIC`: the dead letters of a consumed topic.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(done) = platform::dlq::command(&settings.common.kafka_brokers, &args).await {
        return done;
    }
    startup::Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
