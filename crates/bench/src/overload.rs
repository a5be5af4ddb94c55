//! Open-loop load, to see what a service does beyond its capacity.
//!
//! A closed loop (each worker waits for its answer before it sends again)
//! can never overload a service: it slows down with it. Here requests are
//! sent on a schedule, `rate` a second, whatever the answers, over a fixed
//! set of kept-alive connections that bounds the requests outstanding (so
//! that the client itself stays small). A scheduled request that finds
//! every connection busy for more than [`LATE`] is not sent and is counted
//! as such: the service then holds as many requests as there are
//! connections, which is overload whatever it answers.
//!
//! Latency is measured from when a request is written to when its answer
//! is read, so it holds every queue of the service (the socket, the HTTP
//! worker, admission, the handler's own); the client's wait for a free
//! connection is not in it but is seen as requests not sent.
//!
//! [`scenario`] runs a route at half its saturation rate (its unsaturated
//! p99) and at twice it, a second of each in turn, and makes the table's
//! rows: offered, sent and
//! admitted rates, the admitted requests' p99 and its ratio to the
//! unsaturated one (goal: at most 2), the 503s (each must carry
//! `Retry-After` and a problem+json body) and every other error (goal:
//! none).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::{
    report::{row, with_goal, Row},
    wire::Conn,
};

/// How late a scheduled request may still be sent.
pub const LATE: Duration = Duration::from_millis(10);

/// The goal: admitted requests' p99 under overload within this many times
/// the unsaturated p99.
pub const P99_RATIO_GOAL: f64 = 2.0;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// What one open-loop run measured.
pub struct OpenLoop {
    pub rate: f64,
    pub duration: Duration,
    pub scheduled: u64,
    pub sent: u64,
    /// Scheduled but not sent: every connection was busy.
    pub not_sent: u64,
    /// Latencies (µs) of the answers with the wanted status.
    pub admitted: Histogram<u64>,
    /// Latencies (µs) of the 503s.
    pub refused: Histogram<u64>,
    /// 503s without `Retry-After` or without a problem+json body.
    pub bad_refusals: u64,
    /// Answers by status, the wanted one included.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (timeout, reset, refused connection).
    pub failures: u64,
    pub first_failure: Option<String>,
}

impl OpenLoop {
    fn new(rate: f64, duration: Duration) -> Self {
        Self {
            rate,
            duration,
            scheduled: 0,
            sent: 0,
            not_sent: 0,
            admitted: histogram(),
            refused: histogram(),
            bad_refusals: 0,
            statuses: BTreeMap::new(),
            failures: 0,
            first_failure: None,
        }
    }

    fn merge(&mut self, o: OpenLoop) {
        self.sent += o.sent;
        self.not_sent += o.not_sent;
        self.admitted.add(&o.admitted).expect("equal bounds");
        self.refused.add(&o.refused).expect("equal bounds");
        self.bad_refusals += o.bad_refusals;
        for (s, n) in o.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.failures += o.failures;
        if self.first_failure.is_none() {
            self.first_failure = o.first_failure;
        }
    }

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    pub fn admitted_per_s(&self) -> f64 {
        self.per_second(self.admitted.len())
    }

    pub fn p99_ms(&self) -> f64 {
        self.admitted.value_at_quantile(0.99) as f64 / 1000.0
    }

    pub fn refused_p99_ms(&self) -> f64 {
        self.refused.value_at_quantile(0.99) as f64 / 1000.0
    }

    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Errors that are not a well-formed 503: other statuses, 503s without
    /// `Retry-After`, requests without an answer.
    pub fn other_errors(&self, want: u16) -> u64 {
        let other: u64 = self
            .statuses
            .iter()
            .filter(|(s, _)| **s != want && **s != 503)
            .map(|(_, n)| n)
            .sum();
        other + self.bad_refusals + self.failures
    }

    /// Every answer but the wanted status, and requests without one.
    pub fn errors(&self, want: u16) -> u64 {
        let other: u64 = self
            .statuses
            .iter()
            .filter(|(s, _)| **s != want)
            .map(|(_, n)| n)
            .sum();
        other + self.failures
    }

