//! A reward accounting reversed (a `correction` for its task: the task
//! left Completed) is not the day's most expensive task and is not
//! counted in the day's rewards.

use chrono::Utc;
use contracts::topics::{self, accounting::Kind};
use uuid::Uuid;

use crate::helpers::{day, spawn, task_event, Ledger};

#[tokio::test]
async fn a_reversed_reward_is_not_the_most_expensive_task_of_its_day() {
    let p = spawn().await;
    let admin = p.admin().await;
    let (reopened, done) = (Uuid::now_v7(), Uuid::now_v7());
    p.publish(topics::TASK, &task_event(reopened, "reopened", 1))
        .await;
    p.publish(topics::TASK, &task_event(done, "done", 1)).await;
    let (mut ann, mut bob) = (Ledger::new(), Ledger::new());
    let d = day("2026-06-01");
    p.publish_transactions(&[
        ann.reward(3_000, reopened, d),
        bob.reward(1_000, done, d),
        ann.entry(Kind::Correction, -3_000, Some(reopened), d),
    ])
    .await;

    let v = p
        .report_when(
            &admin,
            "/v1/analytics/tasks/most-expensive?period=day&from=2026-06-01&to=2026-06-01",
            |v| v["periods"][0]["task"]["reward_cents"] == 1_000,
        )
        .await;
    assert_eq!(v["periods"][0]["task"]["title"], "done");
}

#[tokio::test]
async fn a_task_completed_again_after_its_reward_was_reversed_counts_once_in_the_days_rewards() {
    let p = spawn().await;
    let admin = p.admin().await;
    let today = Utc::now().date_naive();
    let task = Uuid::now_v7();
    let mut ann = Ledger::new();
    p.publish_transactions(&[
        ann.reward(2_000, task, today),
        ann.entry(Kind::Correction, -2_000, Some(task), today),
        ann.reward(2_000, task, today),
        ann.fee(1, today),
    ])
    .await;

    let v = p
        .report_when(&admin, "/v1/analytics/earnings/today", |v| {
            v["fees_cents"] == 1
        })
        .await;
    assert_eq!(v["rewards_cents"], 2_000);
}
