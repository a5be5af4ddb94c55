//! The most expensive task (the highest completion reward paid) of each
//! day, week or month of a range, from each business day's highest reward.

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use platform::db::with_conn;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::{Caller, ReadAnalytics},
    domain::{DayRange, Period},
    error::ApiError,
    state::AppState,
    store::{self, TopReward},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/analytics/tasks/most-expensive",
        web::get().to(most_expensive),
    );
}

#[derive(Deserialize)]
struct Query {
    period: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
struct Report {
    period: &'static str,
    from: NaiveDate,
    to: NaiveDate,
    periods: Vec<Bucket>,
}

/// One period of the range; `task` is null when no reward was paid in it.
#[derive(Serialize)]
struct Bucket {
    /// The period's first and last day (a week runs Monday to Sunday);
    /// only the days inside the range count.
    start: NaiveDate,
    end: NaiveDate,
    task: Option<Expensive>,
}

#[derive(Serialize)]
struct Expensive {
    id: Option<Uuid>,
    /// Null until the task's events have been applied.
    title: Option<String>,
    reward_cents: i64,
    /// The business day it was paid.
    paid_on: NaiveDate,
}

/// Each period's highest reward; on a tie, the earlier day's.
fn buckets(period: Period, range: DayRange, days: Vec<TopReward>) -> Vec<Bucket> {
    let mut days = days.into_iter().peekable();
    period
        .starts(range)
        .into_iter()
        .map(|start| {
            let end = period.end_of(start);
            let mut best: Option<TopReward> = None;
            while let Some(d) = days.next_if(|d| d.day <= end) {
                if best
                    .as_ref()
                    .is_none_or(|b| d.amount_cents > b.amount_cents)
                {
                    best = Some(d);
                }
            }
            Bucket {
                start,
                end,
                task: best.map(|b| Expensive {
                    id: b.task_id,
                    title: b.title,
                    reward_cents: b.amount_cents,
                    paid_on: b.day,
                }),
            }
        })
        .collect()
}

/// `GET /v1/analytics/tasks/most-expensive?period=day|week|month&from=YYYY-MM-DD&to=YYYY-MM-DD`
/// (by default `day` and the 30 days up to today).
async fn most_expensive(
    _caller: Caller<ReadAnalytics>,
    state: web::Data<AppState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let period = Period::parse(query.period.as_deref())?;
    let range = DayRange::parse(query.from.as_deref(), query.to.as_deref(), state.today())?;
    let days = with_conn(&state.pool, move |c| {
        store::top_rewards(c, range.from, range.to).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Report {
        period: period.name(),
        from: range.from,
        to: range.to,
        periods: buckets(period, range, days),
    }))
}
