//! The User Access Management design's API: events in, can-message and can-purchase checks out.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use platform::db::with_conn;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    auth::{self, Producer},
    domain::{Capability, Event, UserId},
    error::ApiError,
    state::AppState,
    store::{self, EventResult},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/event", web::post().to(post_event))
        .route("/canmessage", web::get().to(can_message))
        .route("/canpurchase", web::get().to(can_purchase));
}

/// `POST /event` (a producer: an access token with `write:event`, within
/// its rate, else 429 and nothing changes). Applies `{"name", "event_properties": {"user_id", ...}, "event_id"?}`
/// and answers 200 only once the event and its effect are committed. An
/// event resent with the same `event_id` answers its first outcome and
/// changes nothing; the same id with a different event answers 409.
async fn post_event(
    state: web::Data<AppState>,
    producer: Producer,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .producers
        .take(&producer.client_id)
        .map_err(ApiError::TooManyEvents)?;
    let event = Event::parse(&body)?;
    let user_id = event.user_id.clone();
    let cfg = state.settings.rules;
    let result = match &state.writers {
        Some(w) => w.submit(event).await?,
        None => {
            with_conn(&state.pool, move |c| {
                store::apply_event(c, &event, &cfg).map_err(ApiError::from)
            })
            .await?
        }
    };
    match result {
        EventResult::Applied {
            mut outcome,
            restricted,
            changed,
        } => {
            if changed {
                state.cache.invalidate(user_id.as_str());
                state.outbox.nudge();
            }
            let mut tripped = Vec::new();
            for rule in restricted {
                // The event is committed: a failed check is logged and made
                // up for by the next one, not reported as a failed event.
                match state.tripwire.after_restriction(rule).await {
                    Ok(true) => tripped.push(rule),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(rule = %rule, error = %platform::problem::chain(&e), "tripwire check failed")
                    }
                }
            }
            outcome["tripped"] = json!(tripped);
            outcome["replayed"] = json!(false);
            Ok(HttpResponse::Ok().json(outcome))
        }
        EventResult::Replayed { mut outcome } => {
            outcome["tripped"] = json!([]);
            outcome["replayed"] = json!(true);
            Ok(HttpResponse::Ok().json(outcome))
        }
        EventResult::Reused => Err(ApiError::EventIdReused(
            body.get("event_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )),
    }
}

#[derive(Deserialize)]
struct CheckQuery {
    user_id: Option<String>,
}

async fn allows(state: &AppState, q: CheckQuery, what: Capability) -> Result<bool, ApiError> {
    let raw = q
        .user_id
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::BadRequest("the query parameter user_id is required".into()))?;
    let user_id = UserId::parse(&raw).map_err(|e| ApiError::BadRequest(e.message))?;
    let r = match state.cache.get(user_id.as_str()) {
        Some(r) => r,
        None => {
            let generation = state.cache.generation(user_id.as_str());
            let id = user_id.clone();
            let r = with_conn(&state.pool, move |c| {
                store::restrictions(c, &id).map_err(ApiError::from)
            })
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user {raw:?} has been seen")))?;
            if let Some(g) = generation {
                state.cache.fill(user_id.as_str(), g, r);
            }
            r
        }
    };
    let now = Utc::now();
    Ok(r.allows(what, |rule| state.suspensions.is_suspended(rule, now)))
}

/// `GET /canmessage?user_id=` (anyone, or `read:restriction` with
/// `REQUIRE_READ_TOKEN`): `{"can_message": bool}`; 400 without
/// user_id, 404 for a user never seen.
async fn can_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    auth::reader(&req, &state).await?;
    let ok = allows(&state, q.into_inner(), Capability::Message).await?;
    Ok(answer(if ok {
        r#"{"can_message":true}"#
    } else {
        r#"{"can_message":false}"#
    }))
}

/// `GET /canpurchase?user_id=` (anyone, or `read:restriction` with
/// `REQUIRE_READ_TOKEN`): `{"can_purchase": bool}`; 400
/// without user_id, 404 for a user never seen.
async fn can_purchase(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    auth::reader(&req, &state).await?;
    let ok = allows(&state, q.into_inner(), Capability::Purchase).await?;
    Ok(answer(if ok {
        r#"{"can_purchase":true}"#
    } else {
        r#"{"can_purchase":false}"#
    }))
}

/// A check's answer: a constant body, nothing to serialize.
fn answer(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}
