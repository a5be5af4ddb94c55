//! The directory's background work: the applier of stored provider events,
//! the reconciler (queued provider work, unfinished creations and member
//! changes), the WorkOS
//! Events API reader, and the resumption of import jobs.

use std::time::Duration;

use actix_web::web;
use diesel::Connection;
use platform::db::with_conn;
use tokio::sync::watch;

use crate::{
    changes,
    error::ApiError,
    import,
    provider::Provider,
    saga,
    state::AppState,
    store,
    sync::{self, Applied},
};

/// Events whose subject stays unknown this many tries are given up on.
const MAX_EVENT_ATTEMPTS: i32 = 40;

/// Applies due stored events; returns how many were looked at.
pub async fn apply_due_events(state: &AppState) -> Result<usize, ApiError> {
    let config = state.config.current();
    let applied = with_conn(&state.pool, move |c| -> Result<(usize, bool), ApiError> {
        let due = store::due_events(c, 200)?;
        let mut published = false;
        for e in &due {
            match sync::apply_event(c, &config, &e.event, &e.payload) {
                Ok(Applied::Done(outcome)) => {
                    published = true;
                    store::event_applied(c, &e.id, outcome)?;
                }
                Ok(Applied::Later(why)) if e.attempts + 1 >= MAX_EVENT_ATTEMPTS => {
                    tracing::warn!(event.id = %e.id, reason = why, "giving up on a provider event");
                    store::event_applied(c, &e.id, &format!("abandoned: {why}"))?;
                }
                Ok(Applied::Later(why)) => store::event_deferred(c, e, why)?,
                Err(err) => {
                    tracing::warn!(event.id = %e.id, error = %platform::problem::chain(&err), "applying a provider event failed; will retry");
                    store::event_deferred(c, e, "error")?;
                }
            }
        }
        Ok((due.len(), published))
    })
    .await?;
    if applied.1 {
        state.outbox.nudge();
    }
    Ok(applied.0)
}

pub async fn run_applier(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let wait = match apply_due_events(&state).await {
            Ok(200) => Duration::ZERO,
            Ok(_) => Duration::from_millis(250),
            Err(e) => {
                tracing::warn!(error = %platform::problem::chain(&e), "the event applier failed a round");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = state.events.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
}

pub async fn run_reconciler(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = saga::reconcile(&state).await {
            tracing::warn!(error = %platform::problem::chain(&e), "a reconciler round failed");
        }
        if let Err(e) = changes::reconcile(&state).await {
            tracing::warn!(error = %platform::problem::chain(&e), "a reconciler round of member changes failed");
        }
        tokio::select! {
            _ = state.reconcile.notified() => {}
            _ = tokio::time::sleep(state.settings.reconcile_every) => {}
            _ = shutdown.changed() => break,
        }
    }
}

pub const EVENTS_CURSOR: &str = "workos_events";

/// One read of the WorkOS Events API from the stored cursor: the events
/// and the new cursor are stored in one transaction. How many came.
pub async fn read_events_once(state: &AppState) -> Result<usize, ApiError> {
    let Provider::WorkOs(workos) = &state.provider else {
        return Ok(0);
    };
    let after = with_conn(&state.pool, |c| {
        store::cursor(c, EVENTS_CURSOR).map_err(ApiError::from)
    })
    .await?;
    let page = workos.events_after(after.as_deref()).await?;
    let n = page.events.len();
    if n == 0 {
        return Ok(0);
    }
    let stored = with_conn(&state.pool, move |c| {
        c.transaction(|c| -> diesel::QueryResult<usize> {
            let mut new = 0;
            for e in &page.events {
                let id = e.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                let name = e.get("event").and_then(|v| v.as_str()).unwrap_or_default();
                if !id.is_empty() && store::store_event(c, id, name, e, "events_api")? {
                    new += 1;
                }
            }
            if let Some(a) = &page.after {
                store::set_cursor(c, EVENTS_CURSOR, a)?;
            }
            Ok(new)
        })
        .map_err(ApiError::from)
    })
    .await?;
    if stored > 0 {
        tracing::info!(events = stored, "the Events API filled a gap webhooks left");
        state.events.notify_one();
    }
    Ok(n)
}

pub async fn run_events_reader(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let wait = match read_events_once(&state).await {
            Ok(100) => Duration::ZERO,
            Ok(_) => state.settings.events_poll,
            Err(e) => {
                tracing::warn!(error = %platform::problem::chain(&e), "reading the WorkOS Events API failed");
                state.settings.events_poll
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// Resumes the import jobs a stop interrupted.
pub async fn resume_imports(state: web::Data<AppState>) {
    match with_conn(&state.pool, |c| {
        store::running_jobs(c).map_err(ApiError::from)
    })
    .await
    {
        Ok(jobs) => {
            for job in jobs {
                tracing::info!(job.id = %job.id, "resuming an import job");
                let s = state.clone();
                tokio::spawn(async move { import::run_job(&s, job).await });
            }
        }
        Err(e) => {
            tracing::warn!(error = %platform::problem::chain(&e), "cannot list import jobs to resume")
        }
    }
}
