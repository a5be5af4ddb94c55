//! Creations that span the identity provider and the directory, made safe.
//!
//! A user's creation is recorded (`pending`) before the first provider
//! call, then moves to `user_created` (the provider's account exists),
//! `membership_created` (its membership too) and `completed` (the local
//! user, membership and event committed together). Every move is a compare
//! and set, so the request and the reconciler never both act on one
//! creation. A definitive refusal ends it as `failed` (nothing to undo); a
//! failure after the account exists compensates it at once (the removal is
//! queued in the same transaction that ends the creation, and run by the
//! reconciler until it succeeds). A creation left open by a crash or a
//! provider that did not answer is compensated by the reconciler once its
//! lease has passed (longer than any provider call may take), after
//! looking the account up at the provider: neither side keeps an orphan.
//!
//! An organization's creation follows the same rule: its row is reserved
//! (`creating`) before the admin account is made, and activated with its
//! tenant storage and event in one transaction afterwards, or dropped.

use std::net::IpAddr;

use futures::future::join_all;
use platform::db::{is_unique_violation, with_conn};
use secrecy::SecretString;

use crate::{
    directory_config::OrganizationEntry,
    domain::{Email, NewUser},
    error::ApiError,
    provider::{Identity, NewIdentity, ProviderError},
    state::AppState,
    store::{
        self, Begin, CompletedUser, Completion, Creation, CreationRequest, Membership,
        Organization, User,
    },
};
use uuid::Uuid;

pub enum Created {
    New(User, Membership),
    Exists(User),
}

/// `work` on a pooled connection, on the blocking pool, its errors as the
/// API's.
pub(crate) async fn db<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    with_conn(&state.pool, move |c| work(c).map_err(ApiError::from)).await
}

/// Ends creation `id` as compensated, queueing the removal of
/// `reference`, and wakes the reconciler to run it now.
async fn compensate(
    state: &AppState,
    id: Uuid,
    reference: Option<String>,
    why: String,
) -> Result<(), ApiError> {
    db(state, move |c| {
        store::compensate_creation(c, id, reference.as_deref(), &why)
    })
    .await?;
    state.reconcile.notify_one();
    Ok(())
}

/// Step one's answer for `new`; an account the directory itself created
/// and then compensated (the authenticator keeps it, deactivated) is taken
/// back rather than refused as a duplicate.
async fn provider_account(
    state: &AppState,
    new: &NewIdentity,
    created: Result<Identity, ProviderError>,
) -> Result<Identity, ProviderError> {
    match created {
        Err(ProviderError::Conflict { field }) => {
            let Some(existing) = state.provider.find_user(&new.login).await? else {
                return Err(ProviderError::Conflict { field });
            };
            let reference = existing.reference_id.clone();
            let ours = with_conn(&state.pool, move |c| {
                // Undone by a compensation, or its user removed through the API.
                let ours = store::was_compensated(c, &reference)?
                    || store::changes::was_removed(c, &reference)?;
                Ok::<_, ApiError>(ours)
            })
            .await
            .unwrap_or(false);
            if !ours || !existing.email.eq_ignore_ascii_case(&new.email) {
                return Err(ProviderError::Conflict { field });
            }
            // A removal still queued for it must not undo the taking back.
            let r = existing.reference_id.clone();
            with_conn(&state.pool, move |c| {
                store::cancel_removals(c, &r).map_err(ApiError::from)
            })
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
            state.provider.restore_user(&existing.reference_id).await?;
            tracing::info!(reference_id = %existing.reference_id, "took back an account a compensation had removed");
            Ok(existing)
        }
        other => other,
    }
}

/// Records creations of `users` in `org` (one transaction for all, before
/// any provider call): one answer per user, in order. The emails must
/// differ regardless of case.
pub async fn begin(
    state: &AppState,
    org: &Organization,
    users: &[&NewUser],
) -> Result<Vec<Begin>, ApiError> {
    let requests: Vec<CreationRequest> = users
        .iter()
        .map(|n| CreationRequest {
            email: n.email.as_str().to_owned(),
            login: state.provider.login_for(&n.email),
            role: n.role.clone(),
        })
        .collect();
    let org_id = org.id;
    db(state, move |c| store::begin_creations(c, org_id, &requests)).await
}

