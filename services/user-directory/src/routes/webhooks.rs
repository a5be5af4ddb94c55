//! WorkOS webhooks: verified, stored once, acknowledged at once; applied
//! in the background (see `sync`).

use actix_web::{web, HttpRequest, HttpResponse};
use platform::db::with_conn;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::read_body;
use crate::{error::ApiError, state::AppState, store, sync};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/webhooks/workos", web::post().to(workos));
}

/// `POST /v1/webhooks/workos` (WorkOS, signed with the webhook secret):
/// `WorkOS-Signature: t=<unix ms>, v1=<hex HMAC-SHA256 of "<t>.<body>">`.
/// Unsigned, forged or stale: 401 and nothing stored. A valid event is
/// stored once by its id and answered 200 before it is applied.
async fn workos(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let secret = state
        .settings
        .webhook_secret
        .as_ref()
        .ok_or(ApiError::WebhooksDisabled)?;
    let body = read_body(payload, state.settings.common.max_body_bytes).await?;
    let header = req
        .headers()
        .get("workos-signature")
        .and_then(|v| v.to_str().ok());
    sync::verify_signature(
        header,
        &body,
        secret.expose_secret().as_bytes(),
        chrono::Utc::now().timestamp_millis(),
        state.settings.webhook_tolerance.as_millis() as i64,
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "webhook refused");
        ApiError::BadSignature(e.to_string())
    })?;
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the event is not JSON: {e}")))?;
    let id = event.get("id").and_then(Value::as_str).unwrap_or_default();
    let name = event
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if id.is_empty() || id.len() > 200 || name.is_empty() {
        return Err(ApiError::BadRequest(
            "the event needs an id and an event name".into(),
        ));
    }
    let (id, name) = (id.to_owned(), name.to_owned());
    let new = with_conn(&state.pool, move |c| {
        store::store_event(c, &id, &name, &event, "webhook").map_err(ApiError::from)
    })
    .await?;
    if new {
        state.events.notify_one();
    }
    Ok(HttpResponse::Ok().json(json!({"received": true, "duplicate": !new})))
}
