//! `user-directory` serves the API.

use user_directory::{config::Settings, startup};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    startup::Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
