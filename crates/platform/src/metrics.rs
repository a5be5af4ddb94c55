//! A small Prometheus registry: request counts and latency histograms by
//! route, plus named gauges and counters that services set. Rendered in the
//! text exposition format at `GET /metrics`.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{Mutex, OnceLock},
    time::Duration,
};

const BUCKETS_SECONDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS_SECONDS.len()],
    count: u64,
    sum_seconds: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
    counters: BTreeMap<(&'static str, String), u64>,
    gauges: BTreeMap<&'static str, f64>,
    help: BTreeMap<&'static str, &'static str>,
}

pub struct Registry {
    service: OnceLock<String>,
    inner: Mutex<Inner>,
}

static GLOBAL: OnceLock<Registry> = OnceLock::new();

pub fn global() -> &'static Registry {
    GLOBAL.get_or_init(|| Registry {
        service: OnceLock::new(),
        inner: Mutex::new(Inner::default()),
    })
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Registry {
    pub fn set_service(&self, name: &str) {
        let _ = self.service.set(name.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut inner = self.lock();
        *inner
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let h = inner
            .latency
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        h.count += 1;
        h.sum_seconds += secs;
        for (i, b) in BUCKETS_SECONDS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
    }

    /// Adds `by` to the counter `name{label="value"}` (label may be empty).
    pub fn count(&self, name: &'static str, help: &'static str, label: &str, by: u64) {
        let mut inner = self.lock();
        inner.help.insert(name, help);
        *inner.counters.entry((name, label.to_owned())).or_default() += by;
    }

    pub fn gauge(&self, name: &'static str, help: &'static str, value: f64) {
        let mut inner = self.lock();
        inner.help.insert(name, help);
        inner.gauges.insert(name, value);
    }

    pub fn render(&self) -> String {
        let inner = self.lock();
        let service = self.service.get().map(String::as_str).unwrap_or("unknown");
        let mut out = String::new();
        let _ = writeln!(out, "# HELP http_requests_total HTTP requests served.");
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        for ((m, r, s), n) in &inner.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{service=\"{service}\",method=\"{}\",route=\"{}\",status=\"{s}\"}} {n}",
                escape(m),
                escape(r)
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds Time to serve a request."
        );
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        for ((m, r), h) in &inner.latency {
            let labels = format!(
                "service=\"{service}\",method=\"{}\",route=\"{}\"",
                escape(m),
                escape(r)
            );
            for (i, b) in BUCKETS_SECONDS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum_seconds
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let mut last = "";
        for ((name, label), n) in &inner.counters {
            if *name != last {
                let help = inner.help.get(name).copied().unwrap_or("");
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                last = name;
            }
            if label.is_empty() {
                let _ = writeln!(out, "{name}{{service=\"{service}\"}} {n}");
            } else {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{service}\",kind=\"{}\"}} {n}",
                    escape(label)
                );
            }
        }
        for (name, v) in &inner.gauges {
            let help = inner.help.get(name).copied().unwrap_or("");
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{service=\"{service}\"}} {v}"
            );
        }
        out
    }
}
