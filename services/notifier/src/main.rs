//! `notifier` consumes `notification.v1` and sends the mail (see its
//! README); `notifier dlq list|replay notification.v1` handles its dead
//! letters.

use notifier::{config::Settings, startup::Application};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(done) = platform::dlq::command(&settings.common.kafka_brokers, &args).await {
        return done;
    }
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
