//! Tasks, the catalogue and the users read model in PostgreSQL.
//! Synchronous diesel functions, called through `platform::db::with_conn`.
//! Every query is built with diesel's DSL from parsed domain values, but
//! for `/own`'s page ([`own_tasks`]): fixed SQL text, values bound.
//!
//! One file per aggregate: [`schema`] the tables; `catalogue` the
//! catalogue; `users` the users read model; `tasks` one task, its changes
//! and its status history; `events` their `task.v1` events, written in the
//! changes' transactions; `list` the filtered, sorted task list; `own`
//! `/own`'s page; `summary` the counts per assignee. Callers use the
//! re-exports below.

mod catalogue;
mod events;
mod list;
mod own;
pub mod schema;
mod summary;
mod tasks;
mod users;

pub use catalogue::load_catalogue;
pub use list::{list_tasks, Filter, ListQuery};
pub use own::{own_fast_sort, own_tasks, TaskRow};
pub use summary::{rollup_answers, summary_counts, summary_users, task_counts};
pub use tasks::{
    assign, delete_task, edit_task, history, insert_task, lock_task, set_status, task_exists,
    task_view, Deleted, Edited, HistoryEntry, Lockable, NewTask, TaskEdit, TaskView,
};
pub use users::{truncate_users, user, user_by_username, User};