    fn describe(&self, name: &str) {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        eprintln!(
            "{name}: {:.0}/s scheduled, {:.0}/s sent, {} not sent, answers {{{}}}, \
             {} without an answer, {} 503s without Retry-After",
            self.rate,
            self.per_second(self.sent),
            self.not_sent,
            statuses.join(", "),
            self.failures,
            self.bad_refusals,
        );
        if let Some(e) = &self.first_failure {
            eprintln!("{name}: first request without an answer: {e}");
        }
    }
}

/// Opens `n` connections to `url` (so that no measured request pays for
/// one).
pub async fn connect(url: &str, n: usize) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let mut c = Conn::new(url);
        if let Err(e) = c.connect().await {
            eprintln!("open loop: {e}");
        }
        conns.push(c);
    }
    conns
}

/// Sends `request(i)` for the `i`-th scheduled request, `rate` a second
/// for `duration`, one at a time on each of `conns`; `want` is the status
/// of an admitted request. Answers what it measured and the connections.
pub async fn open_loop<F, B>(
    conns: Vec<Conn>,
    rate: f64,
    duration: Duration,
    want: u16,
    request: F,
) -> (OpenLoop, Vec<Conn>)
where
    F: Fn(u64) -> B + Clone + Send + 'static,
    B: AsRef<[u8]> + Send,
{
    let rate = rate.max(1.0);
    let scheduled = (rate * duration.as_secs_f64()) as u64;
    let interval_ns = 1e9 / rate;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(10);
    let running: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (next, request) = (Arc::clone(&next), request.clone());
            tokio::spawn(async move {
                let mut mine = OpenLoop::new(rate, duration);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= scheduled {
                        break;
                    }
                    let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
                    let now = Instant::now();
                    if due > now {
                        tokio::time::sleep_until(due.into()).await;
                    } else if now - due > LATE {
                        mine.not_sent += 1;
                        continue;
                    }
                    let bytes = request(i);
                    let sent = Instant::now();
                    mine.sent += 1;
                    let status = match conn.exchange(bytes.as_ref()).await {
                        Ok((status, _)) => status,
                        Err(e) => {
                            mine.failures += 1;
                            mine.first_failure.get_or_insert(e);
                            continue;
                        }
                    };
                    let us = u64::try_from(sent.elapsed().as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1);
                    *mine.statuses.entry(status).or_default() += 1;
                    if status == want {
                        mine.admitted.saturating_record(us);
                    } else if status == 503 {
                        mine.refused.saturating_record(us);
                        let meta = conn.last_meta();
                        if !(meta.retry_after && meta.problem) {
                            mine.bad_refusals += 1;
                        }
                    }
                }
                (mine, conn)
            })
        })
        .collect();
    let mut total = OpenLoop::new(rate, duration);
    total.scheduled = scheduled;
    let mut conns = Vec::with_capacity(running.len());
    for r in running {
        match r.await {
            Ok((mine, conn)) => {
                total.merge(mine);
                conns.push(conn);
            }
            Err(e) => {
                total.failures += 1;
                total
                    .first_failure
                    .get_or_insert(format!("worker failed: {e}"));
            }
        }
    }
    (total, conns)
}

/// How an overload scenario is run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The route's saturation throughput (a closed loop's rate).
    pub saturation: f64,
    /// Rounds of one second at half the rate and one at twice it.
    pub rounds: u32,
    /// Connections, the most requests outstanding.
    pub connections: usize,
    /// The status of an admitted request.
    pub want: u16,
}

/// One phase of a round.
const PHASE: Duration = Duration::from_secs(1);
/// The pause after each phase, for its queues to drain.
const SETTLE: Duration = Duration::from_millis(300);

