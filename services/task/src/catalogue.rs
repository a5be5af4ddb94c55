//! Statuses, severities, types and their workflows: seeded by the
//! migration, read once at start, and the rules of who may move a task
//! where. Pure logic, no I/O.

use std::collections::BTreeMap;

use crate::error::AllowedMove;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskType {
    pub id: i32,
    pub name: String,
    pub workflow_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub id: i32,
    pub name: String,
    pub initial_status_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub workflow_id: i32,
    pub from_status_id: i32,
    pub to_status_id: i32,
    /// The role the caller must hold for this move, if any.
    pub approver_role: Option<String>,
}

/// The name of the status the summary counts as done.
pub const COMPLETED: &str = "Completed";

#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub statuses: BTreeMap<i32, String>,
    pub severities: BTreeMap<i32, String>,
    pub types: BTreeMap<i32, TaskType>,
    pub workflows: BTreeMap<i32, Workflow>,
    pub transitions: Vec<Transition>,
}

/// Why a move is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveRefusal {
    UnknownStatus,
    NoTransition {
        allowed: Vec<AllowedMove>,
    },
    NeedsRole(String),
    /// The caller is not the task's assignee, and the move is not one
    /// they approve.
    NotAssignee,
}

impl Catalogue {
    pub fn status_name(&self, id: i32) -> &str {
        self.statuses.get(&id).map(String::as_str).unwrap_or("?")
    }

    pub fn completed_status_id(&self) -> Option<i32> {
        self.statuses
            .iter()
            .find(|(_, n)| n.as_str() == COMPLETED)
            .map(|(id, _)| *id)
    }

    /// Where a new task of `type_id` starts; `None` for an unknown type.
    pub fn initial_status(&self, type_id: i32) -> Option<i32> {
        let t = self.types.get(&type_id)?;
        Some(self.workflows.get(&t.workflow_id)?.initial_status_id)
    }

    fn workflow_of(&self, type_id: i32) -> Option<i32> {
        self.types.get(&type_id).map(|t| t.workflow_id)
    }

    /// The moves the workflow of `type_id` offers from `from`.
    pub fn moves_from(&self, type_id: i32, from: i32) -> Vec<AllowedMove> {
        let wf = self.workflow_of(type_id);
        self.transitions
            .iter()
            .filter(|t| Some(t.workflow_id) == wf && t.from_status_id == from)
            .map(|t| AllowedMove {
                status_id: t.to_status_id,
                status: self.status_name(t.to_status_id).to_owned(),
                approver_role: t.approver_role.clone(),
            })
            .collect()
    }

    /// May a caller holding `roles` move a task of `type_id` from `from`
    /// to `to`? Only transitions of the type's workflow exist; one that
    /// needs approval needs the approving role.
    pub fn check_move(
        &self,
        type_id: i32,
        from: i32,
        to: i32,
        roles: &[String],
    ) -> Result<(), MoveRefusal> {
        if !self.statuses.contains_key(&to) {
            return Err(MoveRefusal::UnknownStatus);
        }
        let wf = self.workflow_of(type_id);
        let Some(t) = self.transitions.iter().find(|t| {
            Some(t.workflow_id) == wf && t.from_status_id == from && t.to_status_id == to
        }) else {
            return Err(MoveRefusal::NoTransition {
                allowed: self.moves_from(type_id, from),
            });
        };
        match &t.approver_role {
            Some(role) if !roles.iter().any(|r| r == role) => {
                Err(MoveRefusal::NeedsRole(role.clone()))
            }
            _ => Ok(()),
        }
    }
}

impl Catalogue {
    /// May a caller holding `roles` (the task's assignee or not) move a
    /// task of `type_id` from `from` to `to`? The assignee may make the
    /// workflow's moves ([`Self::check_move`]). Anyone else may make only a
    /// move that needs approval, and only holding its approving role: the
    /// approver (an Employer) approves whoever's task it is.
    pub fn check_move_as(
        &self,
        type_id: i32,
        from: i32,
        to: i32,
        roles: &[String],
        assignee: bool,
    ) -> Result<(), MoveRefusal> {
        if assignee {
            return self.check_move(type_id, from, to, roles);
        }
        let wf = self.workflow_of(type_id);
        let approves = self.transitions.iter().any(|t| {
            Some(t.workflow_id) == wf
                && t.from_status_id == from
                && t.to_status_id == to
                && t.approver_role
                    .as_ref()
                    .is_some_and(|role| roles.iter().any(|r| r == role))
        });
        if approves {
            Ok(())
        } else {
            Err(MoveRefusal::NotAssignee)
        }
    }

    /// Whether the workflow of `type_id` has `status` (its initial status,
    /// or one a transition leaves or enters).
    fn has_status(&self, type_id: i32, status: i32) -> bool {
        let Some(wf) = self.workflow_of(type_id) else {
            return false;
        };
        self.workflows
            .get(&wf)
            .is_some_and(|w| w.initial_status_id == status)
            || self.transitions.iter().any(|t| {
                t.workflow_id == wf && (t.from_status_id == status || t.to_status_id == status)
            })
    }

