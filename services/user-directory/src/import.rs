//! Bulk import: a CSV file (header `email,first_name,last_name,
//! organization,role`, optionally `password_hash` and
//! `password_hash_type=bcrypt`, and `environment_role`: the file's default
//! when absent or empty) or a JSON array of the same objects. Every
//! row is attempted through the same creation saga as `POST /v1/users`;
//! each row's outcome is `created`, `exists` or `failed` with the reason,
//! so running a file twice creates nothing new. Files above
//! `IMPORT_SYNC_ROWS` rows run as a job whose progress is kept in the
//! database (and resumed after a restart).

use std::{collections::HashMap, sync::Arc};

use actix_web::web;

use futures::{stream, StreamExt};
use platform::db::with_conn;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    directory_config::OrganizationEntry,
    domain::{NewUser, UserFields},
    error::ApiError,
    saga,
    state::AppState,
    store::{self, Begin, Completion, Creation, Organization, Progress},
};

const REQUIRED: [&str; 5] = ["email", "first_name", "last_name", "organization", "role"];
const OPTIONAL: [&str; 3] = ["password_hash", "password_hash_type", "environment_role"];

/// One row of the file, as read (1-based, header excluded).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Row {
    pub row: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<UserFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RowOutcome {
    pub row: usize,
    pub email: String,
    /// `created`, `exists` or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn too_many_rows(max: usize) -> ApiError {
    ApiError::TooLarge {
        detail: format!("an import may hold at most {max} rows"),
        limit_name: "limit_rows",
        limit: max,
    }
}

pub fn parse_csv(bytes: &[u8], max_rows: usize) -> Result<Vec<Row>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::BadRequest(format!("the CSV header cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    if let Some(missing) = REQUIRED.iter().find(|r| !headers.iter().any(|h| h == *r)) {
        return Err(ApiError::BadRequest(format!(
            "the CSV header lacks the column {missing} (expected {})",
            REQUIRED.join(",")
        )));
    }
    if let Some(unknown) = headers
        .iter()
        .find(|h| !REQUIRED.contains(&h.as_str()) && !OPTIONAL.contains(&h.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "the CSV header has an unknown column {unknown:?}"
        )));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        if rows.len() >= max_rows {
            return Err(too_many_rows(max_rows));
        }
        let row = i + 1;
        let record = match record {
            Ok(r) if r.len() == headers.len() => r,
            Ok(r) => {
                rows.push(Row {
                    row,
                    fields: None,
                    error: Some(format!(
                        "the row has {} fields; the header has {}",
                        r.len(),
                        headers.len()
                    )),
                });
                continue;
            }
            Err(e) => {
                rows.push(Row {
                    row,
                    fields: None,
                    error: Some(format!("malformed CSV row: {e}")),
                });
                continue;
            }
        };
        let get = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .unwrap_or_default()
                .to_owned()
        };
        let opt = |name: &str| Some(get(name)).filter(|v| !v.is_empty());
        rows.push(Row {
            row,
            fields: Some(UserFields {
                email: get("email"),
                first_name: get("first_name"),
                last_name: get("last_name"),
                organization: get("organization"),
                role: get("role"),
                password_hash: opt("password_hash"),
                password_hash_type: opt("password_hash_type"),
                environment_role: opt("environment_role"),
            }),
            error: None,
        });
    }
    Ok(rows)
}

pub fn parse_json(bytes: &[u8], max_rows: usize) -> Result<Vec<Row>, ApiError> {
    let items: Vec<Value> = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!("the body must be a JSON array of users: {e}"))
    })?;
    if items.len() > max_rows {
        return Err(too_many_rows(max_rows));
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match serde_json::from_value::<UserFields>(v) {
            Ok(f) => Row {
                row: i + 1,
                fields: Some(f),
                error: None,
            },
            Err(e) => Row {
                row: i + 1,
                fields: None,
                error: Some(format!("invalid row: {e}")),
            },
        })
        .collect())
}