/// Runs `request` in rounds of a second at half the saturation rate and a
/// second at twice it, and makes the rows named `<name>_...`. The two
/// loads alternate so that both meet whatever else the machine is doing
/// (other builds and tests share its two cores): a slow minute then
/// weighs on the reference and the overload alike.
pub async fn scenario<F, B>(url: &str, name: &str, plan: Plan, request: F) -> Vec<Row>
where
    F: Fn(u64) -> B + Clone + Send + 'static,
    B: AsRef<[u8]> + Send,
{
    let (half, twice) = (plan.saturation / 2.0, plan.saturation * 2.0);
    eprintln!(
        "{name}: {} rounds of {half:.0}/s then {twice:.0}/s, {} connections",
        plan.rounds, plan.connections
    );
    let mut conns = connect(url, plan.connections).await;
    let mut calm = OpenLoop::new(half, Duration::ZERO);
    let mut over = OpenLoop::new(twice, Duration::ZERO);
    for round in 0..u64::from(plan.rounds.max(1)) {
        for (phase, rate) in [(0, half), (1, twice)] {
            // Numbers of their own (event ids, say) for each phase.
            let base = (round * 2 + phase) << 32;
            let r = request.clone();
            let (measured, back) =
                open_loop(conns, rate, PHASE, plan.want, move |i| r(base + i)).await;
            conns = back;
            eprintln!(
                "  round {round}, {rate:.0}/s: sent {:.0}/s, {} not sent, p99 {:.2} ms, {} 503s",
                measured.per_second(measured.sent),
                measured.not_sent,
                measured.p99_ms(),
                measured.count(503),
            );
            let into = if phase == 0 { &mut calm } else { &mut over };
            into.duration += measured.duration;
            into.scheduled += measured.scheduled;
            into.merge(measured);
            tokio::time::sleep(SETTLE).await;
        }
    }
    calm.describe(&format!("{name} at half"));
    over.describe(&format!("{name} at twice"));
    rows(name, plan, &calm, &over)
}

fn rows(name: &str, plan: Plan, calm: &OpenLoop, over: &OpenLoop) -> Vec<Row> {
    let m = |what: &str| format!("{name}_{what}");
    let ratio = over.p99_ms() / calm.p99_ms().max(0.001);
    let other = over.other_errors(plan.want);
    let mut out = vec![
        row(&m("saturation_per_s"), plan.saturation, "1/s"),
        row(&m("unsaturated_per_s"), calm.admitted_per_s(), "1/s"),
        row(&m("unsaturated_p99_ms"), calm.p99_ms(), "ms"),
        row(
            &m("unsaturated_errors"),
            calm.errors(plan.want) as f64,
            "count",
        ),
        row(&m("offered_per_s"), over.rate, "1/s"),
        row(&m("sent_per_s"), over.per_second(over.sent), "1/s"),
        row(&m("admitted_per_s"), over.admitted_per_s(), "1/s"),
        row(&m("admitted_p99_ms"), over.p99_ms(), "ms"),
        with_goal(
            row(&m("p99_ratio"), ratio, "x unsaturated"),
            format!("<= {P99_RATIO_GOAL}"),
            ratio <= P99_RATIO_GOAL,
        ),
        row(&m("503"), over.count(503) as f64, "count"),
        row(&m("503_p99_ms"), over.refused_p99_ms(), "ms"),
        with_goal(
            row(&m("other_errors"), other as f64, "count"),
            "0 (only 503 with Retry-After)".to_owned(),
            other == 0,
        ),
        row(&m("not_sent"), over.not_sent as f64, "count"),
    ];
    for (status, n) in &over.statuses {
        if *status != plan.want && *status != 503 {
            out.push(row(&m(&format!("status_{status}")), *n as f64, "count"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// A server that answers every other request 503 (with Retry-After)
    /// and the rest 200, on any number of connections.
    async fn serve() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let n = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let n = Arc::clone(&n);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(k) = socket.read(&mut buf).await else {
                            return;
                        };
                        if k == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..k]);
                        while let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..i + 4);
                            let answer: &[u8] = if n
                                .fetch_add(1, Ordering::Relaxed)
                                .is_multiple_of(2)
                            {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                            } else {
                                b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
                                  content-type: application/problem+json\r\ncontent-length: 2\r\n\r\n{}"
                            };
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn an_open_loop_sends_on_schedule_and_sorts_the_answers() {
        let url = serve().await;
        let get = crate::wire::request("GET", &url, "/", &[], b"");
        let conns = connect(&url, 4).await;
        let (r, conns) = open_loop(conns, 500.0, Duration::from_millis(400), 200, move |_| {
            get.clone()
        })
        .await;
        assert_eq!(conns.len(), 4);
        assert_eq!(r.scheduled, 200);
        assert_eq!(r.sent + r.not_sent, 200);
        assert_eq!(r.count(200) + r.count(503), r.sent);
        assert!(r.count(503) > 0 && r.count(200) > 0);
        assert_eq!(r.other_errors(200), 0);
        assert_eq!(r.admitted.len(), r.count(200));
    }
}
