//! The task-management design's task endpoints: list one's own or all tasks, create, move
//! along the workflow, assign; and the tracker's other operations: change a
//! task's fields, type or price, delete it. Each needs an access token with
//! its scope; each change writes its `task.v1` event in its transaction.

use actix_web::{
    web::{self, Bytes},
    HttpResponse,
};
use diesel::{pg::PgConnection, Connection, QueryResult};
use platform::{coherent::Lookup, db::with_conn, server::json_bytes};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{
    auth::{
        Authenticated, CreateTask, DeleteTask, EditTask, ReadTask, Reader, SuEditTask, SuReadTask,
        UserCaller, READ, SU_READ,
    },
    cache::{PageKey, PAGE_MAX_BYTES},
    catalogue::Catalogue,
    catalogue::MoveRefusal,
    domain::{
        parse_description, parse_timestamp, DateRange, Direction, FieldChanges, Page, Price,
        TaskFilter, TaskSort, Title, UserRef,
    },
    error::ApiError,
    state::AppState,
    store::{self, Deleted, Edited, Filter, ListQuery, NewTask, TaskEdit, TaskView},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/task/own", web::post().to(own))
        .route("/v1/task/all", web::post().to(all))
        .route("/v1/task", web::post().to(create))
        .route("/v1/task/assignment", web::post().to(assign))
        .route("/v1/tasks/{id}", web::post().to(move_status))
        .route("/v1/tasks/{id}", web::get().to(get))
        .route("/v1/tasks/{id}", web::patch().to(edit))
        .route("/v1/tasks/{id}", web::delete().to(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnRequest {
    start_date: Option<String>,
    end_date: Option<String>,
    #[serde(rename = "_from")]
    from: Option<i64>,
    #[serde(rename = "_size", alias = "size")]
    size: Option<i64>,
    sort: Option<String>,
    #[serde(default)]
    counting: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllRequest {
    start_date: Option<String>,
    end_date: Option<String>,
    #[serde(rename = "_from")]
    from: Option<i64>,
    #[serde(rename = "_size", alias = "size")]
    size: Option<i64>,
    sort: Option<String>,
    #[serde(default)]
    counting: bool,
    #[serde(default)]
    query: Map<String, Value>,
}

#[derive(Serialize)]
struct TaskList {
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<i64>,
    tasks: Vec<TaskView>,
}

/// A user reference resolved against the read model; `None` when nobody
/// by that name or id is known.
pub fn resolve(conn: &mut PgConnection, r: &UserRef) -> QueryResult<Option<store::User>> {
    match r {
        UserRef::Id(id) => store::user(conn, *id),
        UserRef::Username(name) => store::user_by_username(conn, name),
    }
}

/// Resolves the users a filter names; `None` when one is unknown (then
/// nothing can match).
pub fn resolve_filter(conn: &mut PgConnection, f: &TaskFilter) -> QueryResult<Option<Filter>> {
    let mut out = Filter {
        status_id: f.status_id,
        type_id: f.type_id,
        severity_id: f.severity_id,
        ..Filter::default()
    };
    match &f.assignee {
        Some(Some(r)) => match resolve(conn, r)? {
            Some(u) => out.assignee = Some(Some(u.id)),
            None => return Ok(None),
        },
        Some(None) => out.assignee = Some(None),
        None => {}
    }
    if let Some(r) = &f.creator {
        match resolve(conn, r)? {
            Some(u) => out.creator = Some(u.id),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

async fn list(state: &AppState, q: ListQuery, filter: TaskFilter) -> Result<TaskList, ApiError> {
    let (tasks, count) = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        let Some(resolved) = resolve_filter(c, &filter)? else {
            return Ok((Vec::new(), q.counting.then_some(0)));
        };
        // The caller's own assignee filter wins over anything resolved.
        let q = ListQuery {
            filter: Filter {
                assignee: q.filter.assignee.or(resolved.assignee),
                ..resolved
            },
            ..q
        };
        Ok(store::list_tasks(c, &q)?)
    })
    .await?;
    Ok(TaskList { count, tasks })
}

/// `POST /v1/task/own` (`read:task`): the caller's tasks created between
/// `start_date` and `end_date`, paged by `_from`/`_size`, sorted by `sort`,
/// with the total when `counting` is true.
async fn own(
    caller: UserCaller<ReadTask>,
    state: web::Data<AppState>,
    body: web::Json<OwnRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let q = ListQuery {
        range: DateRange::parse(b.start_date.as_deref(), b.end_date.as_deref())?,
        filter: Filter {
            assignee: Some(Some(caller.user.id)),
            ..Filter::default()
        },
        page: Page::parse(b.from, b.size)?,
        sort: TaskSort::parse(b.sort.as_deref())?.0,
        counting: b.counting,
    };
    let Some(dir) = store::own_fast_sort(&q.sort) else {
        return Ok(HttpResponse::Ok().json(list(&state, q, TaskFilter::default()).await?));
    };
    // By creation time (the default): one prepared query on `task`, its
    // answer kept until the caller's tasks change (see `cache`).
    let me = caller.user;
    let (start, end) = q.range.bounds();
    let key = PageKey {
        start: start.timestamp_micros(),
        end: end.timestamp_micros(),
        from: q.page.from,
        size: q.page.size,
        newest_first: dir == Direction::Desc,
        counting: q.counting,
    };
    let generation = match state.pages.lookup(&me.id, &key) {
        Lookup::Hit(body) => return Ok(json_bytes(body)),
        Lookup::Miss(g) => Some(g),
        Lookup::Bypass => None,
    };
    let cat = state.catalogue.clone();
    let id = me.id;
    let (tasks, count) = with_conn(&state.pool, move |c| {
        store::own_tasks(c, &me, &cat, q.range, q.page, dir, q.counting).map_err(ApiError::from)
    })
    .await?;
    let body = Bytes::from(
        serde_json::to_vec(&TaskList { count, tasks }).map_err(|e| ApiError::Internal(e.into()))?,
    );
    if let Some(g) = generation.filter(|_| body.len() <= PAGE_MAX_BYTES) {
        state.pages.fill(id, key, body.clone(), g);
    }
    Ok(json_bytes(body))
}

/// `POST /v1/task/all` (`su_read:task`): every task, as `own` plus `query`
/// (equality on assignee, creator, status_id, type_id, severity_id).
async fn all(
    _caller: Reader<SuReadTask>,
    state: web::Data<AppState>,
    body: web::Json<AllRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let filter = TaskFilter::parse(&b.query)?;
    let q = ListQuery {
        range: DateRange::parse(b.start_date.as_deref(), b.end_date.as_deref())?,
        filter: Filter::default(),
        page: Page::parse(b.from, b.size)?,
        sort: TaskSort::parse(b.sort.as_deref())?.0,
        counting: b.counting,
    };
    Ok(HttpResponse::Ok().json(list(&state, q, filter).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    title: String,
    type_id: i32,
    severity_id: Option<i32>,
    assignee: Option<String>,
    description: Option<String>,
    due_date: Option<String>,
    parent: Option<Uuid>,
    /// Whole cents; the service's default price when absent.
    price_cents: Option<Value>,
}

/// The assignee named by `raw`, which must be a known, active user.
async fn assignable(state: &AppState, raw: &str) -> Result<Uuid, ApiError> {
    let r = UserRef::parse("assignee", raw)?;
    let user = with_conn(&state.pool, move |c| resolve(c, &r).map_err(ApiError::from)).await?;
    match user {
        Some(u) if u.usable() => Ok(u.id),
        Some(u) if u.known() => Err(ApiError::unknown(
            "inactive-assignee",
            "assignee",
            "the assignee's account is deactivated",
        )),
        _ => Err(ApiError::unknown(
            "unknown-assignee",
            "assignee",
            "no active user by that name or id is known",
        )),
    }
}

/// Where a task of `type_id` starts; 422 `unknown-type` naming the types
/// there are when there is no such type.
fn initial_status(cat: &Catalogue, type_id: i32) -> Result<i32, ApiError> {
    cat.initial_status(type_id).ok_or_else(|| {
        ApiError::unknown(
            "unknown-type",
            "type_id",
            format!(
                "no task type {type_id}; known: {}",
                cat.types
                    .values()
                    .map(|t| format!("{} ({})", t.id, t.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

async fn load_view(state: &AppState, id: Uuid) -> Result<TaskView, ApiError> {
    with_conn(&state.pool, move |c| {
        store::task_view(c, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no task {id}")))
}

/// `POST /v1/task` (`create:task`): `{title, type_id, severity_id?,
/// assignee?, description?, due_date?, parent?, price_cents?}`. The caller
/// is the creator; the task starts in the first status of its type's
/// workflow, at the default price unless it names one, with the fee and
/// reward of that price. 201 with the task.
async fn create(
    caller: UserCaller<CreateTask>,
    state: web::Data<AppState>,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let title = Title::parse(&b.title)?.into_inner();
    let description = b
        .description
        .as_deref()
        .map(parse_description)
        .transpose()?;
    let due_date = b
        .due_date
        .as_deref()
        .map(|d| parse_timestamp("due_date", d))
        .transpose()?;
    let price = match &b.price_cents {
        Some(raw) => Price::parse(raw)?,
        None => state.settings.default_price,
    };
    let cat = &state.catalogue;
    let status_id = initial_status(cat, b.type_id)?;
    if let Some(s) = b.severity_id {
        if !cat.severities.contains_key(&s) {
            return Err(ApiError::unknown(
                "unknown-severity",
                "severity_id",
                format!("no severity {s}"),
            ));
        }
    }
    let assignee = match b.assignee.as_deref() {
        Some(raw) => Some(assignable(&state, raw).await?),
        None => None,
    };
    let new = NewTask {
        title,
        description,
        creator: caller.user.id,
        assignee,
        type_id: b.type_id,
        severity_id: b.severity_id,
        status_id,
        parent: b.parent,
        due_date,
        amounts: state.settings.pricing.amounts(price),
    };
    let id = with_conn(&state.pool, move |c| -> Result<Uuid, ApiError> {
        if let Some(p) = new.parent {
            if !store::task_exists(c, p)? {
                return Err(ApiError::unknown(
                    "unknown-parent",
                    "parent",
                    format!("no task {p}"),
                ));
            }
        }
        Ok(store::insert_task(c, new)?)
    })
    .await?;
    state.outbox.nudge();
    if let Some(a) = assignee {
        state.pages.changed(&a);
    }
    let view = load_view(&state, id).await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, format!("/v1/tasks/{id}")))
        .json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveRequest {
    status_id: i32,
}

/// `POST /v1/tasks/{id}` (`edit:task`): `{status_id}` moves the caller's
/// own task along its type's workflow; a move needing approval needs the
/// approving role, whose holder may make it on anyone's task. 204; 403 for
/// another's task (unless approving) or a missing approval, 409 for a move
/// the workflow does not have.
async fn move_status(
    caller: UserCaller<EditTask>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<MoveRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, to) = (id.into_inner(), body.into_inner().status_id);
    let cat = state.catalogue.clone();
    let user = caller.user;
    let assignee = with_conn(&state.pool, move |c| {
        c.transaction::<_, ApiError, _>(|c| {
            let t = store::lock_task(c, id)?
                .ok_or_else(|| ApiError::NotFound(format!("no task {id}")))?;
            let name = |s: i32| cat.status_name(s).to_owned();
            let mine = t.assignee == Some(user.id);
            match cat.check_move_as(t.type_id, t.status_id, to, &user.roles, mine) {
                Ok(()) => {
                    store::set_status(c, &t, to, user.id, &cat)?;
                    Ok(t.assignee)
                }
                Err(MoveRefusal::NotAssignee) => Err(ApiError::Forbidden(
                    "only the task's assignee may change its status (an approver may make the moves that need approval)".into(),
                )),
                Err(MoveRefusal::UnknownStatus) => Err(ApiError::unknown(
                    "unknown-status",
                    "status_id",
                    format!("no status {to}"),
                )),
                Err(MoveRefusal::NoTransition { allowed }) => Err(ApiError::TransitionNotAllowed {
                    from: name(t.status_id),
                    to: name(to),
                    allowed,
                }),
                Err(MoveRefusal::NeedsRole(role)) => Err(ApiError::ApprovalRequired {
                    role,
                    from: name(t.status_id),
                    to: name(to),
                }),
            }
        })
    })
    .await?;
    state.outbox.nudge();
    if let Some(a) = assignee {
        state.pages.changed(&a);
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    task_id: Uuid,
    assignee: String,
}

/// `POST /v1/task/assignment` (`su_edit:task`): `{task_id, assignee}` sets
/// the assignee (a known, active user) and nothing else. 200 with the task.
async fn assign(
    caller: UserCaller<SuEditTask>,
    state: web::Data<AppState>,
    body: web::Json<AssignRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let assignee = assignable(&state, &b.assignee).await?;
    let (task_id, by) = (b.task_id, caller.user.id);
    let before = with_conn(&state.pool, move |c| {
        store::assign(c, task_id, assignee, by).map_err(ApiError::from)
    })
    .await?;
    let Some(before) = before else {
        return Err(ApiError::NotFound(format!("no task {task_id}")));
    };
    state.outbox.nudge();
    for a in before.iter().chain([&assignee]) {
        state.pages.changed(a);
    }
    Ok(HttpResponse::Ok().json(load_view(&state, task_id).await?))
}

/// `PATCH /v1/tasks/{id}` (`su_edit:task`): changes any of `title`,
/// `description`, `due_date`, `type_id` and `price_cents` of any task
/// (`null` clears a description or a due date). A new type moves the task
/// onto its workflow: the same status when that workflow has it, else its
/// initial status. A new price brings the fee and reward of the current
/// ratios. 200 with the task; one event per kind of change.
async fn edit(
    caller: UserCaller<SuEditTask>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let changes = FieldChanges::parse(&body.into_inner())?;
    if let Some(t) = changes.type_id {
        initial_status(&state.catalogue, t)?;
    }
    let edit = TaskEdit {
        title: changes.title.map(Title::into_inner),
        description: changes.description,
        due_date: changes.due_date,
        type_id: changes.type_id,
        amounts: changes.price.map(|p| state.settings.pricing.amounts(p)),
    };
    let (cat, by) = (state.catalogue.clone(), caller.user.id);
    let outcome = with_conn(&state.pool, move |c| {
        store::edit_task(c, id, &edit, by, &cat).map_err(ApiError::from)
    })
    .await?;
    match outcome {
        Edited::NoSuchTask => return Err(ApiError::NotFound(format!("no task {id}"))),
        Edited::Done { assignee } => {
            state.outbox.nudge();
            if let Some(a) = assignee {
                state.pages.changed(&a);
            }
        }
    }
    Ok(HttpResponse::Ok().json(load_view(&state, id).await?))
}

/// `DELETE /v1/tasks/{id}` (`delete:task`): deletes the task and its
/// status history. 204; 404 for no such task, 409 `task-has-subtasks`
/// when other tasks name it as their parent.
async fn delete(
    caller: UserCaller<DeleteTask>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (id.into_inner(), caller.user.id);
    let outcome = with_conn(&state.pool, move |c| {
        store::delete_task(c, id, by).map_err(ApiError::from)
    })
    .await?;
    match outcome {
        Deleted::NoSuchTask => Err(ApiError::NotFound(format!("no task {id}"))),
        Deleted::HasSubtasks => Err(ApiError::HasSubtasks(id)),
        Deleted::Done { assignee } => {
            state.outbox.nudge();
            if let Some(a) = assignee {
                state.pages.changed(&a);
            }
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

#[derive(Serialize)]
struct TaskWithHistory {
    #[serde(flatten)]
    task: TaskView,
    history: Vec<store::HistoryEntry>,
}

/// `GET /v1/tasks/{id}` (`su_read:task`, or `read:task` for a task one is
/// assigned or created): the task and its status history.
async fn get(
    caller: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !caller.holds(SU_READ) && !caller.holds(READ) {
        return Err(ApiError::MissingScope(READ));
    }
    let found = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        let Some(task) = store::task_view(c, id)? else {
            return Ok(None);
        };
        Ok(Some((task, store::history(c, id)?)))
    })
    .await?;
    let involved = |t: &TaskView| {
        caller
            .user()
            .is_some_and(|u| t.assignee_id == Some(u.id) || t.creator_id == u.id)
    };
    match found {
        Some((task, history)) if caller.holds(SU_READ) || involved(&task) => {
            Ok(HttpResponse::Ok().json(TaskWithHistory { task, history }))
        }
        // Someone else's task looks like no task to a plain reader.
        _ => Err(ApiError::NotFound(format!("no task {id}"))),
    }
}
