//! A worker's balance and ledger: their own (`me`, or their id) with
//! `read:accounting`, anyone's with `su_read:accounting`.

use actix_web::{web, HttpResponse};
use platform::db::with_conn;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::{Authenticated, MayRead},
    domain::{AccountRef, Page},
    error::ApiError,
    state::AppState,
    store,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/accounting/accounts/{account}", web::get().to(account))
        .route(
            "/v1/accounting/accounts/{account}/ledger",
            web::get().to(ledger),
        );
}

/// The account a path names, once the caller may read it.
fn readable(caller: &Authenticated, raw: &str) -> Result<Uuid, ApiError> {
    let id = AccountRef::parse(raw)?
        .resolve(caller.account())
        .ok_or_else(|| {
            ApiError::Forbidden("a client's token has no account of its own: name one".into())
        })?;
    caller.may_read(id)?;
    Ok(id)
}

#[derive(Serialize)]
struct Account {
    account_id: Uuid,
    username: Option<String>,
    balance_cents: i64,
}

/// `GET /v1/accounting/accounts/{account}`: the account's balance.
async fn account(
    caller: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = readable(&caller, &path)?;
    let (user, balance) = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        Ok((store::user(c, id)?, store::balance_of(c, id)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(Account {
        account_id: id,
        username: user.and_then(|u| u.username),
        balance_cents: balance,
    }))
}

#[derive(Deserialize)]
struct LedgerQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Serialize)]
struct LedgerPage {
    account_id: Uuid,
    balance_cents: i64,
    entries: Vec<store::Entry>,
    /// Pass as `before` for the next (older) page; absent on the last.
    next_before: Option<i64>,
}

/// `GET /v1/accounting/accounts/{account}/ledger?limit=&before=`: the
/// account's entries, newest first, a page at a time.
async fn ledger(
    caller: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<LedgerQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = readable(&caller, &path)?;
    let page = Page::parse(query.limit, query.before)?;
    let (entries, balance) = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        Ok((
            store::entries(c, id, page.limit, page.before)?,
            store::balance_of(c, id)?,
        ))
    })
    .await?;
    let next_before = (entries.len() as i64 == page.limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(LedgerPage {
        account_id: id,
        balance_cents: balance,
        entries,
        next_before,
    }))
}
