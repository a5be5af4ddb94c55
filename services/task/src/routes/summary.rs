//! The employer's report: per employee, how many tasks were created for
//! them in the date range and how many of those are completed.

use std::{cmp::Ordering, collections::HashMap};

use actix_web::{web, HttpResponse};
use platform::db::with_conn;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::tasks::resolve_filter;
use crate::{
    auth::{Reader, SuReadTask},
    domain::{DateRange, Direction, Invalid, Page, SummarySort, SummarySortField, TaskFilter},
    error::ApiError,
    state::AppState,
    store,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/task/summary", web::post().to(summary));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryRequest {
    start_date: Option<String>,
    end_date: Option<String>,
    #[serde(rename = "_from")]
    from: Option<i64>,
    #[serde(rename = "_size", alias = "size")]
    size: Option<i64>,
    sort: Option<String>,
    #[serde(default)]
    query: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
struct Row {
    user_id: Uuid,
    username: Option<String>,
    total: i64,
    completed: i64,
}

#[derive(Serialize)]
struct Report {
    /// How many rows the report has in all (before paging).
    count: usize,
    report: Vec<Row>,
}

fn compare(a: &Row, b: &Row, sort: &SummarySort) -> Ordering {
    for (field, dir) in &sort.0 {
        let o = match field {
            SummarySortField::Username => a.username.cmp(&b.username),
            SummarySortField::Total => a.total.cmp(&b.total),
            SummarySortField::Completed => a.completed.cmp(&b.completed),
        };
        let o = if *dir == Direction::Desc {
            o.reverse()
        } else {
            o
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.username.cmp(&b.username).then(a.user_id.cmp(&b.user_id))
}

/// `POST /v1/task/summary` (`su_read:task`): per employee, total and
/// completed tasks created in the date range, honouring `query` (as in
/// `/v1/task/all`), `sort` (`username`, `total`, `completed`, `-` for
/// descending) and `_from`/`_size`. Employees (holders of `SUMMARY_ROLE`)
/// without tasks show zeros; anyone else with matching tasks shows too.
async fn summary(
    _caller: Reader<SuReadTask>,
    state: web::Data<AppState>,
    body: web::Json<SummaryRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let range = DateRange::parse(b.start_date.as_deref(), b.end_date.as_deref())?;
    let page = Page::parse(b.from, b.size)?;
    let sort = SummarySort::parse(b.sort.as_deref())?;
    let filter = TaskFilter::parse(&b.query)?;
    if filter.assignee == Some(None) {
        return Err(Invalid::new(
            "query.assignee",
            "user_reference",
            "the summary is per assignee: query.assignee must name one",
        )
        .into());
    }
    let completed = state.catalogue.completed_status_id().unwrap_or(-1);
    let role = state.settings.summary_role.clone();
    let mut rows = with_conn(&state.pool, move |c| -> Result<Vec<Row>, ApiError> {
        let Some(resolved) = resolve_filter(c, &filter)? else {
            return Ok(Vec::new());
        };
        let counts = store::summary_counts(c, range, &resolved, completed)?;
        let only = resolved.assignee.flatten();
        let ids: Vec<Uuid> = counts.iter().map(|(id, _, _)| *id).collect();
        let users = store::summary_users(c, ids, &role, only)?;
        let mut rows: HashMap<Uuid, Row> = users
            .into_iter()
            .map(|u| {
                let row = Row {
                    user_id: u.id,
                    username: u.username,
                    total: 0,
                    completed: 0,
                };
                (u.id, row)
            })
            .collect();
        for (id, total, done) in counts {
            // An assignee the read model lost (truncated, rebuilding) still counts.
            let row = rows.entry(id).or_insert(Row {
                user_id: id,
                username: None,
                total: 0,
                completed: 0,
            });
            row.total = total;
            row.completed = done;
        }
        Ok(rows.into_values().collect())
    })
    .await?;
    rows.sort_by(|a, b| compare(a, b, &sort));
    let count = rows.len();
    let report = rows
        .into_iter()
        .skip(page.from as usize)
        .take(page.size as usize)
        .collect();
    Ok(HttpResponse::Ok().json(Report { count, report }))
}
