//! Load generator for the platform's services.
//!
//! `bench authenticator --url http://127.0.0.1:5900 --out target/bench/results.json
//! [--seconds 10] [--concurrency 16]` measures an already-running
//! authenticator (bcrypt cost 12); `bench safekeeper --auth-url
//! http://127.0.0.1:5900 --sk-url http://127.0.0.1:5901 [--out
//! target/bench/safekeeper.json] [--seconds 10] [--concurrency 16]` measures
//! a running safekeeper and the authenticator it trusts. Each prints a
//! markdown table and writes the same rows as JSON; `bench table FILE...`
//! prints the tables of several such files as one. `bench soak` runs a
//! steady mixed load across the five services for 10 minutes and judges
//! errors, memory, latency and the pruned tables ([`soak`]). `bench
//! accounting-events`, `bench accounting` and `bench analytics` measure
//! the ledger and the reports ([`popug`]).

mod access_rule;
mod authenticator;
mod load;
mod overload;
mod popug;
mod report;
mod safekeeper;
mod soak;
mod task;
mod wire;

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use reqwest::Client;

const USAGE: &str = "usage:
  bench authenticator --url URL --out FILE [--seconds N] [--concurrency C]
  bench safekeeper [--auth-url URL] [--sk-url URL] [--out FILE] [--seconds N] [--concurrency C]
  bench access-rule --url URL --users N --out FILE [--seconds N] [--concurrency C]
  bench task [--auth-url URL] [--sk-url URL] [--task-url URL] [--task-db URL] [--out FILE] [--seconds N] [--concurrency C]
  bench soak [--seconds N] [--warm-up N] [--settle N] [--rate-scale X] [--out FILE]
             [--auth-url URL] [--sk-url URL] [--task-url URL] [--ud-url URL] [--ar-url URL]
             [--state-dir DIR] [--pid SERVICE=PID]... [--pg URL] [--db-suffix S]
             [--webhook-secret S] [--events-client ID] [--events-secret S]
             [--org-admin EMAIL] [--org-password P]
  bench accounting-events [--brokers B] [--tasks N]
  bench accounting [--db URL] [--url URL] [--tasks N] [--out FILE]
  bench analytics [--auth-url URL] [--sk-url URL] [--url URL] [--out FILE] [--seconds N] [--concurrency C]
  bench table FILE...";

const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:5900";
const DEFAULT_SK_URL: &str = "http://127.0.0.1:5901";
const DEFAULT_SK_OUT: &str = "target/bench/safekeeper.json";
const DEFAULT_TASK_URL: &str = "http://127.0.0.1:5902";
const DEFAULT_TASK_DB: &str = "postgres://postgres@127.0.0.1:5432/task_bench";
const DEFAULT_TASK_OUT: &str = "target/bench/task.json";

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
    AccessRule {
        url: String,
        users: u64,
        load: Load,
    },
    Task {
        urls: task::Urls,
        load: Load,
    },
    Soak(Box<soak::Options>),
    AccountingEvents {
        brokers: String,
        tasks: u64,
    },
    Accounting {
        db: String,
        url: String,
        tasks: u64,
        out: PathBuf,
    },
    Analytics {
        urls: popug::AnalyticsUrls,
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
        Some(s) if s == "authenticator" || s == "safekeeper" || s == "access-rule" => s,
        Some(s) if s == "task" => return parse_task(args),
        Some(s) if s == "soak" => return parse_soak(args),
        Some(s) if s == "accounting-events" || s == "accounting" || s == "analytics" => {
            return parse_popug(&s, args)
        }
        Some(other) => bail!("unknown service {other:?}; {USAGE}"),
        None => bail!("{USAGE}"),
    };
    let is_sk = service == "safekeeper";
    let mut users = None;
    let (mut url, mut auth_url, mut sk_url, mut out) = (None, None, None, None);
    let (mut seconds, mut concurrency) = (10, 16);
    for (flag, value) in flag_pairs(args)? {
        let trimmed = value.trim_end_matches('/').to_owned();
        match flag.as_str() {
            "--url" if !is_sk => url = Some(trimmed),
            "--auth-url" if is_sk => auth_url = Some(trimmed),
            "--sk-url" if is_sk => sk_url = Some(trimmed),
            "--users" if service == "access-rule" => {
                users = Some(value.parse().context("--users")?)
            }
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
        let url = url.with_context(|| format!("--url is required; {USAGE}"))?;
        if service == "access-rule" {
            let users = users.with_context(|| format!("--users is required; {USAGE}"))?;
            return Ok(Command::AccessRule { url, users, load });
        }
        Ok(Command::Authenticator { url, load })
    }
}

/// The arguments as `--flag value` pairs.
fn flag_pairs(mut args: impl Iterator<Item = String>) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        pairs.push((flag, value));
    }
    Ok(pairs)
}

