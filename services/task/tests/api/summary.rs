//! The summary's rollup: whole months summed from `task_rollup`, partial
//! months read from `task`, and always the same numbers as counting the
//! tasks themselves, through status changes, reassignments and bulk SQL.

use chrono::{DateTime, Datelike, Duration as Span, Utc};
use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use reqwest::StatusCode;
use serde_json::{json, Value};
use task::{
    domain::DateRange,
    store::{self, Filter},
};
use uuid::Uuid;

use crate::helpers::{spawn, COMPLETED, EMPLOYEE_SCOPES, IN_PROGRESS};

fn assignee(n: u32) -> Uuid {
    Uuid::from_u128(0xA551_6000 + n as u128)
}

fn sorted(mut v: Vec<(Uuid, i64, i64)>) -> Vec<(Uuid, i64, i64)> {
    v.sort();
    v
}

fn instant(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn the_rollup_gives_the_same_counts_as_the_tasks_for_every_range_and_filter() {
    let db = testkit::task::database();
    platform::db::migrate(&db.url, task::startup::MIGRATIONS).unwrap();
    let mut c = PgConnection::establish(&db.url).unwrap();
    // 3,000 tasks over five assignees (and some unassigned), created
    // every ~3.5 hours from 2023-11-20 on: about 15 months, across a
    // year's end, with every status.
    sql_query(
        "INSERT INTO task (id, title, creator, assignee, type_id, severity_id, status_id,
                           created_at, updated_at)
         SELECT gen_random_uuid(), 'task ' || g, '00000000-0000-0000-0000-000000000001',
                CASE WHEN g % 7 = 0 THEN NULL
                     ELSE ('00000000-0000-0000-0000-0000a551600' || (g % 5))::uuid END,
                1 + g % 3, CASE WHEN g % 4 = 0 THEN NULL ELSE 1 + g % 3 END, 1 + g % 4,
                timestamptz '2023-11-20 00:00:00+00' + g * interval '211 minutes', now()
         FROM generate_series(1, 3000) g",
    )
    .execute(&mut c)
    .unwrap();
    // Writes after the fact: status changes, reassignments (to someone,
    // to no one, from no one), a creation date moved to another month,
    // deletions, and an update that changes nothing counted.
    for sql in [
        "UPDATE task SET status_id = 4 WHERE status_id = 2 AND title LIKE '%1'",
        "UPDATE task SET assignee = '00000000-0000-0000-0000-0000a5516003' WHERE title LIKE '%37'",
        "UPDATE task SET assignee = NULL WHERE title LIKE '%55'",
        "UPDATE task SET assignee = '00000000-0000-0000-0000-0000a5516001' WHERE assignee IS NULL AND title LIKE '%9'",
        "UPDATE task SET created_at = created_at - interval '40 days' WHERE title LIKE '%42'",
        "DELETE FROM task WHERE title LIKE '%88'",
        "UPDATE task SET title = title || '.' WHERE title LIKE '%5'",
    ] {
        sql_query(sql).execute(&mut c).unwrap();
    }
    // The rollup holds what a recount of the tasks holds.
    let drift: i64 = sql_query(
        "SELECT count(*) AS n FROM (
           (SELECT assignee, month, status_id, tasks::bigint FROM task_rollup WHERE tasks <> 0
            EXCEPT
            SELECT assignee, date_trunc('month', created_at, 'UTC'), status_id, count(*)
            FROM task WHERE assignee IS NOT NULL GROUP BY 1, 2, 3)
           UNION ALL
           (SELECT assignee, date_trunc('month', created_at, 'UTC'), status_id, count(*)
            FROM task WHERE assignee IS NOT NULL GROUP BY 1, 2, 3
            EXCEPT
            SELECT assignee, month, status_id, tasks::bigint FROM task_rollup WHERE tasks <> 0)
         ) d",
    )
    .get_result::<Count>(&mut c)
    .unwrap()
    .n;
    assert_eq!(drift, 0, "the rollup drifted from the tasks");

    let ranges = [
        (None, None),
        (Some("2023-01-01T00:00:00Z"), Some("2100-01-01T00:00:00Z")),
        // Month-aligned on both ends.
        (
            Some("2024-01-01T00:00:00Z"),
            Some("2024-06-30T23:59:59.999999Z"),
        ),
        // Partial months on both ends, across the year's end.
        (Some("2023-12-13T07:31:00Z"), Some("2024-03-09T18:00:00Z")),
        // Inside one month, and across one boundary without a whole month.
        (Some("2024-02-03T00:00:00Z"), Some("2024-02-20T12:00:00Z")),
        (Some("2024-04-20T00:00:00Z"), Some("2024-05-10T00:00:00Z")),
        // Open on one side.
        (Some("2024-07-15T10:00:00Z"), None),
        (None, Some("2024-02-29T23:59:59Z")),
        // Exactly one task's creation instant.
        (Some("2023-11-20T03:31:00Z"), Some("2023-11-20T03:31:00Z")),
    ];
    let filters = [
        Filter::default(),
        Filter {
            assignee: Some(Some(assignee(3))),
            ..Filter::default()
        },
        Filter {
            status_id: Some(4),
            ..Filter::default()
        },
        Filter {
            status_id: Some(1),
            assignee: Some(Some(assignee(1))),
            ..Filter::default()
        },
    ];
    let mut nonzero = 0;
    for (start, end) in ranges {
        let range = DateRange {
            start: start.map(instant),
            end: end.map(instant),
        };
        for filter in &filters {
            assert!(store::rollup_answers(filter));
            let from_rollup = sorted(store::summary_counts(&mut c, range, filter, 4).unwrap());
            let from_tasks = sorted(
                store::task_counts(&mut c, range, filter, 4)
                    .unwrap()
                    .into_iter()
                    .filter_map(|(id, t, d)| Some((id?, t, d)))
                    .collect(),
            );
            assert_eq!(from_rollup, from_tasks, "{start:?}..{end:?} {filter:?}");
            nonzero += from_tasks.iter().filter(|(_, t, _)| *t > 0).count();
        }
    }
    assert!(nonzero > 50, "the ranges must find tasks: {nonzero}");

    // Emptied by TRUNCATE, refilled by a bulk insert.
    sql_query("TRUNCATE task, task_status_history")
        .execute(&mut c)
        .unwrap();
    assert!(
        store::summary_counts(&mut c, DateRange::default(), &Filter::default(), 4)
            .unwrap()
            .is_empty()
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn the_summary_follows_status_changes_and_reassignments_exactly() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bob = p.person(Some("Employee")).await;
    let carol = p.person(Some("Employee")).await;
    let bt = p
        .token(&boss, "create:task,su_read:task,su_edit:task")
        .await;
    let mut ids = Vec::new();
    for (who, n) in [(&ann, 3), (&bob, 2)] {
        for i in 0..n {
            let t = p
                .create(
                    &bt,
                    json!({"title": format!("task {i}"), "type_id": 1, "assignee": who.username}),
                )
                .await;
            ids.push(t["id"].as_str().unwrap().to_owned());
        }
    }
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let bobt = p.token(&bob, EMPLOYEE_SCOPES).await;
    // Ann completes her first, Bob his first.
    for (token, id) in [(&at, &ids[0]), (&bobt, &ids[3])] {
        for to in [IN_PROGRESS, COMPLETED] {
            assert_eq!(
                p.move_to(token, id, to).await.status(),
                StatusCode::NO_CONTENT
            );
        }
    }
    // Ann's completed task goes to Carol, one of Ann's open ones to Bob,
    // Bob's completed one to Ann.
    for (task, to) in [(&ids[0], &carol), (&ids[1], &bob), (&ids[3], &ann)] {
        let r = p
            .post(
                &bt,
                "/v1/task/assignment",
                json!({"task_id": task, "assignee": to.username}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Ann: ids 2 (open) and 3 (completed); Bob: ids 1 and 4 (open);
    // Carol: id 0 (completed).
    let expect = [(&ann, (2, 1)), (&bob, (2, 0)), (&carol, (1, 1))];
    // The same numbers whether the current month is summed from the
    // rollup (a range beyond it) or counted from the tasks (a range
    // ending inside it, or starting inside it).
    let now = Utc::now();
    let month_start = format!("{:04}-{:02}-01 00:00:00", now.year(), now.month());
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let ranges = [
        json!({"start_date": "2020-10-10 00:00:00", "end_date": "2100-01-01 00:00:00"}),
        json!({"start_date": month_start, "end_date": "2100-01-01 00:00:00"}),
        json!({"start_date": "2020-10-10 00:00:00", "end_date": fmt(now + Span::hours(1))}),
        json!({"start_date": fmt(now - Span::hours(1)), "end_date": fmt(now + Span::hours(1))}),
        json!({}),
    ];
    for range in ranges {
        let mut body = range.clone();
        body["_size"] = json!(100);
        body["sort"] = json!("-total,username");
        let r = p.post(&bt, "/v1/task/summary", body).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        for (who, (total, completed)) in &expect {
            let row = v["report"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["username"] == who.username.as_str())
                .unwrap_or_else(|| panic!("{} not in {v} for {range}", who.username));
            assert_eq!(
                (row["total"].as_i64(), row["completed"].as_i64()),
                (Some(*total), Some(*completed)),
                "{} for {range}",
                who.username
            );
        }
        // Completed only, for one assignee.
        let mut body = range.clone();
        body["query"] = json!({"assignee": ann.username, "status_id": COMPLETED});
        let v: Value = p
            .post(&bt, "/v1/task/summary", body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["count"], 1, "{v}");
        assert_eq!(
            (
                v["report"][0]["total"].as_i64(),
                v["report"][0]["completed"].as_i64()
            ),
            (Some(1), Some(1)),
            "{v} for {range}"
        );
    }
}

#[tokio::test]
async fn own_tasks_by_creation_time_show_every_field_as_the_view_does() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p
        .token(&boss, "create:task,su_read:task,su_edit:task")
        .await;
    for (i, severity) in [Some(3), None, Some(1), Some(2)].into_iter().enumerate() {
        let mut body = json!({"title": format!("own {i}"), "type_id": 1 + (i % 3),
                              "assignee": ann.username, "description": "d",
                              "due_date": "2030-01-01 00:00:00"});
        if let Some(s) = severity {
            body["severity_id"] = json!(s);
        }
        p.create(&bt, body).await;
    }
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let first = p
        .all(json!({"query": {"assignee": ann.id}, "sort": "-created_at", "_size": 1}))
        .await["tasks"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Moved by Ann: `updated_by` names her.
    assert_eq!(
        p.move_to(&at, &first, IN_PROGRESS).await.status(),
        StatusCode::NO_CONTENT
    );
    let own = |body: Value| {
        let (p, at) = (&p, at.clone());
        async move {
            let r = p.post(&at, "/v1/task/own", body).await;
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }
    };
    // The default order (newest first) and oldest first, against the same
    // lists read through the general path (sorted by title, the view).
    let by_view = p
        .all(json!({"query": {"assignee": ann.id}, "sort": "title", "counting": true}))
        .await;
    let mut view: Vec<Value> = by_view["tasks"].as_array().unwrap().clone();
    assert_eq!(view.len(), 4);
    view.sort_by_key(|t| {
        (
            instant(t["created_at"].as_str().unwrap()),
            t["id"].as_str().unwrap().to_owned(),
        )
    });
    let oldest = own(json!({"sort": "created_at", "counting": true})).await;
    assert_eq!(oldest["count"], 4);
    assert_eq!(oldest["tasks"].as_array().unwrap(), &view);
    view.reverse();
    let newest = own(json!({})).await;
    assert!(newest.get("count").is_none(), "count only when asked");
    assert_eq!(newest["tasks"].as_array().unwrap(), &view);
    assert_eq!(newest["tasks"][0]["updated_by"], ann.username.as_str());
    assert_eq!(newest["tasks"][0]["creator"], boss.username.as_str());
    assert_eq!(newest["tasks"][0]["status"], "In Progress");
    // Paging and the range apply.
    let page = own(json!({"_from": 1, "_size": 2, "counting": true})).await;
    assert_eq!(page["count"], 4);
    assert_eq!(page["tasks"].as_array().unwrap(), &view[1..3]);
    let none = own(json!({"end_date": "2020-01-01 00:00:00", "counting": true})).await;
    assert_eq!(
        (
            none["count"].as_i64(),
            none["tasks"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
}

#[test]
fn the_own_queries_are_prepared_once_per_connection() {
    let db = testkit::task::database();
    platform::db::migrate(&db.url, task::startup::MIGRATIONS).unwrap();
    let mut c = PgConnection::establish(&db.url).unwrap();
    let cat = store::load_catalogue(&mut c).unwrap();
    let me = store::User {
        id: assignee(1),
        username: Some("ann".into()),
        is_active: true,
        roles: vec![],
        scopes: None,
        user_version: 1,
        role_version: 0,
        updated_at: Utc::now(),
    };
    let page = task::domain::Page { from: 0, size: 20 };
    for _ in 0..3 {
        let range = DateRange {
            start: Some(instant("2024-01-01T00:00:00Z")),
            end: None,
        };
        store::own_tasks(
            &mut c,
            &me,
            &cat,
            range,
            page,
            task::domain::Direction::Desc,
            true,
        )
        .unwrap();
    }
    // Diesel keeps one named prepared statement per query shape: planned
    // by PostgreSQL once, not per request.
    let prepared = |like: &str, c: &mut PgConnection| {
        sql_query("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE $1")
            .bind::<diesel::sql_types::Text, _>(like)
            .get_result::<Count>(c)
            .unwrap()
            .n
    };
    assert_eq!(prepared("%creator_name%", &mut c), 1);
    assert_eq!(prepared("SELECT COUNT(*) FROM \"task\"%", &mut c), 1);
}
