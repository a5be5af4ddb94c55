//! HTTP routes. Each module registers its own.

mod admin_refresh;
mod orgs;
mod users;
mod webhooks;

use actix_web::{http::header, web, HttpResponse};
use futures::StreamExt;

use crate::{error::ApiError, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    orgs::configure(cfg);
    admin_refresh::configure(cfg);
    users::configure(cfg);
    webhooks::configure(cfg);
    cfg.route("/.well-known/jwks.json", web::get().to(jwks));
}

/// `GET /.well-known/jwks.json` (anyone): the keys that verify the
/// organization admins' tokens.
async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.keys.jwks())
}

/// Reads a raw body up to `limit` bytes (413 naming the limit beyond).
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge {
                detail: format!("the body may hold at most {limit} bytes"),
                limit_name: "limit_bytes",
                limit,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
