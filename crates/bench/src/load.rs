//! Driving load: workers sending requests back to back, their latencies in
//! a histogram, and the errors they met.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use reqwest::{header::HeaderMap, RequestBuilder, StatusCode};

/// What one scenario measured: successes, their latencies, and errors.
pub struct Scenario {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latencies of the successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Scenario {
    pub fn new() -> Self {
        Self {
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    pub fn record(&mut self, outcome: Result<(), String>, took: Duration) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(us.max(1));
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Adds `other`'s counts, latencies and elapsed time (runs one after
    /// the other add up; workers of one run carry no elapsed time).
    pub fn merge(&mut self, other: Scenario) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with equal bounds merge");
    }

    pub fn per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }

    pub fn report_first_error(&self, name: &str) {
        if let Some(e) = &self.first_error {
            eprintln!("{name}: {} errors, the first: {e}", self.errors);
        }
    }
}

/// Sends a request, reads the whole body (so the connection goes back to the
/// pool) and fails unless the status is `want`; returns headers and body.
pub async fn fetch(
    request: RequestBuilder,
    want: StatusCode,
) -> Result<(HeaderMap, Vec<u8>), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status == want {
        Ok((headers, body.to_vec()))
    } else {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Err(format!("{status}: {shown}"))
    }
}

/// [`fetch`], keeping only whether it succeeded.
pub async fn expect(request: RequestBuilder, want: StatusCode) -> Result<(), String> {
    fetch(request, want).await.map(drop)
}

/// Runs `concurrency` workers, each sending `request(worker, iteration)`
/// back to back until `duration` has passed or `request` answers `None`
/// (no more work).
pub async fn drive<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Scenario
where
    F: Fn(usize, u64) -> Option<Fut> + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let deadline = Instant::now() + duration;
    workers(concurrency, move |worker| {
        let request = request.clone();
        async move {
            let mut mine = Scenario::new();
            let mut iteration = 0;
            while Instant::now() < deadline {
                let Some(work) = request(worker, iteration) else {
                    break;
                };
                let sent = Instant::now();
                let outcome = work.await;
                mine.record(outcome, sent.elapsed());
                iteration += 1;
            }
            mine
        }
    })
    .await
}

/// Runs `worker(i)` for `i` in `0..concurrency` as tasks and adds up what
/// they measured, over the time they took together.
pub async fn workers<F, Fut>(concurrency: usize, worker: F) -> Scenario
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Scenario> + Send + 'static,
{
    let start = Instant::now();
    let running: Vec<_> = (0..concurrency).map(|w| tokio::spawn(worker(w))).collect();
    let mut total = Scenario::new();
    for worker in running {
        match worker.await {
            Ok(mine) => total.merge(mine),
            Err(e) => total.record(Err(format!("worker failed: {e}")), Duration::ZERO),
        }
    }
    total.elapsed = start.elapsed();
    total
}