/// Steps one and two of recorded creations: the accounts (one
/// `create_users` for all) and the memberships at the provider. For each, in order,
/// what the local write needs, or the error that ended the creation
/// (refused, compensated, or left open for the reconciler when the outcome
/// is unknown).
pub async fn provider_steps(
    state: &AppState,
    creations: Vec<(Creation, NewUser)>,
    entry: &OrganizationEntry,
) -> Vec<Result<Completion, ApiError>> {
    let identities: Vec<NewIdentity> = creations
        .iter()
        .map(|(creation, new)| NewIdentity {
            email: new.email.as_str().to_owned(),
            login: creation.provider_login.clone(),
            first_name: new.first_name.clone(),
            last_name: new.last_name.clone(),
            environment_role: Some(new.environment_role.clone()),
            password: None,
            password_hash: new.password_hash.clone(),
            end_user_address: None,
        })
        .collect();
    // Step one: the accounts.
    let accounts = state.provider.create_users(&identities).await;
    join_all(creations.into_iter().zip(&identities).zip(accounts).map(
        |(((creation, new), identity), account)| {
            after_step_one(state, creation, new, identity, account, entry)
        },
    ))
    .await
}

/// One creation from its account's answer on: the account taken or the
/// creation ended, step two, and what the local write needs.
async fn after_step_one(
    state: &AppState,
    creation: Creation,
    new: NewUser,
    identity: &NewIdentity,
    created: Result<Identity, ProviderError>,
    entry: &OrganizationEntry,
) -> Result<Completion, ApiError> {
    let account = match provider_account(state, identity, created).await {
        Ok(a) => a,
        Err(e) if e.outcome_unknown() => {
            // The account may exist or appear later: the reconciler looks
            // once the lease has passed and undoes whatever it finds.
            tracing::warn!(creation.id = %creation.id, error = %platform::problem::chain(&e), "provider failed at step one; left to the reconciler");
            return Err(e.into());
        }
        Err(e) => {
            let (id, why) = (creation.id, e.to_string());
            db(state, move |c| store::fail_creation(c, id, &why)).await?;
            return Err(e.into());
        }
    };
    let reference = account.reference_id.clone();
    let mut creation = creation;
    creation.reference_id = Some(reference.clone());
    // A provider without memberships (the authenticator) has no step two:
    // the local write moves the creation from `pending` to `completed`
    // (should the service stop before it, the reconciler finds the account
    // by its login and undoes it).
    let from = if state.provider.keeps_memberships() {
        // Record step one before step two, so a failure there (or a crash)
        // knows which account to undo.
        let (id, r) = (creation.id, reference.clone());
        if !db(state, move |c| {
            store::advance_creation(c, id, "pending", "user_created", Some(&r), None)
        })
        .await?
        {
            return Err(taken_over(state, reference).await);
        }
        // Step two: the membership.
        match state
            .provider
            .create_membership(&reference, entry, &creation.role)
            .await
        {
            Ok(m) => creation.membership_reference_id = m,
            Err(e) => {
                tracing::warn!(creation.id = %creation.id, error = %platform::problem::chain(&e), "provider failed at step two; compensating");
                compensate(
                    state,
                    creation.id,
                    Some(reference),
                    format!("step two: {e}"),
                )
                .await?;
                return Err(e.into());
            }
        }
        "user_created"
    } else {
        "pending"
    };
    Ok(Completion {
        creation,
        from,
        user: CompletedUser {
            email: new.email.as_str().to_owned(),
            first_name: new.first_name,
            last_name: new.last_name,
            environment_role: new.environment_role,
            reference_id: reference,
            provider_login: account.login,
            provider_updated_at: account.updated_at,
            provider_version: account.version,
        },
    })
}

