//! Changes of a member that span the identity provider and the directory
//! (`PATCH /v1/users/{id}`, `PUT /v1/users/{id}/role`, `DELETE
//! /v1/users/{id}`), made safe as creations are (`saga`).
//!
//! A change is recorded (`pending`, with the values before it) before the
//! provider is called, then moves to `provider_done` and `completed` (the
//! local write and its events, one transaction), each move a compare and
//! set on its state and `attempt`. A provider that refuses ends it
//! `failed` (nothing changed anywhere). A provider call whose outcome is
//! unknown (a timeout, a 5xx) or a crash leaves the change open; once its
//! lease (`SAGA_LEASE_SECONDS`) has passed the reconciler takes it over
//! (raising `attempt`, so the request can no longer move it) and completes
//! it: the provider calls set values, so repeating them is harmless. When
//! a change cannot be completed (the provider now refuses it, or the local
//! write finds the email taken meanwhile) it is compensated: the provider
//! is set back to the recorded values (`compensating`, retried until the
//! provider accepts, then `compensated`). Either way the provider and the
//! directory end up agreeing.

use platform::db::{is_unique_violation, with_conn};

use crate::{
    error::ApiError,
    provider::{AccountChange, ProviderError},
    saga::db,
    state::AppState,
    store::{
        self,
        changes::{self as stored, BeginChange, Change, ChangeRequest},
        Membership, User,
    },
};
use uuid::Uuid;

/// Changes member `user` of organization `org` as `req` asks: the member
/// as they are afterwards (for a removal, as they were removed).
pub async fn change_member(
    state: &AppState,
    org: Uuid,
    user: Uuid,
    req: ChangeRequest,
) -> Result<(User, Membership), ApiError> {
    let begun = db(state, move |c| stored::begin_change(c, org, user, &req)).await?;
    let change = match begun {
        BeginChange::Started(c) => c,
        BeginChange::Unchanged(u, m) => return Ok((u, m)),
        BeginChange::NotFound => {
            return Err(ApiError::NotFound(format!(
                "no user {user} in your organization"
            )))
        }
        BeginChange::EmailTaken => return Err(ApiError::EmailTaken),
        BeginChange::Busy => return Err(ApiError::ChangeInProgress),
        BeginChange::Shared => return Err(ApiError::SharedAccount),
    };
    tracing::info!(change.id = %change.id, kind = %change.kind, user.id = %user, "member change recorded");
    drive(state, change, true).await
}

/// The provider call of a change.
async fn apply(state: &AppState, c: &Change) -> Result<(), ProviderError> {
    match c.kind.as_str() {
        "remove" => state.provider.remove_user(&c.reference_id).await,
        "role" => {
            let role = c.role.as_deref().unwrap_or_default();
            state
                .provider
                .set_membership_role(c.membership_reference_id.as_deref(), role)
                .await
        }
        _ => {
            let change = AccountChange {
                email: c.email.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                environment_role: c.environment_role.clone(),
            };
            state.provider.update_user(&c.reference_id, &change).await
        }
    }
}

/// Sets the provider back to what it held before the change.
async fn revert(state: &AppState, c: &Change) -> Result<(), ProviderError> {
    let before = c.previous();
    match c.kind.as_str() {
        "remove" => match state.provider.restore_user(&c.reference_id).await {
            // WorkOS deletes accounts: there is nothing to take back.
            Err(ProviderError::NotFound) => Ok(()),
            other => other,
        },
        "role" => {
            state
                .provider
                .set_membership_role(c.membership_reference_id.as_deref(), &before.role)
                .await
        }
        _ => {
            let change = AccountChange {
                email: c.email.as_ref().map(|_| before.email.clone()),
                first_name: c.first_name.as_ref().map(|_| before.first_name.clone()),
                last_name: c.last_name.as_ref().map(|_| before.last_name.clone()),
                environment_role: c
                    .environment_role
                    .as_ref()
                    .map(|_| before.environment_role.clone()),
            };
            state.provider.update_user(&c.reference_id, &change).await
        }
    }
}

fn taken_over(c: &Change) -> ApiError {
    ApiError::ChangeUnfinished(format!("change {} was taken over by the reconciler", c.id))
}

