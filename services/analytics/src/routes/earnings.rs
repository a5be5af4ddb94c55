//! Management's earnings today: fees collected minus rewards paid on
//! today's business day (the transactions' own `business_day`).

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use platform::db::with_conn;
use serde::Serialize;

use crate::{
    auth::{Caller, ReadAnalytics},
    error::ApiError,
    state::AppState,
    store,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/analytics/earnings/today", web::get().to(today));
}

#[derive(Serialize)]
struct Today {
    day: NaiveDate,
    time_zone: String,
    fees_cents: i64,
    rewards_cents: i64,
    /// Fees collected minus rewards paid.
    earnings_cents: i64,
}

/// `GET /v1/analytics/earnings/today`.
async fn today(
    _caller: Caller<ReadAnalytics>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let day = state.today();
    let (fees_cents, rewards_cents) = with_conn(&state.pool, move |c| {
        store::earnings_of(c, day).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Today {
        day,
        time_zone: state.zone.name().to_owned(),
        fees_cents,
        rewards_cents,
        earnings_cents: fees_cents - rewards_cents,
    }))
}