fn failed(row: usize, email: String, reason: impl Into<String>) -> RowOutcome {
    RowOutcome {
        row,
        email,
        outcome: "failed".into(),
        id: None,
        reason: Some(reason.into()),
    }
}

/// Rows recorded together before their provider calls (one transaction;
/// with the authenticator, one provider call).
const BEGIN_BATCH: usize = 200;
/// Finished rows written together (one transaction, one commit).
const WRITE_BATCH: usize = 200;

/// Where a row stands in the pipeline.
enum Step {
    /// Its outcome is known.
    Done(usize, RowOutcome),
    /// Recorded, its provider calls to make.
    Started(usize, usize, String, Box<Creation>, Box<NewUser>),
    /// Its provider calls made: the local write is next.
    Ready(usize, usize, String, Box<Completion>),
}

/// Runs `rows` (a slice of the file; `seen` carries the emails of earlier
/// rows across slices) for `org`. Every row goes through the creation saga
/// (see `saga`), as a pipeline: rows are recorded in batches, their
/// provider calls (each for as many of a batch's rows as the provider
/// takes at once) run `IMPORT_CONCURRENCY` at a time, and the local writes
/// of finished rows are committed in batches while further calls run.
pub async fn run_rows(
    state: &web::Data<AppState>,
    org: &Organization,
    rows: &[Row],
    seen: &mut HashMap<String, usize>,
) -> Vec<RowOutcome> {
    let config = state.config.current();
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; rows.len()];
    let mut work = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let email = r
            .fields
            .as_ref()
            .map(|f| f.email.trim().to_owned())
            .unwrap_or_default();
        let parsed = match (&r.fields, &r.error) {
            (_, Some(e)) => Err(e.clone()),
            (Some(f), None) => f.clone().parse(&config).map_err(|e| e.to_string()),
            (None, None) => Err("empty row".into()),
        };
        let new = match parsed {
            Ok(n) => n,
            Err(why) => {
                outcomes[i] = Some(failed(r.row, email, why));
                continue;
            }
        };
        if !new.organization.eq_ignore_ascii_case(&org.name) {
            outcomes[i] = Some(failed(
                r.row,
                email,
                format!(
                    "organization {}: you may import only into {}",
                    new.organization, org.name
                ),
            ));
            continue;
        }
        let key = new.email.as_str().to_lowercase();
        if let Some(first) = seen.get(&key) {
            outcomes[i] = Some(RowOutcome {
                row: r.row,
                email,
                outcome: "exists".into(),
                id: None,
                reason: Some(format!("same email as row {first}")),
            });
            continue;
        }
        seen.insert(key, r.row);
        work.push((i, r.row, email, new));
    }
    let Some(entry) = config.organization(&org.name).cloned() else {
        for (i, row, email, _) in work {
            outcomes[i] = Some(failed(
                row,
                email,
                "the organization left the directory config",
            ));
        }
        return outcomes.into_iter().flatten().collect();
    };
    let concurrency = state.settings.import.concurrency.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Step>(concurrency + WRITE_BATCH);
    let (entry, shared_org) = (Arc::new(entry), Arc::new(org.clone()));
    // Records each batch, then makes the provider calls of its rows, up to
    // the provider's batch size per call.
    let (s1, s2) = (state.clone(), state.clone());
    let mut steps = stream::iter(work)
        .chunks(BEGIN_BATCH)
        .then(move |batch| {
            let (state, org) = (s1.clone(), shared_org.clone());
            async move { begin_batch(&state, &org, batch).await }
        })
        .flat_map(stream::iter)
        .ready_chunks(state.provider.max_batch().max(1))
        .map(move |steps| {
            let (state, entry) = (s2.clone(), entry.clone());
            async move { call_provider(&state, steps, &entry).await }
        })
        .buffer_unordered(concurrency)
        .flat_map(stream::iter)
        .boxed();
    let calls = async move {
        while let Some(step) = steps.next().await {
            if tx.send(step).await.is_err() {
                break;
            }
        }
    };
    // Writes what the calls finished, a batch at a time.
    let writes = async {
        let mut finished = Vec::with_capacity(rows.len());
        let mut buffer = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut buffer, WRITE_BATCH).await > 0 {
            let mut ready = Vec::new();
            for step in buffer.drain(..) {
                match step {
                    Step::Done(i, o) => finished.push((i, o)),
                    Step::Ready(i, row, email, c) => ready.push((i, row, email, *c)),
                    Step::Started(..) => unreachable!("the calls stage starts every row"),
                }
            }
            if ready.is_empty() {
                continue;
            }
            let (who, batch): (Vec<_>, Vec<_>) = ready
                .into_iter()
                .map(|(i, row, email, c)| ((i, row, email), c))
                .unzip();
            let written = saga::complete(state, org, batch).await;
            for ((i, row, email), w) in who.into_iter().zip(written) {
                finished.push((
                    i,
                    match w {
                        Ok((u, _)) => RowOutcome {
                            row,
                            email,
                            outcome: "created".into(),
                            id: Some(u.id),
                            reason: None,
                        },
                        Err(e) => failed(row, email, reason(&e)),
                    },
                ));
            }
        }
        finished
    };
    let ((), finished) = futures::join!(calls, writes);
    for (i, o) in finished {
        outcomes[i] = Some(o);
    }
    outcomes.into_iter().flatten().collect()
}

