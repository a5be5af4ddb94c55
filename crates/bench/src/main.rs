//! Load generator for the platform's services.
//!
//! `bench authenticator --url http://127.0.0.1:5900 --out target/bench/results.json
//! [--seconds 10] [--concurrency 16]` measures an already-running
//! authenticator (bcrypt cost 12); `bench safekeeper --auth-url
//! http://127.0.0.1:5900 --sk-url http://127.0.0.1:5901 [--out
//! target/bench/safekeeper.json] [--seconds 10] [--concurrency 16]` measures
//! a running safekeeper and the authenticator it trusts. Each prints a
//! markdown table and writes the same rows as JSON; `bench table FILE...`
//! prints the tables of several such files as one.

mod authenticator;
mod load;
mod report;
mod safekeeper;

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use reqwest::Client;

const USAGE: &str = "usage:
  bench authenticator --url URL --out FILE [--seconds N] [--concurrency C]
  bench safekeeper [--auth-url URL] [--sk-url URL] [--out FILE] [--seconds N] [--concurrency C]
  bench table FILE...";

const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:5900";
const DEFAULT_SK_URL: &str = "http://127.0.0.1:5901";
const DEFAULT_SK_OUT: &str = "target/bench/safekeeper.json";

/// How hard and how long to load, and where the results go.
pub struct Load {
    pub out: PathBuf,
    pub seconds: u64,
    pub concurrency: usize,
}

impl Load {
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

enum Command {
    Authenticator {
        url: String,
        load: Load,
    },
    Safekeeper {
        auth_url: String,
        sk_url: String,
        load: Load,
    },
    Table(Vec<PathBuf>),
}

fn parse() -> anyhow::Result<Command> {
    let mut args = std::env::args().skip(1);
    let service = match args.next() {
        Some(s) if s == "-h" || s == "--help" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(s) if s == "table" => return Ok(Command::Table(args.map(PathBuf::from).collect())),
        Some(s) if s == "authenticator" || s == "safekeeper" => s,
        Some(other) => bail!("unknown service {other:?}; {USAGE}"),
        None => bail!("{USAGE}"),
    };
    let is_sk = service == "safekeeper";
    let (mut url, mut auth_url, mut sk_url, mut out) = (None, None, None, None);
    let (mut seconds, mut concurrency) = (10, 16);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        let trimmed = value.trim_end_matches('/').to_owned();
        match flag.as_str() {
            "--url" if !is_sk => url = Some(trimmed),
            "--auth-url" if is_sk => auth_url = Some(trimmed),
            "--sk-url" if is_sk => sk_url = Some(trimmed),
            "--out" => out = Some(PathBuf::from(value)),
            "--seconds" => seconds = value.parse().context("--seconds")?,
            "--concurrency" => concurrency = value.parse().context("--concurrency")?,
            _ => bail!("unknown flag {flag} for {service}; {USAGE}"),
        }
    }
    if seconds == 0 || concurrency == 0 {
        bail!("--seconds and --concurrency must be at least 1");
    }
    if is_sk {
        let load = Load {
            out: out.unwrap_or_else(|| PathBuf::from(DEFAULT_SK_OUT)),
            seconds,
            concurrency,
        };
        Ok(Command::Safekeeper {
            auth_url: auth_url.unwrap_or_else(|| DEFAULT_AUTH_URL.to_owned()),
            sk_url: sk_url.unwrap_or_else(|| DEFAULT_SK_URL.to_owned()),
            load,
        })
    } else {
        let load = Load {
            out: out.with_context(|| format!("--out is required; {USAGE}"))?,
            seconds,
            concurrency,
        };
        Ok(Command::Authenticator {
            url: url.with_context(|| format!("--url is required; {USAGE}"))?,
            load,
        })
    }
}

/// An HTTP client that keeps a connection per worker and never follows
/// redirects (the code flow reads each one).
fn http(concurrency: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .pool_max_idle_per_host(concurrency + 1)
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match parse()? {
        Command::Authenticator { url, load } => {
            authenticator::run(&http(load.concurrency)?, &url, &load).await
        }
        Command::Safekeeper {
            auth_url,
            sk_url,
            load,
        } => safekeeper::run(&http(load.concurrency)?, &auth_url, &sk_url, &load).await,
        Command::Table(files) => {
            if files.is_empty() {
                bail!("bench table needs at least one results file; {USAGE}");
            }
            let reports = files
                .iter()
                .map(|f| report::read_json(f))
                .collect::<anyhow::Result<Vec<_>>>()?;
            report::print_combined(&reports);
            Ok(())
        }
    }
}