/// Moves `c` on from its state as far as it goes. `by_request`: the
/// request that began it (a refusal then ends it as failed; for the
/// reconciler, whose earlier attempt may have taken effect, a refusal
/// compensates).
async fn drive(
    state: &AppState,
    mut c: Change,
    by_request: bool,
) -> Result<(User, Membership), ApiError> {
    if c.state == "pending" {
        match apply(state, &c).await {
            Ok(()) => {
                let (id, attempt) = (c.id, c.attempt);
                if !db(state, move |conn| {
                    stored::advance_change(conn, id, attempt, "pending", "provider_done", None)
                })
                .await?
                {
                    return Err(taken_over(&c));
                }
                c.state = "provider_done".into();
            }
            Err(e) if e.outcome_unknown() => {
                tracing::warn!(change.id = %c.id, error = %platform::problem::chain(&e), "provider failed during a change; left to the reconciler");
                return Err(ApiError::ChangeUnfinished(e.to_string()));
            }
            Err(e) if by_request => {
                // Refused, throttled or never sent: nothing changed.
                let (id, attempt, why) = (c.id, c.attempt, e.to_string());
                db(state, move |conn| {
                    stored::advance_change(conn, id, attempt, "pending", "failed", Some(&why))
                })
                .await?;
                return Err(e.into());
            }
            Err(e @ (ProviderError::NotSent(_) | ProviderError::Throttled(_))) => {
                return Err(e.into());
            }
            Err(e) => {
                tracing::warn!(change.id = %c.id, error = %platform::problem::chain(&e), "the provider refuses an unfinished change; compensating");
                return compensate(state, c, "pending", e.to_string(), e.into()).await;
            }
        }
    }
    if c.state == "provider_done" {
        // This replica reads the user from the database until its listener
        // hears the commit (read your own writes; `members`).
        state.members.changing(c.user_id);
        let change = c.clone();
        let written = with_conn(&state.pool, move |conn| {
            Ok::<_, ApiError>(stored::complete_change(conn, &change))
        })
        .await?;
        return match written {
            Ok(Some(done)) => {
                state.outbox.nudge();
                tracing::info!(change.id = %c.id, kind = %c.kind, "member change completed");
                Ok(done)
            }
            Ok(None) => Err(taken_over(&c)),
            Err(e) if is_unique_violation(&e, store::USER_EMAIL_UNIQUE) => {
                tracing::warn!(change.id = %c.id, "the email was taken meanwhile; compensating");
                compensate(
                    state,
                    c,
                    "provider_done",
                    "local write: the email was taken meanwhile".into(),
                    ApiError::EmailTaken,
                )
                .await
            }
            // The reconciler writes it again once the lease has passed.
            Err(e) => Err(ApiError::Database(e)),
        };
    }
    if c.state == "compensating" {
        let answer = ApiError::ChangeUnfinished(format!("change {} is being undone", c.id));
        return finish_compensation(state, c, answer).await;
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "change {} is {}: nothing to do",
        c.id,
        c.state
    )))
}

/// Ends `c` (in state `from`) by setting the provider back; `answer` is
/// what the caller is told.
async fn compensate(
    state: &AppState,
    mut c: Change,
    from: &'static str,
    why: String,
    answer: ApiError,
) -> Result<(User, Membership), ApiError> {
    let (id, attempt) = (c.id, c.attempt);
    if !db(state, move |conn| {
        stored::advance_change(conn, id, attempt, from, "compensating", Some(&why))
    })
    .await?
    {
        return Err(taken_over(&c));
    }
    c.state = "compensating".into();
    finish_compensation(state, c, answer).await
}

async fn finish_compensation(
    state: &AppState,
    c: Change,
    answer: ApiError,
) -> Result<(User, Membership), ApiError> {
    match revert(state, &c).await {
        Ok(()) => {
            let (id, attempt) = (c.id, c.attempt);
            db(state, move |conn| {
                stored::advance_change(conn, id, attempt, "compensating", "compensated", None)
            })
            .await?;
            tracing::info!(change.id = %c.id, "member change compensated");
        }
        Err(e) => {
            tracing::warn!(change.id = %c.id, error = %platform::problem::chain(&e), "setting the provider back failed; the reconciler retries");
        }
    }
    Err(answer)
}

/// The reconciler's share: changes whose lease has passed are taken over
/// and completed or compensated.
pub async fn reconcile(state: &AppState) -> Result<(), ApiError> {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(state.settings.saga_lease).unwrap_or_default();
    let stale = db(state, move |c| stored::open_changes_older_than(c, cutoff)).await?;
    for change in stale {
        let Some(claimed) = db(state, move |c| stored::claim_change(c, &change)).await? else {
            continue;
        };
        tracing::info!(change.id = %claimed.id, state = %claimed.state, attempt = claimed.attempt, "taking over an unfinished member change");
        if let Err(e) = drive(state, claimed, false).await {
            tracing::info!(error = %platform::problem::chain(&e), "an unfinished member change was taken over");
        }
    }
    Ok(())
}
