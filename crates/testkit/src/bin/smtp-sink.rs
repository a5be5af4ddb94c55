//! `cargo run -p testkit --bin smtp-sink`: the tests' SMTP sink
//! ([`testkit::SmtpSink`]) for development, on 127.0.0.1 port
//! `SMTP_SINK_PORT` (default 2525, the notifier's default `SMTP_PORT`).
//! It prints each message it accepts, and keeps nothing once stopped.

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = platform::config::parse_or("SMTP_SINK_PORT", 2525)?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let sink = testkit::SmtpSink::on(listener);
    println!("SMTP sink on 127.0.0.1:{}; Ctrl-C stops it", sink.port());
    let mut shown = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let messages = sink.messages();
        for m in &messages[shown..] {
            println!(
                "--- from {} to {}\n{}",
                m.from,
                m.recipients.join(", "),
                m.data
            );
        }
        shown = messages.len();
    }
}
