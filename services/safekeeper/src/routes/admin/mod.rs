//! The admin API: clients (`admin:client`), roles, permissions, scopes and
//! user-role grants (`admin:rbac`), finding users and reading their roles
//! (`admin:user`). Every route needs a PERSON's access token (from a
//! session, not client credentials) carrying its scope, held by a user who
//! still has it: a client's own token never administers anything here.

mod catalogue;
mod clients;
mod users;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web,
};

use crate::state::AppState;

/// Middleware: every successful administrative change empties this
/// replica's client cache, whatever it touched (a client, a scope, a role).
pub async fn forget_cached_clients(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let changes = req.method() != Method::GET && req.path().starts_with("/v1/admin/");
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if changes && res.status().is_success() {
        if let Some(state) = state {
            state.clients.clear();
        }
    }
    Ok(res)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    clients::configure(cfg);
    catalogue::configure(cfg);
    users::configure(cfg);
}
