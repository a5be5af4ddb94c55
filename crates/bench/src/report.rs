//! Results: rows with optional goals, printed as a markdown table and
//! written as JSON.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::load::Scenario;

#[derive(Serialize, Deserialize)]
pub struct Report {
    pub service: String,
    pub machine: Machine,
    pub results: Vec<Row>,
}

#[derive(Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
}

#[derive(Serialize, Deserialize)]
pub struct Row {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub goal: Option<String>,
    pub ok: Option<bool>,
}

pub fn row(metric: &str, value: f64, unit: &str) -> Row {
    Row {
        metric: metric.to_owned(),
        value: (value * 1000.0).round() / 1000.0,
        unit: unit.to_owned(),
        goal: None,
        ok: None,
    }
}

pub fn with_goal(mut r: Row, goal: String, ok: bool) -> Row {
    r.goal = Some(goal);
    r.ok = Some(ok);
    r
}

/// Rate, p50, p99 and errors of a scenario, under the given metric names.
pub fn scenario_rows(rate: &str, p50: &str, p99: &str, errors: &str, s: &Scenario) -> [Row; 4] {
    [
        row(rate, s.per_second(), "1/s"),
        row(p50, s.quantile_ms(0.50), "ms"),
        row(p99, s.quantile_ms(0.99), "ms"),
        row(errors, s.errors as f64, "count"),
    ]
}

/// The cores this machine offers.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn cells(r: &Row) -> String {
    let ok = match r.ok {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    format!(
        "{} ({}) | {} | {} | {ok}",
        r.metric,
        r.unit,
        r.value,
        r.goal.as_deref().unwrap_or("-"),
    )
}

pub fn print_table(rows: &[Row]) {
    println!("| metric | value | goal | ok |");
    println!("|---|---:|---|---|");
    for r in rows {
        println!("| {} |", cells(r));
    }
}

/// One table over several reports, with a service column.
pub fn print_combined(reports: &[Report]) {
    println!("| service | metric | value | goal | ok |");
    println!("|---|---|---:|---|---|");
    for report in reports {
        for r in &report.results {
            println!("| {} | {} |", report.service, cells(r));
        }
    }
}

pub fn write_json(
    path: &PathBuf,
    service: &str,
    cores: usize,
    rows: Vec<Row>,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let report = Report {
        service: service.to_owned(),
        machine: Machine { cores },
        results: rows,
    };
    let mut bytes = serde_json::to_vec_pretty(&report)?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub fn read_json(path: &Path) -> anyhow::Result<Report> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// The values of `names` (counters without labels, 0 when absent) in the
/// `GET /metrics` text of the service at `url`.
pub async fn metric_counters(url: &str, names: &[&str]) -> anyhow::Result<Vec<f64>> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let counter = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(names.iter().map(|n| counter(n)).collect())
}