fn reason(e: &ApiError) -> String {
    e.problem().detail.unwrap_or_else(|| e.to_string())
}

/// Makes the provider calls of the started rows among `steps` (one call
/// for all); the others pass through.
async fn call_provider(state: &AppState, steps: Vec<Step>, entry: &OrganizationEntry) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    let (mut who, mut creations) = (Vec::new(), Vec::new());
    for step in steps {
        match step {
            Step::Started(i, row, email, creation, new) => {
                who.push((i, row, email));
                creations.push((*creation, *new));
            }
            other => out.push(other),
        }
    }
    if creations.is_empty() {
        return out;
    }
    let results = saga::provider_steps(state, creations, entry).await;
    out.extend(
        who.into_iter()
            .zip(results)
            .map(|((i, row, email), r)| match r {
                Ok(ready) => Step::Ready(i, row, email, Box::new(ready)),
                Err(e) => Step::Done(i, failed(row, email, reason(&e))),
            }),
    );
    out
}

/// Records one batch of rows: each row started, or its outcome known (an
/// existing user, a creation in flight elsewhere, the database down).
async fn begin_batch(
    state: &AppState,
    org: &Organization,
    batch: Vec<(usize, usize, String, NewUser)>,
) -> Vec<Step> {
    let users: Vec<&NewUser> = batch.iter().map(|(_, _, _, n)| n).collect();
    let begun = saga::begin(state, org, &users).await;
    match begun {
        Ok(begun) => batch
            .into_iter()
            .zip(begun)
            .map(|((i, row, email, new), b)| match b {
                Begin::Started(c) => Step::Started(i, row, email, Box::new(c), Box::new(new)),
                Begin::Exists(u) => Step::Done(
                    i,
                    RowOutcome {
                        row,
                        email,
                        outcome: "exists".into(),
                        id: Some(u.id),
                        reason: None,
                    },
                ),
                Begin::InFlight => {
                    Step::Done(i, failed(row, email, reason(&ApiError::CreationInProgress)))
                }
            })
            .collect(),
        Err(e) => {
            let why = reason(&e);
            batch
                .into_iter()
                .map(|(i, row, email, _)| Step::Done(i, failed(row, email, why.clone())))
                .collect()
        }
    }
}

/// A summary in the shape of a job.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub status: &'static str,
    pub total: usize,
    pub processed: usize,
    pub created: usize,
    pub exists: usize,
    pub failed: usize,
    pub rows: Vec<RowOutcome>,
}

fn count(rows: &[RowOutcome], what: &str) -> usize {
    rows.iter().filter(|r| r.outcome == what).count()
}

