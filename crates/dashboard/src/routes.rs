//! The routes every dashboard serves besides its own page: `GET /` (the
//! landing page), `GET /dashboard/signin`, `GET /dashboard/callback` and
//! `POST /dashboard/signout`, for a service whose state is a [`Host`]. The
//! service adds `GET /dashboard`, its page.

use std::collections::HashMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use platform::{
    db::{with_conn, PgPool},
    jwt::Verifier,
    revocation::Revocations,
};
use resource_server::users::{user, User};
use uuid::Uuid;

use crate::{html, not_configured, refused, Dashboard, Error, Links, Session};

/// What the shared routes need of a service's state.
pub trait Host: Send + Sync + 'static {
    /// The dashboard's sign-in, when configured.
    fn dashboard(&self) -> Option<&Dashboard>;
    /// The service's database, which keeps the sessions.
    fn pool(&self) -> &PgPool;
    /// How the service verifies access tokens.
    fn verifier(&self) -> &Verifier;
    /// The revoked grants the service has heard of.
    fn revocations(&self) -> &Revocations;
}

/// The person signed in to the dashboard titled `title`: their session
/// (its token verified, and not revoked) and their row of the users read
/// model (none until their account event arrives). Otherwise the page to
/// answer: the sign-in page without a session, or the reason.
pub async fn signed_in<S: Host>(
    state: &S,
    req: &HttpRequest,
    title: &str,
) -> Result<(Session, Option<User>), HttpResponse> {
    let Some(d) = state.dashboard() else {
        return Err(not_configured());
    };
    let session = match d.session(state.pool(), state.verifier(), req).await {
        Ok(Some(s)) if !state.revocations().is_revoked(&s.claims) => s,
        Ok(_) => return Err(html::sign_in(title)),
        Err(e) => return Err(e.page()),
    };
    let Ok(me) = session.claims.sub.parse::<Uuid>() else {
        return Err(refused());
    };
    match with_conn(state.pool(), move |c| user(c, me).map_err(Error::from)).await {
        Ok(u) => Ok((session, u)),
        Err(e) => Err(e.page()),
    }
}

/// The page for a dashboard that cannot read its database.
pub fn unavailable(title: &str, e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::warn!(error = %e, dashboard = title, "a dashboard cannot read its database");
    html::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The dashboard cannot read its data right now. Try again in a moment.",
    )
}

/// Registers the shared routes for a service whose state is `S`.
pub fn configure<S: Host>(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(landing::<S>))
        .route("/dashboard/signin", web::get().to(sign_in::<S>))
        .route("/dashboard/callback", web::get().to(callback::<S>))
        .route("/dashboard/signout", web::post().to(sign_out::<S>));
}

/// `GET /`: links to the task tracker's API documentation and the
/// dashboards.
async fn landing<S: Host>(state: web::Data<S>) -> HttpResponse {
    let links = match state.dashboard() {
        Some(d) => d.config.links.clone(),
        None => Links::from_env(),
    };
    html::landing(&links)
}

/// `GET /dashboard/signin`: off to the safekeeper.
async fn sign_in<S: Host>(state: web::Data<S>) -> HttpResponse {
    let Some(d) = state.dashboard() else {
        return not_configured();
    };
    d.begin(state.pool()).await.unwrap_or_else(|e| e.page())
}

/// `GET /dashboard/callback`: back from the safekeeper.
async fn callback<S: Host>(
    req: HttpRequest,
    state: web::Data<S>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(d) = state.dashboard() else {
        return not_configured();
    };
    d.callback(state.pool(), state.verifier(), &req, &query)
        .await
}

/// `POST /dashboard/signout` (form with the page's `csrf`).
async fn sign_out<S: Host>(
    req: HttpRequest,
    state: web::Data<S>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let Some(d) = state.dashboard() else {
        return not_configured();
    };
    d.sign_out(state.pool(), &req, &form).await
}