/// `bench task`'s flags (its own, so the other services' stay as they are).
fn parse_task(args: impl Iterator<Item = String>) -> anyhow::Result<Command> {
    let mut urls = task::Urls {
        auth: DEFAULT_AUTH_URL.to_owned(),
        sk: DEFAULT_SK_URL.to_owned(),
        task: DEFAULT_TASK_URL.to_owned(),
        db: DEFAULT_TASK_DB.to_owned(),
    };
    let mut load = Load {
        out: PathBuf::from(DEFAULT_TASK_OUT),
        seconds: 10,
        concurrency: 16,
    };
    for (flag, value) in flag_pairs(args)? {
        let trimmed = value.trim_end_matches('/').to_owned();
        match flag.as_str() {
            "--auth-url" => urls.auth = trimmed,
            "--sk-url" => urls.sk = trimmed,
            "--task-url" => urls.task = trimmed,
            "--task-db" => urls.db = value,
            "--out" => load.out = PathBuf::from(value),
            "--seconds" => load.seconds = value.parse().context("--seconds")?,
            "--concurrency" => load.concurrency = value.parse().context("--concurrency")?,
            _ => bail!("unknown flag {flag} for task; {USAGE}"),
        }
    }
    if load.seconds == 0 || load.concurrency == 0 {
        bail!("--seconds and --concurrency must be at least 1");
    }
    Ok(Command::Task { urls, load })
}

/// The flags of `bench accounting-events`, `accounting` and `analytics`.
fn parse_popug(part: &str, args: impl Iterator<Item = String>) -> anyhow::Result<Command> {
    let mut brokers = "127.0.0.1:9292".to_owned();
    let mut db = "postgres://postgres@127.0.0.1:5432/accounting_bench".to_owned();
    let mut accounting = "http://127.0.0.1:5906".to_owned();
    let mut tasks = 25_000;
    let mut urls = popug::AnalyticsUrls {
        auth: DEFAULT_AUTH_URL.to_owned(),
        sk: DEFAULT_SK_URL.to_owned(),
        analytics: "http://127.0.0.1:5907".to_owned(),
    };
    let mut load = Load {
        out: PathBuf::from(format!("target/bench/{part}.json")),
        seconds: 10,
        concurrency: 16,
    };
    for (flag, value) in flag_pairs(args)? {
        let trimmed = value.trim_end_matches('/').to_owned();
        match (part, flag.as_str()) {
            ("accounting-events", "--brokers") => brokers = value,
            ("accounting-events" | "accounting", "--tasks") => {
                tasks = value.parse().context("--tasks")?
            }
            ("accounting", "--db") => db = value,
            ("accounting", "--url") => accounting = trimmed,
            ("analytics", "--auth-url") => urls.auth = trimmed,
            ("analytics", "--sk-url") => urls.sk = trimmed,
            ("analytics", "--url") => urls.analytics = trimmed,
            ("analytics", "--seconds") => load.seconds = value.parse().context("--seconds")?,
            ("analytics", "--concurrency") => {
                load.concurrency = value.parse().context("--concurrency")?
            }
            ("accounting" | "analytics", "--out") => load.out = PathBuf::from(value),
            _ => bail!("unknown flag {flag} for {part}; {USAGE}"),
        }
    }
    if tasks == 0 || load.seconds == 0 || load.concurrency == 0 {
        bail!("--tasks, --seconds and --concurrency must be at least 1");
    }
    Ok(match part {
        "accounting-events" => Command::AccountingEvents { brokers, tasks },
        "accounting" => Command::Accounting {
            db,
            url: accounting,
            tasks,
            out: load.out,
        },
        _ => Command::Analytics { urls, load },
    })
}

/// `bench soak`'s flags; the defaults are `make up`'s platform.
fn parse_soak(args: impl Iterator<Item = String>) -> anyhow::Result<Command> {
    let mut o = soak::Options::default();
    for (flag, value) in flag_pairs(args)? {
        let trimmed = value.trim_end_matches('/').to_owned();
        match flag.as_str() {
            "--auth-url" => o.auth = trimmed,
            "--sk-url" => o.sk = trimmed,
            "--task-url" => o.task = trimmed,
            "--ud-url" => o.ud = trimmed,
            "--ar-url" => o.ar = trimmed,
            "--seconds" => o.seconds = value.parse().context("--seconds")?,
            "--warm-up" => o.warm_up = value.parse().context("--warm-up")?,
            "--settle" => o.settle = value.parse().context("--settle")?,
            "--rate-scale" => o.rate_scale = value.parse().context("--rate-scale")?,
            "--out" => o.out = PathBuf::from(value),
            "--state-dir" => o.state_dir = PathBuf::from(value),
            "--pid" => o.pids.push(soak::parse_pid(&value)?),
            "--pg" => o.pg = trimmed,
            "--db-suffix" => o.db_suffix = value,
            "--webhook-secret" => o.webhook_secret = Some(value).filter(|v| !v.is_empty()),
            "--events-client" => o.events_client = value,
            "--events-secret" => o.events_secret = value,
            "--org-admin" => o.org_admin = value,
            "--org-password" => o.org_password = value,
            _ => bail!("unknown flag {flag} for soak; {USAGE}"),
        }
    }
    o.check()?;
    Ok(Command::Soak(Box::new(o)))
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
        Command::AccessRule { url, users, load } => access_rule::run(&url, users, &load).await,
        Command::Task { urls, load } => task::run(&http(load.concurrency)?, &urls, &load).await,
        Command::Soak(o) => soak::run(&o).await,
        Command::AccountingEvents { brokers, tasks } => popug::produce(&brokers, tasks).await,
        Command::Accounting {
            db,
            url,
            tasks,
            out,
        } => popug::applied(&db, &url, tasks, &out).await,
        Command::Analytics { urls, load } => {
            popug::analytics(&http(load.concurrency)?, &urls, &load).await
        }
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