/// Step three for a batch of creations of `org`: the local writes, in one
/// commit. One outcome per creation, in order; a creation whose write
/// failed is compensated.
pub async fn complete(
    state: &AppState,
    org: &Organization,
    batch: Vec<Completion>,
) -> Vec<Result<(User, Membership), ApiError>> {
    let undo: Vec<(Uuid, String)> = batch
        .iter()
        .map(|c| (c.creation.id, c.user.reference_id.clone()))
        .collect();
    let org_name = org.name.clone();
    let written = with_conn(&state.pool, move |c| {
        Ok::<_, ApiError>(store::complete_creations(c, &batch, &org_name))
    })
    .await;
    let results: Vec<Result<Option<(User, Membership)>, ApiError>> = match written {
        Ok(Ok(each)) => each
            .into_iter()
            .map(|r| {
                r.map_err(|e| {
                    if is_unique_violation(&e, store::USER_EMAIL_UNIQUE) {
                        ApiError::EmailTaken
                    } else {
                        ApiError::Database(e)
                    }
                })
            })
            .collect(),
        Ok(Err(e)) => {
            let why = e.to_string();
            undo.iter()
                .map(|_| Err(ApiError::Internal(anyhow::anyhow!("local write: {why}"))))
                .collect()
        }
        Err(e) => {
            let why = e.to_string();
            undo.iter()
                .map(|_| Err(ApiError::Internal(anyhow::anyhow!("local write: {why}"))))
                .collect()
        }
    };
    let mut outcomes = Vec::with_capacity(results.len());
    let mut created = false;
    for ((id, reference), r) in undo.into_iter().zip(results) {
        outcomes.push(match r {
            Ok(Some(done)) => {
                created = true;
                Ok(done)
            }
            Ok(None) => Err(taken_over(state, reference).await),
            Err(e) => {
                match compensate(state, id, Some(reference), format!("local write: {e}")).await {
                    Ok(()) => Err(e),
                    Err(also) => Err(also),
                }
            }
        });
    }
    if created {
        state.outbox.nudge();
    }
    outcomes
}

/// Creates a user in the provider and the directory (see the module
/// comment). An existing user of that email is answered as such.
pub async fn create_user(
    state: &AppState,
    new: NewUser,
    org: &Organization,
    entry: &OrganizationEntry,
) -> Result<Created, ApiError> {
    let begun = begin(state, org, &[&new]).await?.pop();
    let creation = match begun {
        Some(Begin::Started(c)) => c,
        Some(Begin::Exists(u)) => return Ok(Created::Exists(u)),
        Some(Begin::InFlight) | None => return Err(ApiError::CreationInProgress),
    };
    let ready = provider_steps(state, vec![(creation, new)], entry)
        .await
        .pop()
        .unwrap_or_else(|| Err(no_outcome()))?;
    match complete(state, org, vec![ready]).await.pop() {
        Some(Ok((u, m))) => Ok(Created::New(u, m)),
        Some(Err(e)) => Err(e),
        None => Err(no_outcome()),
    }
}

fn no_outcome() -> ApiError {
    ApiError::Internal(anyhow::anyhow!("no outcome for the creation"))
}

/// The reconciler ended this creation while the request was slow: make
/// sure the account it made goes too.
async fn taken_over(state: &AppState, reference: String) -> ApiError {
    tracing::warn!(reference_id = %reference, "creation was compensated by the reconciler meanwhile");
    let r = reference.clone();
    if let Err(e) = with_conn(&state.pool, move |c| {
        store::queue_removal(c, &r).map_err(ApiError::from)
    })
    .await
    {
        return e;
    }
    state.reconcile.notify_one();
    ApiError::Provider(ProviderError::Unavailable(
        "the creation took too long and was undone".into(),
    ))
}

pub struct NewOrganization {
    pub name: String,
    pub email: Email,
    pub password: SecretString,
    /// Who asks (`POST /org/create` is public): relayed to the provider,
    /// which limits account creations per address.
    pub end_user_address: Option<IpAddr>,
}

