//! The most expensive task (the highest reward paid) of each day, week
//! and month of a range.

use contracts::topics;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{day, spawn, task_event, Ledger};

/// Each period's (start, task title, reward) of a report.
fn picks(v: &Value) -> Vec<(String, Value, Value)> {
    v["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_owned(),
                b["task"]["title"].clone(),
                b["task"]["reward_cents"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_most_expensive_task_of_each_day_week_and_month_is_the_highest_reward_with_its_title() {
    let p = spawn().await;
    let admin = p.admin().await;
    let tasks: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (n, id) in tasks.iter().enumerate() {
        // A renamed task shows its latest title; an older event arriving
        // later does not bring the old one back.
        p.publish(topics::TASK, &task_event(*id, &format!("draft {n}"), 2))
            .await;
        p.publish(topics::TASK, &task_event(*id, &format!("task {n}"), 3))
            .await;
        p.publish(topics::TASK, &task_event(*id, &format!("draft {n}"), 1))
            .await;
    }
    let (mut ann, mut bob) = (Ledger::new(), Ledger::new());
    // 2026-06-01 is a Monday.
    p.publish_transactions(&[
        ann.reward(1_000, tasks[0], day("2026-06-01")),
        bob.reward(3_000, tasks[1], day("2026-06-01")),
        ann.reward(2_000, tasks[2], day("2026-06-02")),
        // A fee is not a reward, however large.
        ann.fee(9_000, day("2026-06-02")),
        bob.reward(500, tasks[3], day("2026-06-08")),
        ann.reward(700, tasks[4], day("2026-07-01")),
    ])
    .await;

    let by_day = p
        .report_when(
            &admin,
            "/v1/analytics/tasks/most-expensive?period=day&from=2026-06-01&to=2026-06-03",
            |v| {
                v["periods"][0]["task"]["reward_cents"] == 3_000
                    && v["periods"][1]["task"]["title"] == "task 2"
            },
        )
        .await;
    assert_eq!(by_day["period"], "day");
    assert_eq!(
        picks(&by_day),
        vec![
            ("2026-06-01".into(), json!("task 1"), json!(3_000)),
            ("2026-06-02".into(), json!("task 2"), json!(2_000)),
            ("2026-06-03".into(), Value::Null, Value::Null),
        ]
    );
    assert_eq!(by_day["periods"][0]["task"]["id"], tasks[1].to_string());
    assert_eq!(by_day["periods"][2]["task"], Value::Null);

    let by_week = p
        .report_when(
            &admin,
            "/v1/analytics/tasks/most-expensive?period=week&from=2026-06-01&to=2026-06-14",
            |v| v["periods"][1]["task"]["title"] == "task 3",
        )
        .await;
    assert_eq!(
        picks(&by_week),
        vec![
            ("2026-06-01".into(), json!("task 1"), json!(3_000)),
            ("2026-06-08".into(), json!("task 3"), json!(500)),
        ]
    );
    assert_eq!(by_week["periods"][0]["end"], "2026-06-07");

    let by_month = p
        .report_when(
            &admin,
            "/v1/analytics/tasks/most-expensive?period=month&from=2026-06-01&to=2026-07-31",
            |v| v["periods"][1]["task"]["title"] == "task 4",
        )
        .await;
    assert_eq!(
        picks(&by_month),
        vec![
            ("2026-06-01".into(), json!("task 1"), json!(3_000)),
            ("2026-07-01".into(), json!("task 4"), json!(700)),
        ]
    );
    assert_eq!(by_month["periods"][0]["task"]["paid_on"], "2026-06-01");
}
