//! `cargo run --release -p user-directory --example bench -- [--rows N]
//! [--seconds S] [--out FILE]`: starts an authenticator, a safekeeper and
//! the directory in this process (fresh databases, the local broker) and
//! measures bulk import with pre-hashed passwords (users/s), webhook
//! verify-and-acknowledge latency (p99), and `GET /v1/users/{id}` per
//! second. Goals: >= 1,000 users/s, p99 < 20 ms, >= 10,000 reads/s.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use secrecy::SecretString;
use serde_json::{json, Value};
use testkit::user_directory as testing;
use testkit::TestDatabase;
use user_directory::config::ProviderSettings;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn sign(secret: &str, t: i64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t}, v1={}", hex::encode(tag.as_ref()))
}

/// The authenticator as production runs it (its default pool of 16
/// connections; the test helper's 4 would be the import's bottleneck), on
/// a free port, with the superuser `root`.
async fn spawn_authenticator(
    brokers: &str,
    db: &TestDatabase,
    sk_port: u16,
) -> anyhow::Result<(Authenticator, testkit::TempDir)> {
    let dir = testkit::TempDir::new("ud-bench-auth");
    let mut s = authenticator::config::Settings::from_env()?;
    s.common.port = 0;
    s.common.database_url = db.url.clone();
    s.common.kafka_brokers = brokers.to_owned();
    s.common.state_dir = dir.0.clone();
    s.issuer = "http://127.0.0.1:5000".into();
    s.hashing.cost = 4;
    s.outbox_poll = Duration::from_millis(100);
    s.require_signing_key = false;
    s.signing_key_pem = None;
    s.safekeeper_issuer = "http://127.0.0.1:5001".into();
    s.safekeeper_url = format!("http://127.0.0.1:{sk_port}");
    s.bootstrap_admin = Some(authenticator::config::BootstrapAdmin {
        username: testkit::authenticator::ROOT_USER.into(),
        email: "root@example.com".into(),
        password: SecretString::from(testkit::authenticator::ROOT_PASSWORD.to_owned()),
    });
    let app = authenticator::startup::Application::build(s).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok((Authenticator { address }, dir))
}