impl Summary {
    pub fn of(total: usize, rows: Vec<RowOutcome>) -> Self {
        Self {
            status: "finished",
            total,
            processed: rows.len(),
            created: count(&rows, "created"),
            exists: count(&rows, "exists"),
            failed: count(&rows, "failed"),
            rows,
        }
    }
}

const CHUNK: usize = 250;

/// Runs (or resumes) a job to its end, saving progress after each chunk.
pub async fn run_job(state: &web::Data<AppState>, job: store::ImportJob) {
    let org_id = job.organization_id;
    let org = match with_conn(&state.pool, move |c| {
        store::organization(c, org_id).map_err(ApiError::from)
    })
    .await
    {
        Ok(Some(o)) => o,
        Ok(None) => return, // the organization went; its jobs with it
        Err(e) => {
            tracing::error!(job.id = %job.id, error = %platform::problem::chain(&e), "cannot load the job's organization");
            return;
        }
    };
    let rows: Vec<Row> = job
        .input
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut done: Vec<RowOutcome> = serde_json::from_value(job.results.clone()).unwrap_or_default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (r, o) in rows.iter().zip(done.iter()) {
        if let Some(f) = &r.fields {
            if o.outcome != "failed" {
                seen.entry(f.email.trim().to_lowercase()).or_insert(r.row);
            }
        }
    }
    let start = done.len().min(rows.len());
    for chunk in rows[start..].chunks(CHUNK) {
        let outcomes = run_rows(state, &org, chunk, &mut seen).await;
        done.extend(outcomes);
        let finished = done.len() >= rows.len();
        let p = Progress {
            processed: done.len() as i32,
            created: count(&done, "created") as i32,
            existing: count(&done, "exists") as i32,
            failed: count(&done, "failed") as i32,
            results: serde_json::to_value(&done).unwrap_or(Value::Null),
            finished,
        };
        let id = job.id;
        if let Err(e) = with_conn(&state.pool, move |c| {
            store::job_progress(c, id, &p).map_err(ApiError::from)
        })
        .await
        {
            tracing::error!(job.id = %job.id, error = %platform::problem::chain(&e), "saving import progress failed");
            return;
        }
    }
    if rows.is_empty() || start >= rows.len() {
        let id = job.id;
        let p = Progress {
            processed: done.len() as i32,
            created: count(&done, "created") as i32,
            existing: count(&done, "exists") as i32,
            failed: count(&done, "failed") as i32,
            results: serde_json::to_value(&done).unwrap_or(Value::Null),
            finished: true,
        };
        let _ = with_conn(&state.pool, move |c| {
            store::job_progress(c, id, &p).map_err(ApiError::from)
        })
        .await;
    }
    tracing::info!(job.id = %job.id, rows = rows.len(), "import job finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_read_with_their_numbers() {
        let csv = "email,first_name,last_name,organization,role\n\
                   a@x.io,A,One,acme,member\n\
                   b@x.io,B\n\
                   \"c@x.io\",C,Three,acme,viewer\n";
        let rows = parse_csv(csv.as_bytes(), 10).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].fields.as_ref().unwrap().email, "a@x.io");
        assert!(rows[1].error.is_some());
        assert_eq!(rows[2].row, 3);
    }

    #[test]
    fn csv_header_must_name_the_columns() {
        assert!(parse_csv(b"email,name\nx,y\n", 10).is_err());
        assert!(parse_csv(
            b"email,first_name,last_name,organization,role,shoe_size\n",
            10
        )
        .is_err());
    }

    #[test]
    fn too_many_rows_is_413() {
        let csv = "email,first_name,last_name,organization,role\na@x.io,A,B,acme,member\nb@x.io,A,B,acme,member\n";
        assert!(matches!(
            parse_csv(csv.as_bytes(), 1),
            Err(ApiError::TooLarge { limit: 1, .. })
        ));
        assert!(matches!(
            parse_json(b"[{},{}]", 1),
            Err(ApiError::TooLarge { .. })
        ));
    }
}
