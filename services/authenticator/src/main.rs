//! `authenticator` serves the API; `authenticator create-superuser
//! --username NAME --email EMAIL` reads a password from standard input and
//! creates a superuser (then exits).

use std::io::BufRead;

use anyhow::Context;
use authenticator::{config::Settings, startup};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init(settings.common.log_format);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => {
            startup::Application::build(settings)
                .await?
                .run_until_stopped()
                .await
        }
        Some("create-superuser") => create_superuser(settings, &args[1..]).await,
        Some(other) => anyhow::bail!("unknown command {other:?}; use serve or create-superuser"),
    }
}

async fn create_superuser(settings: Settings, args: &[String]) -> anyhow::Result<()> {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .with_context(|| format!("missing {flag}"))
    };
    let (username, email) = (value("--username")?, value("--email")?);
    eprintln!("password for {username} (read from standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = secrecy::SecretString::from(line.trim_end_matches(['\n', '\r']).to_owned());
    let state = startup::build_state(settings).await?;
    if startup::ensure_superuser(&state, &username, &email, password).await? {
        println!("superuser {username} created");
    } else {
        println!("an account named {username} exists already; nothing changed");
    }
    Ok(())
}
