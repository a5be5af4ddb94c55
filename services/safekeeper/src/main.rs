//! `safekeeper`: serves the OAuth2 server and the RBAC admin API.

use safekeeper::{config::Settings, startup::Application};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
