//! `access-rule` serves the API (see the README and `/openapi.json`).

use access_rule::{config::Settings, startup::Application};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