struct Authenticator {
    address: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: usize = arg("--rows", "3000").parse()?;
    let seconds: u64 = arg("--seconds", "5").parse()?;
    let out = arg("--out", "target/bench/user-directory.json");
    let brokers = testkit::shared_brokers();
    let (auth_db, sk_db, ud_db) = (
        testkit::authenticator::database(),
        testkit::safekeeper::database(),
        testkit::user_directory::database(),
    );
    let sk_listener = testkit::listener();
    let (auth, _auth_dir) = spawn_authenticator(&brokers, &auth_db, sk_listener.port()).await?;
    let mut so = testkit::safekeeper::Options::new(brokers.clone(), &sk_db, &auth.address);
    so.listener = sk_listener;
    let sk = testkit::safekeeper::spawn(so).await;
    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("{}/v1/login", auth.address))
        .json(&json!({"username": testkit::authenticator::ROOT_USER, "password": testkit::authenticator::ROOT_PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let session = session["session_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let admin = loop {
        let r = http
            .post(format!("{}/v1/authorize", sk.address))
            .bearer_auth(&session)
            .json(&json!({"scopes": "admin:client"}))
            .send()
            .await?;
        if r.status().is_success() {
            break r.json::<Value>().await?["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the safekeeper never granted admin"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secret = "bench-directory-secret-0123456789";
    http.post(format!("{}/v1/admin/clients", sk.address))
        .bearer_auth(&admin)
        .json(
            &json!({"client_id": "user-directory-bench", "name": "Bench", "client_secret": secret,
                      "grant_types": ["client_credentials"], "scopes": ["provision:user", "login:relay"]}),
        )
        .send()
        .await?
        .error_for_status()?;
    let dir = testkit::TempDir::new("ud-bench");
    let config = dir.0.join("directory.toml");
    std::fs::write(
        &config,
        "roles = [\"member\"]\n[[organizations]]\nname = \"bench\"\n",
    )?;
    let mut o = testing::Options::new(
        brokers,
        &ud_db,
        ProviderSettings::Authenticator {
            authenticator_url: auth.address.clone(),
            safekeeper_url: sk.address.clone(),
            client_id: "user-directory-bench".into(),
            client_secret: SecretString::from(secret.to_owned()),
        },
        config,
    );
    o.webhook_secret = Some("whsec_bench".into());
    o.import_sync_rows = rows;
    o.import_max_rows = rows;
    o.import_max_bytes = 64 * 1024 * 1024;
    let ud = testing::spawn(o).await;
    let base = ud.address.clone();
    let r = http
        .post(format!("{base}/org/create"))
        // "bench" is named in the directory's file: the operators' to create.
        .bearer_auth(testing::BOOTSTRAP_TOKEN)
        .json(&json!({"organization_name": "bench", "email": "admin@bench.example", "password": "Bench-Passw0rd!"}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "org create: {}", r.text().await?);
    let login: Value = http
        .post(format!("{base}/admin/login"))
        .json(&json!({"email": "admin@bench.example", "password": "Bench-Passw0rd!"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // 1. Bulk import with pre-hashed passwords.
    eprintln!("importing {rows} users with pre-hashed passwords");
    let hash = bcrypt::hash("Imported-Passw0rd!", 10)?;
    let body: Vec<Value> = (0..rows)
        .map(|i| json!({"email": format!("user{i}@bench.example"), "first_name": "Bench", "last_name": format!("{i}"),
                        "organization": "bench", "role": "member", "password_hash": hash, "password_hash_type": "bcrypt"}))
        .collect();
    let started = Instant::now();
    let r: Value = http
        .post(format!("{base}/v1/users/import"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let import_secs = started.elapsed().as_secs_f64();
    let created = r["created"].as_u64().unwrap_or(0);
    let import_rate = created as f64 / import_secs;

    // 2. Webhook verify-and-acknowledge latency.
    eprintln!("2,000 signed webhooks, one after the other");
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    for i in 0..2000 {
        let body = json!({"id": format!("event_bench_{i}"), "event": "user.updated",
            "data": {"id": format!("user_bench_{i}"), "email": format!("w{i}@bench.example"), "updated_at": "2026-01-01T00:00:00Z"}})
        .to_string();
        let sig = sign("whsec_bench", chrono::Utc::now().timestamp_millis(), &body);
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/webhooks/workos"))
            .header("WorkOS-Signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "webhook answered {}", r.status());
        hist.record(t.elapsed().as_micros() as u64)?;
    }
    let p99_ms = hist.value_at_quantile(0.99) as f64 / 1000.0;

    // The directory applies the acknowledged webhooks in the background;
    // let it finish, or the reads below would be measured beside it.
    let backlog_since = Instant::now();
    let url = ud_db.url.clone();
    // Polled on the blocking pool: the services share this runtime.
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Backlog {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut c = <diesel::PgConnection as diesel::Connection>::establish(&url)?;
        loop {
            let b: Backlog = diesel::sql_query(
                "SELECT count(*) AS n FROM provider_events WHERE applied_at IS NULL",
            )
            .get_result(&mut c)?;
            if b.n == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                backlog_since.elapsed() < Duration::from_secs(120),
                "{} webhook events still unapplied after 120 s",
                b.n
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await??;
    eprintln!(
        "the webhooks' background work finished {:.1} s after the last acknowledgement",
        backlog_since.elapsed().as_secs_f64()
    );

    // 3. GET /v1/users/{id}.
    let ids: Vec<String> = r["rows"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(!ids.is_empty(), "no users to read");
    eprintln!("GET /v1/users/{{id}}: 32 workers for {seconds} s");
    let ids = Arc::new(ids);
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..32 {
        let (http, ids, count, errors, token, base) = (
            http.clone(),
            ids.clone(),
            count.clone(),
            errors.clone(),
            token.clone(),
            base.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < until {
                let id = &ids[n % ids.len()];
                n += 32;
                match http
                    .get(format!("{base}/v1/users/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let reads = count.load(Ordering::Relaxed) as f64 / seconds as f64;

    let results = json!([
        {"metric": "user-directory import (pre-hashed, authenticator)", "value": import_rate, "unit": "users/s", "goal": ">= 1000", "ok": import_rate >= 1000.0,
         "created": created, "rows": rows},
        {"metric": "user-directory webhook verify+ack p99", "value": p99_ms, "unit": "ms", "goal": "< 20", "ok": p99_ms < 20.0},
        {"metric": "user-directory GET /v1/users/{id}", "value": reads, "unit": "req/s", "goal": ">= 10000", "ok": reads >= 10000.0,
         "errors": errors.load(Ordering::Relaxed)},
    ]);
    println!(
        "{:<52} {:>12} {:<8} {:>10}",
        "metric", "value", "unit", "goal"
    );
    for r in results.as_array().into_iter().flatten() {
        println!(
            "{:<52} {:>12.1} {:<8} {:>10} {}",
            r["metric"].as_str().unwrap_or_default(),
            r["value"].as_f64().unwrap_or_default(),
            r["unit"].as_str().unwrap_or_default(),
            r["goal"].as_str().unwrap_or_default(),
            if r["ok"] == true { "ok" } else { "MISSED" }
        );
    }
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &out,
        serde_json::to_string_pretty(
            &json!({"cores": std::thread::available_parallelism().map(usize::from).unwrap_or(1), "results": results}),
        )?,
    )?;
    println!("results written to {out}");
    drop((auth, sk, ud));
    Ok(())
}
