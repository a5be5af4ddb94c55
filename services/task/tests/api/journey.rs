//! The task-management design's README journey, end to end through all three services.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, ids, spawn, COMPLETED, EMPLOYEE_SCOPES, IN_PROGRESS, PENDING, TO_DO,
};

#[tokio::test]
async fn an_employer_creates_and_assigns_and_an_employee_moves_only_their_own_tasks() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bob = p.person(Some("Employee")).await;
    let bt = p
        .token(&boss, "create:task,su_read:task,su_edit:task")
        .await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let bobt = p.token(&bob, EMPLOYEE_SCOPES).await;

    // Created with the design's body: the assignee by username, a date in
    // the design's format.
    let t1 = p
        .create(
            &bt,
            json!({"title": "Migrate database to new place", "type_id": 1, "assignee": ann.username,
                   "description": "Migrate data", "due_date": "2025-01-01 00:00:00"}),
        )
        .await;
    assert_eq!(t1["status_id"], TO_DO);
    assert_eq!(t1["status"], "To Do");
    assert_eq!(t1["type_id"], 1);
    assert_eq!(t1["type"], "Task");
    assert_eq!(t1["severity_id"], Value::Null);
    assert_eq!(t1["creator"], boss.username.as_str());
    assert_eq!(t1["creator_id"], boss.id.as_str());
    assert_eq!(t1["assignee"], ann.username.as_str());
    assert_eq!(t1["assignee_id"], ann.id.as_str());
    assert_eq!(t1["due_date"], "2025-01-01T00:00:00Z");
    assert_eq!(t1["description"], "Migrate data");
    for field in ["created_at", "updated_at", "updated_by", "parent"] {
        assert!(t1.get(field).is_some(), "{field} missing from {t1}");
    }
    // The assignee by account id, a severity, a type with its own workflow.
    let t2 = p
        .create(
            &bt,
            json!({"title": "Fix login", "type_id": 2, "severity_id": 3, "assignee": ann.id}),
        )
        .await;
    assert_eq!(t2["type"], "Bug");
    assert_eq!(t2["severity"], "Critical");
    assert_eq!(t2["status"], "To Do");
    // Unassigned at first, then assigned: only the assignee changes.
    let t3 = p
        .create(&bt, json!({"title": "Write the changelog", "type_id": 3}))
        .await;
    assert_eq!(t3["assignee"], Value::Null);
    let t3_id = t3["id"].as_str().unwrap().to_owned();
    let r = p
        .post(
            &bt,
            "/v1/task/assignment",
            json!({"task_id": t3_id, "assignee": bob.username}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let assigned: Value = r.json().await.unwrap();
    assert_eq!(assigned["assignee"], bob.username.as_str());
    assert_eq!(assigned["updated_by"], boss.username.as_str());
    for unchanged in [
        "title",
        "type_id",
        "status_id",
        "creator",
        "created_at",
        "description",
    ] {
        assert_eq!(assigned[unchanged], t3[unchanged], "{unchanged}");
    }

    // Each employee sees their own tasks only.
    let own = |token: String| {
        let p = &p;
        async move {
            let r = p
                .post(
                    &token,
                    "/v1/task/own",
                    json!({"start_date": "2020-10-10 00:00:00", "end_date": "2100-01-01 00:00:00",
                           "counting": true, "_from": 0, "_size": 100, "sort": "-created"}),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }
    };
    let mine = own(at.clone()).await;
    assert_eq!(mine["count"], 2);
    let t1_id = t1["id"].as_str().unwrap().to_owned();
    let t2_id = t2["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ids(&mine),
        vec![t2_id.clone(), t1_id.clone()],
        "newest first"
    );
    assert_eq!(mine["tasks"][0]["severity"], "Critical");
    assert_eq!(ids(&own(bobt.clone()).await), vec![t3_id.clone()]);

    // To Do -> In Progress is the assignee's move.
    let r = p.move_to(&at, &t1_id, IN_PROGRESS).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let got = p.get_task(&at, &t1_id).await;
    assert_eq!(got["status"], "In Progress");
    assert_eq!(got["updated_by"], ann.username.as_str());
    let history = got["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["from_status_id"], TO_DO);
    assert_eq!(history[1]["to_status_id"], IN_PROGRESS);
    assert_eq!(history[1]["changed_by"], ann.id.as_str());

    // No jumping ahead: the workflow names what is possible.
    for to in [PENDING, COMPLETED] {
        let r = p.move_to(&at, &t2_id, to).await;
        let body = assert_problem(r, StatusCode::CONFLICT).await;
        assert!(body["type"]
            .as_str()
            .unwrap()
            .ends_with("/transition-not-allowed"));
        assert_eq!(body["from"], "To Do");
        assert_eq!(body["allowed"][0]["status"], "In Progress");
    }
    // Someone else's task.
    let r = p.move_to(&at, &t3_id, IN_PROGRESS).await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
    // An unknown status and a task that does not exist.
    assert_problem(
        p.move_to(&at, &t1_id, 99).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let nobody = uuid::Uuid::new_v4().to_string();
    assert_problem(
        p.move_to(&at, &nobody, IN_PROGRESS).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Pending needs an Employer's approval.
    let r = p.move_to(&at, &t1_id, PENDING).await;
    let body = assert_problem(r, StatusCode::FORBIDDEN).await;
    assert_eq!(body["approver_role"], "Employer");
    assert_eq!(
        p.move_to(&at, &t1_id, COMPLETED).await.status(),
        StatusCode::NO_CONTENT
    );

    // An employee may not read everything, nor obtain the scope that would.
    let r = p.post(&at, "/v1/task/all", json!({})).await;
    let body = assert_problem(r, StatusCode::FORBIDDEN).await;
    assert_eq!(body["missing_scopes"], json!(["su_read:task"]));
    assert_eq!(
        p.authorize(&ann.session, "su_read:task").await.status(),
        StatusCode::FORBIDDEN
    );
    // An employer's token without edit:task cannot move tasks either.
    assert_problem(
        p.move_to(&bt, &t1_id, IN_PROGRESS).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    // The employer sees everything, filtered and sorted.
    let r = p
        .post(
            &bt,
            "/v1/task/all",
            json!({"counting": true, "query": {"assignee": ann.username, "status_id": COMPLETED},
                   "sort": "-created_at,status_id"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["count"], 1);
    assert_eq!(ids(&v), vec![t1_id.clone()]);
    let v = p
        .all(json!({"counting": true, "sort": "title", "_size": 2}))
        .await;
    assert_eq!(v["count"], 3);
    let titles: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Fix login", "Migrate database to new place"]);
    let v = p
        .all(json!({"counting": true, "sort": "title", "_from": 2}))
        .await;
    assert_eq!(v["tasks"][0]["title"], "Write the changelog");
    let v = p
        .all(json!({"counting": true, "query": {"assignee": null}}))
        .await;
    assert_eq!(v["count"], 0);
    let v = p
        .all(json!({"counting": true, "query": {"severity_id": null, "type_id": 1}}))
        .await;
    assert_eq!(ids(&v), vec![t1_id]);
    let v = p
        .all(json!({"counting": true, "query": {"assignee": "nobody.here"}}))
        .await;
    assert_eq!(v["count"], 0);
}

#[tokio::test]
async fn a_role_granted_in_the_safekeeper_lets_its_holder_approve_at_once() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p.token(&boss, "create:task").await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let t = p
        .create(
            &bt,
            json!({"title": "Plan the offsite", "type_id": 3, "assignee": ann.id}),
        )
        .await;
    let id = t["id"].as_str().unwrap();
    assert_eq!(
        p.move_to(&at, id, IN_PROGRESS).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(p.move_to(&at, id, PENDING).await, StatusCode::FORBIDDEN).await;

    // The grant travels safekeeper -> iam.user-role.v1 -> the read model;
    // the same token now carries the approval.
    p.grant(&ann, "Employer").await;
    let model = p.read_model(&ann.id).await.unwrap();
    assert!(model["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "su_edit:task"));
    assert_eq!(model["username"], ann.username.as_str());
    assert_eq!(
        p.move_to(&at, id, PENDING).await.status(),
        StatusCode::NO_CONTENT
    );
    // Out of Pending needs the approval too; a Feature may be shelved.
    assert_eq!(
        p.move_to(&at, id, TO_DO).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(p.get_task(&at, id).await["status"], "To Do");
}

#[tokio::test]
async fn the_summary_counts_each_employees_tasks_exactly() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bob = p.person(Some("Employee")).await;
    let carol = p.person(Some("Employee")).await;
    let bt = p.token(&boss, "create:task,su_read:task").await;
    let mut created = Vec::new();
    for (who, n) in [(&ann, 3), (&bob, 2)] {
        for i in 0..n {
            let t = p
                .create(
                    &bt,
                    json!({"title": format!("task {i}"), "type_id": 1 + (i % 2), "assignee": who.username}),
                )
                .await;
            created.push((who.clone(), t["id"].as_str().unwrap().to_owned()));
        }
    }
    // Ann completes one, Bob both of his.
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let bobt = p.token(&bob, EMPLOYEE_SCOPES).await;
    let done = [
        (&at, &created[0].1),
        (&bobt, &created[3].1),
        (&bobt, &created[4].1),
    ];
    for (token, id) in done {
        assert_eq!(
            p.move_to(token, id, IN_PROGRESS).await.status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            p.move_to(token, id, COMPLETED).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let summary = |body: Value| {
        let p = &p;
        let bt = bt.clone();
        async move {
            let r = p.post(&bt, "/v1/task/summary", body).await;
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
            r.json::<Value>().await.unwrap()
        }
    };
    let row = |v: &Value, who: &str| -> (i64, i64) {
        let r = v["report"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["username"] == who)
            .unwrap_or_else(|| panic!("{who} not in {v}"));
        (
            r["total"].as_i64().unwrap(),
            r["completed"].as_i64().unwrap(),
        )
    };
    let all = summary(
        json!({"start_date": "2020-10-10 00:00:00", "end_date": "2100-01-01T00:00:00Z",
                             "_from": 0, "size": 100, "sort": "-total,username"}),
    )
    .await;
    assert_eq!(row(&all, &ann.username), (3, 1));
    assert_eq!(row(&all, &bob.username), (2, 2));
    // The read model holds other tests' employees too (the broker is
    // shared), all with zeros; ours with tasks come first.
    assert_eq!(all["report"][0]["username"], ann.username.as_str());
    assert_eq!(all["report"][1]["username"], bob.username.as_str());
    let v = summary(json!({"sort": "-completed", "_size": 1})).await;
    assert_eq!(v["report"].as_array().unwrap().len(), 1);
    assert_eq!(v["report"][0]["username"], bob.username.as_str());
    let v = summary(json!({"sort": "-total", "_from": 1, "_size": 1})).await;
    assert_eq!(v["report"][0]["username"], bob.username.as_str());
    // An employee without tasks shows zeros.
    let v = summary(json!({"query": {"assignee": carol.username}})).await;
    assert_eq!(v["count"], 1);
    assert_eq!(row(&v, &carol.username), (0, 0));
    // Filters are honoured: Bugs only (type 2), completed only.
    let v = summary(json!({"query": {"type_id": 2}, "sort": "-total"})).await;
    assert_eq!(row(&v, &ann.username), (1, 0));
    assert_eq!(row(&v, &bob.username), (1, 1));
    let v = summary(json!({"query": {"status_id": COMPLETED}, "sort": "-total"})).await;
    assert_eq!(row(&v, &ann.username), (1, 1));
    // The date range is honoured: nothing was created in 2020.
    let v = summary(
        json!({"start_date": "2020-01-01 00:00:00", "end_date": "2020-12-31 23:59:59",
                           "query": {"assignee": ann.id}}),
    )
    .await;
    assert_eq!(row(&v, &ann.username), (0, 0));
    // A client's token may read the report as well.
    let r = p.post(&p.reader, "/v1/task/summary", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
}