    /// Where a task in `status` stands once its type becomes `type_id`:
    /// the same status when the new type's workflow has it, else that
    /// workflow's initial status. `status` for an unknown type.
    pub fn status_for_type(&self, type_id: i32, status: i32) -> i32 {
        if self.has_status(type_id, status) {
            status
        } else {
            self.initial_status(type_id).unwrap_or(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeded Task workflow.
    fn seeded() -> Catalogue {
        let mut c = Catalogue::default();
        for (id, n) in [
            (1, "To Do"),
            (2, "In Progress"),
            (3, "Pending"),
            (4, "Completed"),
        ] {
            c.statuses.insert(id, n.into());
        }
        c.workflows.insert(
            1,
            Workflow {
                id: 1,
                name: "Task workflow".into(),
                initial_status_id: 1,
            },
        );
        c.types.insert(
            1,
            TaskType {
                id: 1,
                name: "Task".into(),
                workflow_id: 1,
            },
        );
        for (from, to, role) in [
            (1, 2, None),
            (2, 4, None),
            (2, 3, Some("Employer")),
            (3, 2, Some("Employer")),
        ] {
            c.transitions.push(Transition {
                workflow_id: 1,
                from_status_id: from,
                to_status_id: to,
                approver_role: role.map(str::to_owned),
            });
        }
        c
    }

    #[test]
    fn only_the_workflows_transitions_exist() {
        let c = seeded();
        let none: Vec<String> = vec![];
        assert_eq!(c.initial_status(1), Some(1));
        assert_eq!(c.check_move(1, 1, 2, &none), Ok(()));
        match c.check_move(1, 1, 4, &none) {
            Err(MoveRefusal::NoTransition { allowed }) => {
                assert_eq!(allowed.len(), 1);
                assert_eq!(allowed[0].status, "In Progress");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.check_move(1, 1, 3, &none),
            Err(MoveRefusal::NoTransition { .. })
        ));
        assert!(matches!(
            c.check_move(1, 1, 1, &none),
            Err(MoveRefusal::NoTransition { .. })
        ));
        assert_eq!(
            c.check_move(1, 1, 9, &none),
            Err(MoveRefusal::UnknownStatus)
        );
        assert_eq!(c.completed_status_id(), Some(4));
    }

    #[test]
    fn pending_needs_the_approving_role_both_ways() {
        let c = seeded();
        let employee = vec!["Employee".to_owned()];
        let employer = vec!["Employer".to_owned()];
        assert_eq!(
            c.check_move(1, 2, 3, &employee),
            Err(MoveRefusal::NeedsRole("Employer".into()))
        );
        assert_eq!(c.check_move(1, 2, 3, &employer), Ok(()));
        assert_eq!(
            c.check_move(1, 3, 2, &employee),
            Err(MoveRefusal::NeedsRole("Employer".into()))
        );
        assert_eq!(c.check_move(1, 3, 2, &employer), Ok(()));
    }

    #[test]
    fn an_approver_may_make_approval_moves_on_anyones_task_and_nothing_else() {
        let c = seeded();
        let employer = vec!["Employer".to_owned()];
        let employee = vec!["Employee".to_owned()];
        assert_eq!(c.check_move_as(1, 2, 3, &employer, false), Ok(()));
        assert_eq!(c.check_move_as(1, 3, 2, &employer, false), Ok(()));
        for (from, to) in [(1, 2), (2, 4), (1, 3), (1, 9)] {
            assert_eq!(
                c.check_move_as(1, from, to, &employer, false),
                Err(MoveRefusal::NotAssignee),
                "{from} -> {to}"
            );
        }
        assert_eq!(
            c.check_move_as(1, 2, 3, &employee, false),
            Err(MoveRefusal::NotAssignee)
        );
        assert_eq!(
            c.check_move_as(1, 2, 3, &employee, true),
            Err(MoveRefusal::NeedsRole("Employer".into()))
        );
    }

    #[test]
    fn a_new_type_keeps_the_status_its_workflow_has_else_starts_over() {
        let mut c = seeded();
        // A workflow with only To Do and In Progress, starting in To Do.
        c.workflows.insert(
            2,
            Workflow {
                id: 2,
                name: "Short".into(),
                initial_status_id: 1,
            },
        );
        c.types.insert(
            2,
            TaskType {
                id: 2,
                name: "Chore".into(),
                workflow_id: 2,
            },
        );
        c.transitions.push(Transition {
            workflow_id: 2,
            from_status_id: 1,
            to_status_id: 2,
            approver_role: None,
        });
        assert_eq!(c.status_for_type(2, 2), 2);
        assert_eq!(c.status_for_type(2, 3), 1);
        assert_eq!(c.status_for_type(2, 4), 1);
        assert_eq!(c.status_for_type(1, 3), 3);
    }
}
