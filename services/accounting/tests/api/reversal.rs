//! A task that leaves Completed has its completion reward reversed: one
//! completed task is rewarded once in effect, however often it is
//! reopened and completed again.

use std::{collections::HashSet, time::Duration};

use contracts::topics::{
    self,
    accounting::{Kind, Transaction},
};
use uuid::Uuid;

use crate::{
    helpers::{noon, past_day, spawn, Person, PricedTask, TestPlatform},
    ledger::amounts,
};

/// A worker (with their token and account id) and a task of theirs on a
/// past day: fee 3.00, reward 20.00, assigned (version 2) and completed
/// (version 3).
async fn completed_task(p: &TestPlatform) -> (Person, String, Uuid, PricedTask) {
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let task = PricedTask::new(300, 2_000, noon(past_day()));
    p.publish(&task.assigned(2, id)).await;
    p.publish(&task.completed(3, id)).await;
    (worker, token, id, task)
}

#[tokio::test]
async fn a_task_completed_reopened_and_completed_again_rewards_its_assignee_once() {
    let p = spawn().await;
    let (worker, token, id, task) = completed_task(&p).await;
    p.publish(&task.reopened(4, id)).await;
    p.publish(&task.completed(5, id)).await;

    let ledger = p.ledger_of(&token, "me", 4).await;
    assert_eq!(
        amounts(&ledger),
        vec![
            ("reward".into(), 2_000, 1_700),
            ("correction".into(), -2_000, -300),
            ("reward".into(), 2_000, 1_700),
            ("fee".into(), -300, -300),
        ]
    );
    assert_eq!(ledger["balance_cents"], 1_700);
    let correction = &ledger["entries"][1];
    assert_eq!(correction["task_id"], task.id.to_string());
    assert!(correction["description"]
        .as_str()
        .unwrap()
        .contains("reversed"));

    // The correction is published like every entry.
    let keys = HashSet::from([worker.id.clone()]);
    let events = testkit::collect_events(
        &p.brokers,
        topics::ACCOUNTING_TRANSACTION,
        &keys,
        4,
        Duration::from_secs(30),
    )
    .await;
    let published: Vec<Transaction> = events
        .iter()
        .map(|e| e.state::<Transaction>().unwrap().state)
        .collect();
    let kinds: Vec<Kind> = published.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        vec![Kind::Fee, Kind::Reward, Kind::Correction, Kind::Reward]
    );
    assert_eq!(published[2].amount_cents, -2_000);
    assert_eq!(published[2].task_id, Some(task.id));
}

#[tokio::test]
async fn a_duplicated_reopening_reverses_the_reward_once() {
    let p = spawn().await;
    let (_, token, id, task) = completed_task(&p).await;
    let reopened = task.reopened(4, id);
    p.publish(&reopened).await;
    p.publish(&reopened).await;
    let mut again = reopened.clone();
    again.event_id = Uuid::now_v7();
    p.publish(&again).await;
    // A later change of the same task (same partition): once it shows,
    // the duplicates were read too.
    p.publish(&task.assigned(5, id)).await;

    let ledger = p.ledger_of(&token, "me", 4).await;
    assert_eq!(
        amounts(&ledger),
        vec![
            ("fee".into(), -300, -600),
            ("correction".into(), -2_000, -300),
            ("reward".into(), 2_000, 1_700),
            ("fee".into(), -300, -300),
        ]
    );
    assert_eq!(ledger["balance_cents"], -600);
}

#[tokio::test]
async fn a_reversed_reward_is_not_counted_in_the_days_rewards() {
    let p = spawn().await;
    let (_, accountant) = p.worker_with("Accountant", "su_read:accounting").await;
    let (_, token, id, task) = completed_task(&p).await;
    let day = task.at.date_naive();
    p.publish(&task.reopened(4, id)).await;
    p.ledger_of(&token, "me", 3).await;

    let v = p
        .get_json(
            &accountant,
            &format!("/v1/accounting/earnings?from={day}&to={day}"),
        )
        .await;
    assert_eq!(v["days"][0]["fees_cents"], 300);
    assert_eq!(v["days"][0]["rewards_cents"], 0);
    assert_eq!(v["days"][0]["earnings_cents"], 300);
}
