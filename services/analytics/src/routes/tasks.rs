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
    store::{self, PeriodTop},
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

impl From<PeriodTop> for Bucket {
    fn from(p: PeriodTop) -> Self {
        Bucket {
            start: p.start,
            end: p.end,
            task: p.best.map(|b| Expensive {
                id: b.task_id,
                title: b.title,
                reward_cents: b.amount_cents,
                paid_on: b.day,
            }),
        }
    }
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
    let periods = with_conn(&state.pool, move |c| {
        store::most_expensive(c, period, range).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Report {
        period: period.name(),
        from: range.from,
        to: range.to,
        periods: periods.into_iter().map(Bucket::from).collect(),
    }))
}
