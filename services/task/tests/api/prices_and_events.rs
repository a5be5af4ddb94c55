//! Prices and `task.v1`: a task's price, fee and reward, and the events
//! that tell accounting each change, in order, once, versioned.

use std::{collections::HashSet, time::Duration};

use contracts::{Envelope, Op};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, spawn, TestPlatform, COMPLETED, EMPLOYEE_SCOPES, IN_PROGRESS,
};

pub const EMPLOYER_SCOPES: &str = "create:task,su_read:task,su_edit:task,edit:task,delete:task";

/// The `task.v1` events of task `id`, once `want` have arrived (and any
/// duplicate right behind them).
pub async fn events_of(p: &TestPlatform, id: &str, want: usize) -> Vec<Envelope> {
    let keys = HashSet::from([id.to_owned()]);
    testkit::collect_events(&p.brokers, "task.v1", &keys, want, Duration::from_secs(30)).await
}

/// The payload of an event: `after`, or for a deletion `before`.
pub fn payload(e: &Envelope) -> &Value {
    e.after.as_ref().or(e.before.as_ref()).expect("a payload")
}

/// Each event's change kind and version, in order.
pub fn kinds(events: &[Envelope]) -> Vec<(String, i64)> {
    events
        .iter()
        .map(|e| {
            (
                payload(e)["change"]["kind"].as_str().unwrap().to_owned(),
                e.version,
            )
        })
        .collect()
}

pub async fn patch(p: &TestPlatform, token: &str, id: &str, body: Value) -> reqwest::Response {
    p.http
        .request(Method::PATCH, p.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_priced_task_created_assigned_and_completed_tells_each_step_with_its_amounts() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;

    let t = p
        .create(
            &bt,
            json!({"title": "Feed the parrots", "type_id": 1, "assignee": ann.username,
                   "price_cents": 1235}),
        )
        .await;
    assert_eq!(t["price_cents"], 1235);
    assert_eq!(t["assignment_fee_cents"], 618);
    assert_eq!(t["completion_reward_cents"], 1235);
    assert_eq!(t["version"], 2);
    let id = t["id"].as_str().unwrap().to_owned();
    for to in [IN_PROGRESS, COMPLETED] {
        assert_eq!(
            p.move_to(&at, &id, to).await.status(),
            StatusCode::NO_CONTENT
        );
    }

    let events = events_of(&p, &id, 4).await;
    assert_eq!(
        kinds(&events),
        [
            ("created".to_owned(), 1),
            ("assigned".to_owned(), 2),
            ("status_changed".to_owned(), 3),
            ("status_changed".to_owned(), 4),
        ],
        "{events:?}"
    );
    for e in &events {
        assert_eq!(e.key, id);
        assert_eq!(e.entity, "task");
        assert_eq!(e.source.service, "task");
        let task = &payload(e)["task"];
        assert_eq!(task["id"], id.as_str());
        assert_eq!(task["price_cents"], 1235);
        assert_eq!(task["assignment_fee_cents"], 618);
        assert_eq!(task["completion_reward_cents"], 1235);
    }
    assert_eq!(events[0].op, Op::Create);
    let created = payload(&events[0]);
    assert_eq!(created["task"]["assignee_id"], Value::Null);
    assert_eq!(created["task"]["status"], "To Do");
    assert_eq!(created["change"]["by"], boss.id.as_str());
    let assigned = payload(&events[1]);
    assert_eq!(events[1].op, Op::Update);
    assert_eq!(assigned["task"]["assignee_id"], ann.id.as_str());
    assert_eq!(assigned["change"]["from"], Value::Null);
    assert_eq!(assigned["change"]["to"], ann.id.as_str());
    assert_eq!(assigned["change"]["by"], boss.id.as_str());
    let done = payload(&events[3]);
    assert_eq!(done["change"]["from"], "In Progress");
    assert_eq!(done["change"]["to"], "Completed");
    assert_eq!(done["change"]["by"], ann.id.as_str());
    assert_eq!(done["task"]["status"], "Completed");
}

#[tokio::test]
async fn a_reassignment_and_a_price_change_are_events_of_their_own_without_duplicates() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bob = p.person(Some("Employee")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;

    // No price: the default, 1000 cents, with a fee of half and a reward of all.
    let t = p
        .create(&bt, json!({"title": "Count the beaks", "type_id": 1}))
        .await;
    assert_eq!(
        (
            &t["price_cents"],
            &t["assignment_fee_cents"],
            &t["completion_reward_cents"]
        ),
        (&json!(1000), &json!(500), &json!(1000))
    );
    let id = t["id"].as_str().unwrap().to_owned();
    for who in [&ann, &bob] {
        let r = p
            .post(
                &bt,
                "/v1/task/assignment",
                json!({"task_id": id, "assignee": who.id}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = patch(&p, &bt, &id, json!({"price_cents": 3001})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["price_cents"], 3001);
    assert_eq!(changed["assignment_fee_cents"], 1501);
    assert_eq!(changed["completion_reward_cents"], 3001);
    assert_eq!(changed["version"], 4);
    // The same price again changes nothing and says nothing.
    let r = patch(&p, &bt, &id, json!({"price_cents": 3001})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 4);

    let events = events_of(&p, &id, 4).await;
    assert_eq!(
        kinds(&events),
        [
            ("created".to_owned(), 1),
            ("assigned".to_owned(), 2),
            ("assigned".to_owned(), 3),
            ("price_changed".to_owned(), 4),
        ],
        "{events:?}"
    );
    let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), events.len(), "an event twice: {events:?}");
    let second = &payload(&events[2])["change"];
    assert_eq!(second["from"], ann.id.as_str());
    assert_eq!(second["to"], bob.id.as_str());
    let priced = payload(&events[3]);
    assert_eq!(priced["change"]["from_cents"], 1000);
    assert_eq!(priced["change"]["to_cents"], 3001);
    assert_eq!(priced["change"]["by"], boss.id.as_str());
    assert_eq!(priced["task"]["assignment_fee_cents"], 1501);
    assert_eq!(priced["task"]["assignee_id"], bob.id.as_str());
}

#[tokio::test]
async fn bad_prices_are_400_and_change_nothing() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let mine = json!({"counting": true, "query": {"creator": boss.id}});

    for bad in [
        json!(0),
        json!(-1),
        json!(100_000_001),
        json!(12.5),
        json!("100"),
    ] {
        let r = p
            .post(
                &bt,
                "/v1/task",
                json!({"title": "Priceless", "type_id": 1, "price_cents": bad}),
            )
            .await;
        let problem = assert_problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["field"], "price_cents", "{bad}: {problem}");
        assert!(problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/invalid-field"));
    }
    assert_eq!(p.all(mine.clone()).await["count"], 0);

    let t = p
        .create(
            &bt,
            json!({"title": "Priced", "type_id": 1, "price_cents": 100_000_000}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    for bad in [json!(0), json!(100_000_001), json!(null)] {
        let r = patch(
            &p,
            &bt,
            &id,
            json!({"price_cents": bad, "title": "Renamed"}),
        )
        .await;
        let problem = assert_problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["field"], "price_cents", "{bad}: {problem}");
    }
    let after = p.get_task(&p.reader, &id).await;
    assert_eq!(after["title"], "Priced");
    assert_eq!(after["price_cents"], 100_000_000);
    assert_eq!(after["version"], 1);
    assert_eq!(p.all(mine).await["count"], 1);
}
