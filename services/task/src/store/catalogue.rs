//! The catalogue the migrations insert (statuses, severities, workflows,
//! transitions and task types), read once at startup.

use std::collections::BTreeMap;

use diesel::{pg::PgConnection, prelude::*};

use super::schema::{task_severity, task_status, task_type, transition, workflow};
use crate::catalogue::{Catalogue, TaskType, Transition, Workflow};

/// Loads the catalogue that the migrations insert: statuses, severities,
/// workflows and task types.
pub fn load_catalogue(conn: &mut PgConnection) -> QueryResult<Catalogue> {
    let statuses: BTreeMap<i32, String> = task_status::table
        .select((task_status::id, task_status::name))
        .load::<(i32, String)>(conn)?
        .into_iter()
        .collect();
    let severities = task_severity::table
        .select((task_severity::id, task_severity::name))
        .load::<(i32, String)>(conn)?
        .into_iter()
        .collect();
    let workflows = workflow::table
        .select((workflow::id, workflow::name, workflow::initial_status_id))
        .load::<(i32, String, i32)>(conn)?
        .into_iter()
        .map(|(id, name, initial_status_id)| {
            (
                id,
                Workflow {
                    id,
                    name,
                    initial_status_id,
                },
            )
        })
        .collect();
    let types = task_type::table
        .select((task_type::id, task_type::name, task_type::workflow_id))
        .load::<(i32, String, i32)>(conn)?
        .into_iter()
        .map(|(id, name, workflow_id)| {
            (
                id,
                TaskType {
                    id,
                    name,
                    workflow_id,
                },
            )
        })
        .collect();
    let transitions = transition::table
        .order(transition::id.asc())
        .select((
            transition::workflow_id,
            transition::from_status_id,
            transition::to_status_id,
            transition::approver_role,
        ))
        .load::<(i32, i32, i32, Option<String>)>(conn)?
        .into_iter()
        .map(
            |(workflow_id, from_status_id, to_status_id, approver_role)| Transition {
                workflow_id,
                from_status_id,
                to_status_id,
                approver_role,
            },
        )
        .collect();
    Ok(Catalogue {
        statuses,
        severities,
        types,
        workflows,
        transitions,
    })
}
