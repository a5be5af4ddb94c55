//! Task events become ledger entries once each, and the ledger can be
//! rebuilt from the topic.

use std::{collections::HashSet, time::Duration};

use contracts::topics::{self, accounting::Transaction};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{noon, options, past_day, spawn, PricedTask};

pub fn amounts(ledger: &Value) -> Vec<(String, i64, i64)> {
    ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount_cents"].as_i64().unwrap(),
                e["balance_after_cents"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_assigned_and_completed_task_shows_its_fee_and_reward_in_the_workers_ledger_and_balance()
{
    let p = spawn().await;
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let day = past_day();
    let task = PricedTask::new(300, 2_000, noon(day));
    p.publish(&task.assigned(2, id)).await;
    p.publish(&task.completed(3, id)).await;

    let ledger = p.ledger_of(&token, "me", 2).await;
    assert_eq!(
        amounts(&ledger),
        vec![("reward".into(), 2_000, 1_700), ("fee".into(), -300, -300)]
    );
    let newest = &ledger["entries"][0];
    assert_eq!(newest["task_id"], task.id.to_string());
    assert_eq!(newest["business_day"], day.to_string());
    assert!(newest["description"].as_str().unwrap().contains("20.00"));
    assert_eq!(ledger["balance_cents"], 1_700);
    let account = p
        .get_json(&token, &format!("/v1/accounting/accounts/{id}"))
        .await;
    assert_eq!(account["balance_cents"], 1_700);
    assert_eq!(account["username"], worker.username.as_str());

    // Each entry is published, keyed by the worker's account.
    let keys = HashSet::from([worker.id.clone()]);
    let events = testkit::collect_events(
        &p.brokers,
        topics::ACCOUNTING_TRANSACTION,
        &keys,
        2,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(events.len(), 2);
    let published: Vec<Transaction> = events
        .iter()
        .map(|e| {
            assert_eq!(e.source.service, "accounting");
            e.state::<Transaction>().unwrap().state
        })
        .collect();
    assert_eq!(published[0].amount_cents, -300);
    assert_eq!(published[1].amount_cents, 2_000);
    assert_eq!(published[1].balance_after_cents, 1_700);
    assert_eq!(published[1].task_id, Some(task.id));
}

#[tokio::test]
async fn a_duplicated_event_changes_nothing() {
    let p = spawn().await;
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let task = PricedTask::new(300, 2_000, noon(past_day()));
    let assigned = task.assigned(2, id);
    p.publish(&assigned).await;
    // Delivered again, and written again with a new event id.
    p.publish(&assigned).await;
    let mut again = assigned.clone();
    again.event_id = Uuid::now_v7();
    p.publish(&again).await;
    let completed = task.completed(3, id);
    p.publish(&completed).await;
    p.publish(&completed).await;
    // A later change of the same task (same partition, so read after the
    // duplicates): once it shows, the duplicates were read too.
    let reassigned = task.assigned(4, id);
    p.publish(&reassigned).await;

    let ledger = p.ledger_of(&token, "me", 3).await;
    assert_eq!(
        amounts(&ledger),
        vec![
            ("fee".into(), -300, 1_400),
            ("reward".into(), 2_000, 1_700),
            ("fee".into(), -300, -300)
        ]
    );
    assert_eq!(ledger["balance_cents"], 1_400);
}

#[tokio::test]
async fn a_new_consumer_group_replaying_task_events_from_the_start_gives_the_same_balances() {
    let p = spawn().await;
    let (_, admin_token) = p.worker_with("admin", "su_read:accounting").await;
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let day = past_day();
    let simple = PricedTask::new(100, 700, noon(day));
    p.publish(&simple.assigned(2, id)).await;
    p.publish(&simple.completed(3, id)).await;
    // Completed, reopened and completed again, its completion delivered
    // twice: the replica meets all of it in one backlog, applied in runs
    // (the reversal looks up a reward appended in the same run).
    let reopened = PricedTask::new(250, 1_100, noon(day));
    for e in [
        reopened.assigned(2, id),
        reopened.completed(3, id),
        reopened.reopened(4, id),
        reopened.completed(5, id),
        reopened.completed(5, id),
    ] {
        p.publish(&e).await;
    }
    let first = p.ledger_of(&token, "me", 6).await;
    assert_eq!(first["balance_cents"], 1_450);

    // A second app, its own database, a new group from the earliest offset.
    let db = testkit::accounting::database();
    let mut o = options(&p.brokers, &db, &p.sk);
    o.skip_history = false;
    let replica = testkit::accounting::spawn(o).await;
    let path = format!("{}/v1/accounting/accounts/{id}/ledger", replica.address);
    let second: Value = crate::helpers::eventually(60, "the replayed ledger", || async {
        let r = p
            .http
            .get(&path)
            .bearer_auth(&admin_token)
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::OK).then_some(())?;
        let v: Value = r.json().await.ok()?;
        (v["entries"].as_array()?.len() >= 6).then_some(v)
    })
    .await;
    assert_eq!(second["balance_cents"], first["balance_cents"]);
    // The same entries; tasks on different partitions may interleave
    // otherwise, so only the running balances between them may differ.
    let entries = |v: &Value| {
        let mut e: Vec<(String, i64)> = amounts(v).into_iter().map(|(k, a, _)| (k, a)).collect();
        e.sort();
        e
    };
    assert_eq!(entries(&second), entries(&first));
    replica.stop().await;
}

#[tokio::test]
async fn a_task_event_written_by_anyone_but_the_task_service_moves_no_money() {
    let p = spawn().await;
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let task = PricedTask::new(300, 50_000, noon(past_day()));
    // A neighbour's forged completion, then the task service's own
    // assignment of the same task (same partition, so read after it).
    p.publish(&PricedTask::forged_by(
        task.completed(3, id),
        "user-directory",
    ))
    .await;
    p.publish(&task.assigned(2, id)).await;

    let ledger = p.ledger_of(&token, "me", 1).await;
    assert_eq!(amounts(&ledger), vec![("fee".into(), -300, -300)]);
    assert_eq!(ledger["balance_cents"], -300);
}

#[tokio::test]
async fn a_long_ledger_is_read_a_page_at_a_time_newest_first() {
    let p = spawn().await;
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let task = PricedTask::new(100, 0, noon(past_day()));
    for version in 2..=4 {
        p.publish(&task.assigned(version, id)).await;
    }
    p.ledger_of(&token, "me", 3).await;

    let first = p
        .get_json(&token, "/v1/accounting/accounts/me/ledger?limit=2")
        .await;
    let seqs = |v: &Value| -> Vec<i64> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    };
    let top = seqs(&first);
    assert_eq!(top.len(), 2);
    assert!(top[0] > top[1]);
    let before = first["next_before"].as_i64().expect("a next page");
    let second = p
        .get_json(
            &token,
            &format!("/v1/accounting/accounts/me/ledger?limit=2&before={before}"),
        )
        .await;
    let rest = seqs(&second);
    assert_eq!(rest.len(), 1);
    assert!(rest[0] < top[1]);
    assert_eq!(second["next_before"], Value::Null);
    assert_eq!(second["entries"][0]["balance_after_cents"], -100);
}
