//! The operator API: a user's state and the reasons for each restriction,
//! lifting a restriction by hand, the rules' tripwires and their reset.
//! Every route needs an operator (see `auth`).

use actix_web::{web, HttpResponse};
use chrono::Utc;
use platform::db::with_conn;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    auth::Operator,
    domain::{reason, suspended, Capability, Invalid, Rule, UserId},
    error::ApiError,
    state::AppState,
    store::{self, UserReport, ACCOUNT_INACTIVE},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/users/{user_id}", web::get().to(get_user))
        .route("/v1/admin/users/{user_id}/lift", web::post().to(lift))
        .route("/v1/admin/rules", web::get().to(list_rules))
        .route("/v1/admin/rules/{rule}/reset", web::post().to(reset));
}

fn path_user(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| ApiError::NotFound(e.message))
}

fn user_json(state: &AppState, r: &UserReport) -> Value {
    let cfg = &state.settings.rules;
    let now = Utc::now();
    let u = &r.user;
    let facts = u.facts();
    let mut restrictions: Vec<Value> = Rule::ALL
        .into_iter()
        .filter_map(|rule| {
            u.restricted_at(rule).map(|since| {
                json!({
                    "rule": rule,
                    "capability": rule.capability(),
                    "since": since,
                    "reason": reason(rule, &facts, cfg),
                    "suspended": state.suspensions.is_suspended(rule, now),
                })
            })
        })
        .collect();
    if !u.is_active {
        restrictions.push(json!({
            "rule": ACCOUNT_INACTIVE,
            "capability": [Capability::Message, Capability::Purchase],
            "reason": "the account is deactivated (iam.user.v1)",
            "suspended": false,
        }));
    }
    let access = crate::domain::Restrictions {
        is_active: u.is_active,
        scam_flags: u.scam_restricted_at.is_some(),
        card_zip_ratio: u.zip_restricted_at.is_some(),
        chargeback_ratio: u.chargeback_restricted_at.is_some(),
    };
    let is_suspended = |rule| state.suspensions.is_suspended(rule, now);
    json!({
        "user_id": u.user_id,
        "can_message": access.allows(Capability::Message, is_suspended),
        "can_purchase": access.allows(Capability::Purchase, is_suspended),
        "is_active": u.is_active,
        "facts": facts,
        "restrictions": restrictions,
        "cards": r.cards,
        "history": r.history,
        "first_event_at": u.first_event_at,
        "account_version": u.account_version,
        "version": u.version,
        "updated_at": u.updated_at,
    })
}

async fn report(state: &AppState, user_id: UserId) -> Result<UserReport, ApiError> {
    let shown = user_id.to_string();
    with_conn(&state.pool, move |c| {
        store::user_report(c, &user_id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no user {shown:?} has been seen")))
}

/// `GET /v1/admin/users/{user_id}` (operator): the user's facts, cards,
/// active restrictions with their reasons, and restriction history.
async fn get_user(
    _op: Operator,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = report(&state, path_user(&user_id)?).await?;
    Ok(HttpResponse::Ok().json(user_json(&state, &r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftRequest {
    rule: String,
    /// Why, kept in the restriction history.
    note: Option<String>,
}

/// `POST /v1/admin/users/{user_id}/lift` `{"rule", "note"?}` (operator):
/// lifts the rule's restriction of the user. Idempotent: `lifted` says
/// whether there was one. The rule restricts the user again only on new
/// evidence (a later event of its kind).
async fn lift(
    op: Operator,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
    body: web::Json<LiftRequest>,
) -> Result<HttpResponse, ApiError> {
    let user_id = path_user(&user_id)?;
    let body = body.into_inner();
    let rule = Rule::parse(&body.rule).ok_or_else(|| {
        Invalid::new(
            "rule",
            "unknown_rule",
            format!(
                "rule must be one of scam_flags, card_zip_ratio, chargeback_ratio \
                 ({ACCOUNT_INACTIVE} follows the account and is lifted by reactivating it)"
            ),
        )
    })?;
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(
            Invalid::new("note", "too_long", "note may hold at most 500 characters").into(),
        );
    }
    let cfg = state.settings.rules;
    let actor = op.0.clone();
    let id = user_id.clone();
    let (_, lifted) = with_conn(&state.pool, move |c| {
        store::lift(c, &id, rule, &actor, body.note.as_deref(), &cfg).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no user {:?} has been seen", user_id.as_str())))?;
    if lifted {
        state.cache.invalidate(user_id.as_str());
        state.outbox.nudge();
    }
    let r = report(&state, user_id).await?;
    Ok(HttpResponse::Ok().json(json!({"lifted": lifted, "user": user_json(&state, &r)})))
}

fn rule_json(row: &store::RuleRow, newly: i64, population: i64, state: &AppState) -> Value {
    let now = Utc::now();
    let t = &state.settings.rules.tripwire;
    json!({
        "rule": row.rule,
        "capability": row.rule().map(Rule::capability),
        "tripped": suspended(row.suspended_until, now),
        "tripped_at": row.tripped_at,
        "suspended_until": row.suspended_until,
        "trip_count": row.trip_count,
        "last_reset_at": row.last_reset_at,
        "last_reset_by": row.last_reset_by,
        "newly_restricted_in_window": newly,
        "population": population,
        "trips_when": format!(
            "more than {} % of the population ({population} users seen, more than {} needed) \
             newly restricted within {} s",
            t.ratio.as_f64() * 100.0,
            t.min_population,
            t.window.as_secs()
        ),
    })
}

/// `GET /v1/admin/rules` (operator): each rule's tripwire state, the users
/// it newly restricted in its window, and the rules' configuration.
async fn list_rules(_op: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let cfg = state.settings.rules;
    let (rows, population) = with_conn(&state.pool, move |c| {
        store::rules_report(c, &cfg).map_err(ApiError::from)
    })
    .await?;
    for (row, _) in &rows {
        state.suspensions.update(row);
    }
    let rules: Vec<Value> = rows
        .iter()
        .map(|(row, n)| rule_json(row, *n, population, &state))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "population": population,
        "rules": rules,
        "config": state.settings.rules,
    })))
}

/// `POST /v1/admin/rules/{rule}/reset` (operator): ends a tripped rule's
/// suspension and starts its window afresh. Idempotent: `reset` says
/// whether the rule was tripped.
async fn reset(
    op: Operator,
    state: web::Data<AppState>,
    rule: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = Rule::parse(&rule).ok_or_else(|| ApiError::NotFound(format!("no rule {rule:?}")))?;
    let actor = op.0;
    let (row, was_reset) = with_conn(&state.pool, move |c| {
        store::reset_rule(c, rule, &actor).map_err(ApiError::from)
    })
    .await?;
    state.suspensions.update(&row);
    if was_reset {
        state.outbox.nudge();
    }
    let cfg = state.settings.rules;
    let (rows, population) = with_conn(&state.pool, move |c| {
        store::rules_report(c, &cfg).map_err(ApiError::from)
    })
    .await?;
    let newly = rows
        .iter()
        .find(|(r, _)| r.rule == row.rule)
        .map_or(0, |(_, n)| *n);
    Ok(HttpResponse::Ok().json(json!({
        "reset": was_reset,
        "rule": rule_json(&row, newly, population, &state),
    })))
}
