//! The operator's close (`close:accounting`): closes a business day that
//! has ended, as the daily loop would, and answers what it paid. A day
//! closed before is not paid again: the answer is what its close paid.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::{
    auth::{Caller, CloseAccounting},
    close,
    domain::parse_day,
    error::ApiError,
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/accounting/closes", web::post().to(run));
}

#[derive(Deserialize)]
struct CloseRequest {
    day: String,
}

/// `POST /v1/accounting/closes` `{"day": "YYYY-MM-DD"}`: 201 with the
/// payouts when this call closed the day, 200 with the earlier close's
/// when it had been closed.
async fn run(
    _caller: Caller<CloseAccounting>,
    state: web::Data<AppState>,
    body: web::Json<CloseRequest>,
) -> Result<HttpResponse, ApiError> {
    let day = parse_day("day", &body.day)?;
    if !state.calendar.has_ended(day) {
        return Err(ApiError::Unprocessable {
            slug: "day-not-ended",
            field: "day",
            detail: format!(
                "{day} has not ended yet in {}: only a past day can be closed",
                state.calendar.zone.name()
            ),
        });
    }
    let closed = close::close(&state.pool, &state.outbox, day).await?;
    Ok(if closed.newly_closed {
        HttpResponse::Created().json(closed)
    } else {
        HttpResponse::Ok().json(closed)
    })
}
