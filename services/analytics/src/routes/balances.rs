//! How many workers owe money: accounts whose latest balance is negative.

use actix_web::{web, HttpResponse};
use platform::db::with_conn;
use serde::Serialize;

use crate::{
    auth::{Caller, ReadAnalytics},
    error::ApiError,
    state::AppState,
    store,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/analytics/workers/negative-balance",
        web::get().to(negative),
    );
}

#[derive(Serialize)]
struct Negative {
    /// Workers whose balance after their latest transaction is below zero.
    count: i64,
}

/// `GET /v1/analytics/workers/negative-balance`.
async fn negative(
    _caller: Caller<ReadAnalytics>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let count = with_conn(&state.pool, |c| {
        store::negative_balances(c).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Negative { count }))
}
