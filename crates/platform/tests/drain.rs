//! SIGTERM drains before the stop: for the drain, the server keeps
//! answering, `/readyz` says `draining` (503) and every response closes its
//! connection; then it stops accepting, finishes what is in flight and
//! returns. Clients opening connection after connection all along see each
//! request answered, or the connection refused once the server stopped
//! accepting, and never one broken off. A test binary of its own: the
//! signal goes to the whole process.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix_web::{middleware::from_fn, web, App, HttpResponse, HttpServer};
use platform::{
    config::CommonConfig,
    db,
    server::{self, Probe},
};
use testkit::TestDatabase;

const DRAIN: Duration = Duration::from_millis(1500);

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    HttpResponse::Ok().body("finished")
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/slow", web::get().to(slow));
}

#[actix_web::test]
async fn sigterm_drains_then_finishes_what_is_in_flight_and_stops() {
    let database = TestDatabase::create("drain");
    let pool = db::build_pool(&database.url, 2, Duration::from_secs(2)).expect("pool");
    // Nothing listens there: /readyz says the broker is unavailable until
    // the drain, when it says draining instead.
    let probe = Probe {
        pool,
        producer: platform::events::producer("127.0.0.1:9").expect("producer"),
    };
    let common = CommonConfig::from_env("drain-test", 0, "unused").expect("defaults");
    let (listener, port) = server::bind("127.0.0.1", 0).expect("bind");
    server::close_doors_at_stop(&listener).expect("door");
    let app = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(server::close_when_draining))
            .configure(server::configure(probe.clone(), "{}", 1024))
            .configure(routes)
    });
    let running = platform::with_limits!(app, &common, 1)
        .listen(listener)
        .expect("listen")
        .run();
    let served = tokio::spawn(server::serve(running, DRAIN));
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let knocking = Arc::new(AtomicBool::new(true));
    let knockers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(knock(port, knocking.clone())))
        .collect();

    let before = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(before.status(), 200);
    assert_ne!(connection(&before), "close", "kept alive before the signal");
    // With a listener of tokio's installed, SIGTERM is handled, not fatal
    // to the test process (the server's own is installed by now as well).
    let _handled = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal listener");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let ready = client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "draining");
    let during = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz while draining");
    assert_eq!(during.status(), 200, "still served while draining");
    assert_eq!(
        connection(&during),
        "close",
        "each response closes its connection"
    );

    // Sent before the drain ends, answered after the listener closed.
    let in_flight = tokio::spawn({
        let client = reqwest::Client::new();
        let url = format!("{url}/slow");
        async move { client.get(url).send().await?.text().await }
    });
    tokio::time::sleep(DRAIN.saturating_sub(signalled.elapsed()) + Duration::from_millis(300))
        .await;
    let refused = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "no new connection after the drain: {refused:?}"
    );
    assert_eq!(
        in_flight.await.expect("join").expect("the slow request"),
        "finished"
    );

    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("stopped")
        .expect("join")
        .expect("server");
    assert!(signalled.elapsed() >= DRAIN, "not before the drain ended");

    knocking.store(false, Ordering::Relaxed);
    let mut seen = Knocks::default();
    for knocker in knockers {
        let k = knocker.await.expect("join");
        seen.answered += k.answered;
        seen.refused += k.refused;
        seen.broken.extend(k.broken);
    }
    assert!(seen.answered > 0 && seen.refused > 0, "{seen:?}");
    assert!(
        seen.broken.is_empty(),
        "requests broken off at the stop: {:?}",
        seen.broken
    );
}

#[derive(Debug, Default)]
struct Knocks {
    answered: usize,
    refused: usize,
    broken: Vec<String>,
}

/// Opens connection after connection, one request each, until told to
/// stop, and counts how each went.
async fn knock(port: u16, knocking: Arc<AtomicBool>) -> Knocks {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut k = Knocks::default();
    while knocking.load(Ordering::Relaxed) {
        let mut stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                k.refused += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => {
                k.broken.push(format!("connect: {e}"));
                continue;
            }
        };
        let mut response = Vec::new();
        let outcome = async {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await?;
            stream.read_to_end(&mut response).await
        }
        .await;
        match outcome {
            Ok(_) if response.starts_with(b"HTTP/1.1 200") => k.answered += 1,
            Ok(_) => k.broken.push(format!(
                "answer: {:?}",
                String::from_utf8_lossy(&response[..response.len().min(40)])
            )),
            Err(e) => k.broken.push(format!("request: {e}")),
        }
    }
    k
}

fn connection(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("connection")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}
