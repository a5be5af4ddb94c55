//! The tracker's other operations: changing a task's fields and type,
//! deleting it, and an Employer approving moves on anyone's task.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    helpers::{assert_problem, spawn, COMPLETED, EMPLOYEE_SCOPES, IN_PROGRESS, PENDING, TO_DO},
    prices_and_events::{events_of, kinds, patch, payload, EMPLOYER_SCOPES},
};

#[tokio::test]
async fn a_change_of_type_moves_the_task_onto_the_new_types_workflow() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let t = p
        .create(
            &bt,
            json!({"title": "Paint the fence", "type_id": 1, "assignee": ann.id,
                   "description": "white", "due_date": "2030-01-01 00:00:00"}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    for to in [IN_PROGRESS, COMPLETED] {
        assert_eq!(
            p.move_to(&at, &id, to).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    // A completed Task cannot be reopened...
    assert_problem(p.move_to(&at, &id, IN_PROGRESS).await, StatusCode::CONFLICT).await;

    // ...a completed Bug can: the task becomes one, still Completed.
    let r = patch(
        &p,
        &bt,
        &id,
        json!({"type_id": 2, "title": "Fix the fence", "description": null,
               "due_date": "2031-02-03T04:05:06Z"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["type"], "Bug");
    assert_eq!(changed["status"], "Completed");
    assert_eq!(changed["title"], "Fix the fence");
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["due_date"], "2031-02-03T04:05:06Z");
    assert_eq!(changed["updated_by"], boss.username.as_str());
    assert_eq!(changed["created_at"], t["created_at"]);
    assert_eq!(
        p.move_to(&at, &id, IN_PROGRESS).await.status(),
        StatusCode::NO_CONTENT
    );

    let events = events_of(&p, &id, 6).await;
    let kinds = kinds(&events);
    assert_eq!(kinds[4], ("edited".to_owned(), 5), "{events:?}");
    assert_eq!(kinds[5], ("status_changed".to_owned(), 6), "{events:?}");
    let edited = payload(&events[4]);
    assert_eq!(
        edited["change"]["fields"],
        json!(["title", "description", "due_date", "type_id"])
    );
    assert_eq!(edited["task"]["title"], "Fix the fence");
    assert_eq!(payload(&events[5])["change"]["from"], "Completed");
}

#[tokio::test]
async fn a_change_is_refused_without_su_edit_for_unknown_fields_and_unknown_types() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let t = p
        .create(
            &bt,
            json!({"title": "Stay as I am", "type_id": 1, "assignee": ann.id}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();

    let problem = assert_problem(
        patch(&p, &at, &id, json!({"title": "Mine now"})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(problem["missing_scopes"], json!(["su_edit:task"]));
    let problem = assert_problem(
        patch(&p, &bt, &id, json!({"status_id": COMPLETED})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["field"], "status_id");
    assert_problem(
        patch(&p, &bt, &id, json!({"type_id": 99})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        patch(&p, &bt, &id, json!({"title": "  "})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        patch(
            &p,
            &bt,
            "0190a1b2-0000-7000-8000-000000000001",
            json!({"title": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let after = p.get_task(&bt, &id).await;
    assert_eq!(after["title"], "Stay as I am");
    assert_eq!(after["type_id"], 1);
    assert_eq!(after["version"], t["version"]);
}

#[tokio::test]
async fn deleting_a_task_needs_delete_task_and_tells_the_consumers() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let without = p
        .token(&boss, "create:task,su_read:task,su_edit:task")
        .await;
    let delete = |token: String, id: String| {
        let p = &p;
        async move {
            p.http
                .request(Method::DELETE, p.url(&format!("/v1/tasks/{id}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let t = p
        .create(
            &bt,
            json!({"title": "Throw me away", "type_id": 1, "assignee": ann.id, "price_cents": 40}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();

    // An employee cannot even obtain the scope; a token without it is refused.
    assert_eq!(
        p.authorize(&ann.session, "delete:task").await.status(),
        StatusCode::FORBIDDEN
    );
    let problem = assert_problem(delete(without, id.clone()).await, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["missing_scopes"], json!(["delete:task"]));
    assert_eq!(p.get_task(&bt, &id).await["title"], "Throw me away");

    // A parent stays while it has subtasks.
    let child = p
        .create(&bt, json!({"title": "A part", "type_id": 1, "parent": id}))
        .await;
    let child_id = child["id"].as_str().unwrap().to_owned();
    let problem = assert_problem(delete(bt.clone(), id.clone()).await, StatusCode::CONFLICT).await;
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("/task-has-subtasks"));
    assert_eq!(
        delete(bt.clone(), child_id).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        delete(bt.clone(), id.clone()).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = p
        .http
        .get(p.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(&bt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        delete(bt.clone(), id.clone()).await.status(),
        StatusCode::NOT_FOUND
    );
    let all = p
        .all(json!({"counting": true, "query": {"assignee": ann.id}}))
        .await;
    assert_eq!(all["count"], 0);

    let events = events_of(&p, &id, 3).await;
    assert_eq!(
        kinds(&events),
        [
            ("created".to_owned(), 1),
            ("assigned".to_owned(), 2),
            ("deleted".to_owned(), 3),
        ],
        "{events:?}"
    );
    let gone = &events[2];
    assert_eq!(gone.op, contracts::Op::Delete);
    assert!(gone.after.is_none());
    let before = gone.before.as_ref().unwrap();
    assert_eq!(before["task"]["price_cents"], 40);
    assert_eq!(before["task"]["assignee_id"], ann.id.as_str());
    assert_eq!(before["change"]["by"], boss.id.as_str());
}

#[tokio::test]
async fn an_employer_moves_someone_elses_task_to_pending_and_back() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let t = p
        .create(
            &bt,
            json!({"title": "Wait for parts", "type_id": 1, "assignee": ann.id}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(
        p.move_to(&at, &id, IN_PROGRESS).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        p.move_to(&bt, &id, PENDING).await.status(),
        StatusCode::NO_CONTENT
    );
    let now = p.get_task(&bt, &id).await;
    assert_eq!(now["status"], "Pending");
    assert_eq!(now["assignee_id"], ann.id.as_str());
    let last = now["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["changed_by"], boss.id.as_str());
    assert_eq!(last["to_status_id"], PENDING);
    // Ann sees her task as it now is.
    let own = p.post(&at, "/v1/task/own", json!({})).await;
    let own: Value = own.json().await.unwrap();
    assert_eq!(own["tasks"][0]["status"], "Pending");

    assert_eq!(
        p.move_to(&bt, &id, IN_PROGRESS).await.status(),
        StatusCode::NO_CONTENT
    );
    // Only the moves that need approval: completing is the assignee's.
    assert_problem(p.move_to(&bt, &id, COMPLETED).await, StatusCode::FORBIDDEN).await;
    assert_problem(p.move_to(&bt, &id, TO_DO).await, StatusCode::FORBIDDEN).await;
    assert_eq!(p.get_task(&bt, &id).await["status"], "In Progress");
}

#[tokio::test]
async fn a_plain_employee_cannot_move_someone_elses_task_to_pending() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bob = p.person(Some("Employee")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let bobt = p.token(&bob, EMPLOYEE_SCOPES).await;
    let t = p
        .create(
            &bt,
            json!({"title": "Not yours", "type_id": 1, "assignee": ann.id}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(
        p.move_to(&at, &id, IN_PROGRESS).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_problem(p.move_to(&bobt, &id, PENDING).await, StatusCode::FORBIDDEN).await;
    // Nor their own: that move needs an Employer.
    let problem = assert_problem(p.move_to(&at, &id, PENDING).await, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["approver_role"], "Employer");
    assert_eq!(p.get_task(&bt, &id).await["status"], "In Progress");
}