/// Creates an organization, its tenant storage and its admin account as
/// one unit.
pub async fn create_organization(
    state: &AppState,
    new: NewOrganization,
) -> Result<Organization, ApiError> {
    let login = state.provider.login_for(&new.email);
    let (name, email, l) = (
        new.name.clone(),
        new.email.as_str().to_owned(),
        login.clone(),
    );
    let reserved = with_conn(&state.pool, move |c| {
        store::reserve_organization(c, &name, &email, &l).map_err(|e| {
            if is_unique_violation(&e, store::ORG_NAME_UNIQUE) {
                ApiError::OrganizationTaken
            } else if is_unique_violation(&e, store::ORG_ADMIN_EMAIL_UNIQUE) {
                ApiError::AdminEmailTaken
            } else {
                ApiError::Database(e)
            }
        })
    })
    .await?;
    let identity = NewIdentity {
        email: new.email.as_str().to_owned(),
        login,
        first_name: new.name.clone(),
        last_name: "Administrator".into(),
        environment_role: None,
        password: Some(new.password),
        password_hash: None,
        end_user_address: new.end_user_address,
    };
    let account = match state.provider.create_user(&identity).await {
        Ok(a) => a,
        Err(e) if e.outcome_unknown() => {
            tracing::warn!(organization.id = %reserved.id, error = %platform::problem::chain(&e), "provider failed creating an organization's admin; left to the reconciler");
            return Err(e.into());
        }
        Err(e) => {
            let id = reserved.id;
            db(state, move |c| store::drop_reservation(c, id)).await?;
            return Err(match e {
                ProviderError::Conflict { .. } => ApiError::AdminEmailTaken,
                other => other.into(),
            });
        }
    };
    let (id, r) = (reserved.id, account.reference_id.clone());
    match db(state, move |c| store::activate_organization(c, id, &r)).await {
        Ok(Some(org)) => {
            state.outbox.nudge();
            Ok(org)
        }
        Ok(None) => Err(taken_over(state, account.reference_id).await),
        Err(e) => {
            let r = account.reference_id.clone();
            let _ = db(state, move |c| {
                store::drop_reservation(c, id)?;
                store::queue_removal(c, &r)
            })
            .await;
            state.reconcile.notify_one();
            Err(e)
        }
    }
}

/// One round of the reconciler: queued provider work, then creations and
/// reservations whose lease has passed.
pub async fn reconcile(state: &AppState) -> Result<(), ApiError> {
    run_tasks(state).await?;
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(state.settings.saga_lease).unwrap_or_default();
    let stale = db(state, move |c| store::open_creations_older_than(c, cutoff)).await?;
    for creation in stale {
        let reference = match &creation.reference_id {
            Some(r) => Some(r.clone()),
            None => match state.provider.find_user(&creation.provider_login).await {
                Ok(found) => found
                    .filter(|i| i.email.eq_ignore_ascii_case(&creation.email))
                    .map(|i| i.reference_id),
                Err(e) => {
                    tracing::warn!(creation.id = %creation.id, error = %platform::problem::chain(&e), "cannot look the account up yet");
                    continue;
                }
            },
        };
        tracing::info!(creation.id = %creation.id, state = %creation.state, reference_id = ?reference, "compensating an unfinished creation");
        compensate(
            state,
            creation.id,
            reference,
            format!("unfinished in state {}", creation.state),
        )
        .await?;
    }
    let stale = db(state, move |c| store::reservations_older_than(c, cutoff)).await?;
    for org in stale {
        let found = match state.provider.find_user(&org.admin_login).await {
            Ok(f) => f.filter(|i| i.email.eq_ignore_ascii_case(&org.admin_email)),
            Err(e) => {
                tracing::warn!(organization.id = %org.id, error = %platform::problem::chain(&e), "cannot look the admin up yet");
                continue;
            }
        };
        tracing::info!(organization.id = %org.id, name = %org.name, "dropping an unfinished organization");
        let id = org.id;
        db(state, move |c| {
            use diesel::Connection;
            c.transaction(|c| {
                if store::drop_reservation(c, id)? {
                    if let Some(i) = found {
                        store::queue_removal(c, &i.reference_id)?;
                    }
                }
                Ok(())
            })
        })
        .await?;
    }
    run_tasks(state).await
}

/// Runs the provider work that is due; failures back off and stay queued.
pub async fn run_tasks(state: &AppState) -> Result<(), ApiError> {
    loop {
        let tasks = db(state, |c| store::due_tasks(c, 50)).await?;
        if tasks.is_empty() {
            return Ok(());
        }
        let mut progressed = false;
        for t in tasks {
            match state.provider.remove_user(&t.reference_id).await {
                Ok(()) => {
                    tracing::info!(reference_id = %t.reference_id, "provider account removed");
                    let id = t.id;
                    db(state, move |c| store::task_done(c, id)).await?;
                    progressed = true;
                }
                Err(e) => {
                    tracing::warn!(reference_id = %t.reference_id, attempts = t.attempts + 1, error = %platform::problem::chain(&e), "removing a provider account failed; will retry");
                    let why = e.to_string();
                    db(state, move |c| store::task_failed(c, &t, &why)).await?;
                }
            }
        }
        if !progressed {
            return Ok(());
        }
    }
}
