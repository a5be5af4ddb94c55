//! Management's earnings (`su_read:accounting`): fees collected minus
//! rewards paid, per business day in the close's time zone.

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use platform::db::with_conn;
use serde::{Deserialize, Serialize};

use crate::{
    auth::{Caller, SuReadAccounting},
    domain::DayRange,
    error::ApiError,
    state::AppState,
    store,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/accounting/earnings/today", web::get().to(today))
        .route("/v1/accounting/earnings", web::get().to(history));
}

#[derive(Serialize)]
struct Day {
    day: NaiveDate,
    fees_cents: i64,
    rewards_cents: i64,
    /// Fees collected minus rewards paid.
    earnings_cents: i64,
}

impl Day {
    fn new(day: NaiveDate, fees_cents: i64, rewards_cents: i64) -> Self {
        Self {
            day,
            fees_cents,
            rewards_cents,
            earnings_cents: fees_cents - rewards_cents,
        }
    }
}

/// Every day of `range`, days without entries as zeros.
async fn days(state: &AppState, range: DayRange) -> Result<Vec<Day>, ApiError> {
    let totals = with_conn(&state.pool, move |c| {
        store::day_totals(c, range.from, range.to).map_err(ApiError::from)
    })
    .await?;
    let mut totals = totals.into_iter().peekable();
    Ok(range
        .days()
        .map(|d| match totals.next_if(|t| t.day == d) {
            Some(t) => Day::new(d, t.fees_cents, t.rewards_cents),
            None => Day::new(d, 0, 0),
        })
        .collect())
}

#[derive(Serialize)]
struct Today {
    time_zone: String,
    #[serde(flatten)]
    day: Day,
}

/// `GET /v1/accounting/earnings/today`.
async fn today(
    _caller: Caller<SuReadAccounting>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let today = state.calendar.today();
    let range = DayRange {
        from: today,
        to: today,
    };
    let day = days(&state, range)
        .await?
        .pop()
        .unwrap_or_else(|| Day::new(today, 0, 0));
    Ok(HttpResponse::Ok().json(Today {
        time_zone: state.calendar.zone.name().to_owned(),
        day,
    }))
}

#[derive(Deserialize)]
struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
struct History {
    time_zone: String,
    from: NaiveDate,
    to: NaiveDate,
    days: Vec<Day>,
    total: Totals,
}

#[derive(Serialize)]
struct Totals {
    fees_cents: i64,
    rewards_cents: i64,
    earnings_cents: i64,
}

/// `GET /v1/accounting/earnings?from=YYYY-MM-DD&to=YYYY-MM-DD`: each day of
/// the range (by default the 30 days up to today).
async fn history(
    _caller: Caller<SuReadAccounting>,
    state: web::Data<AppState>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let range = DayRange::parse(
        query.from.as_deref(),
        query.to.as_deref(),
        state.calendar.today(),
    )?;
    let days = days(&state, range).await?;
    let total = Totals {
        fees_cents: days.iter().map(|d| d.fees_cents).sum(),
        rewards_cents: days.iter().map(|d| d.rewards_cents).sum(),
        earnings_cents: days.iter().map(|d| d.earnings_cents).sum(),
    };
    Ok(HttpResponse::Ok().json(History {
        time_zone: state.calendar.zone.name().to_owned(),
        from: range.from,
        to: range.to,
        days,
        total,
    }))
}
