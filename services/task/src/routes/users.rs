//! A window on the users read model, for operators and for measuring how
//! fast account and grant changes arrive.

use actix_web::{web, HttpResponse};
use platform::db::with_conn;
use uuid::Uuid;

use crate::{
    auth::{Reader, SuReadTask},
    error::ApiError,
    state::AppState,
    store,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{id}", web::get().to(get));
}

/// `GET /v1/users/{id}` (`su_read:task`): the account as the task service
/// knows it: username, active, roles, scopes and the version applied from
/// each topic.
async fn get(
    _caller: Reader<SuReadTask>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user = with_conn(&state.pool, move |c| {
        store::user(c, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no user {id} in the read model")))?;
    Ok(HttpResponse::Ok().json(user))
}
