//! The daily close pays each positive balance out once, and asks for one
//! mail per paid worker.

use std::time::Duration;

use chrono::{Days, Utc};
use contracts::topics::{
    self,
    accounting::{Kind, Transaction},
    notification::Notification,
};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{events_where, noon, past_day, spawn, PricedTask};

#[tokio::test]
async fn closing_a_day_twice_pays_a_positive_balance_once_and_mails_the_worker_once() {
    let p = spawn().await;
    let (_, operator) = p.worker_with("admin", "close:accounting").await;
    let (worker, token) = p.worker().await;
    let (debtor, debtor_token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let day = past_day();
    let task = PricedTask::new(300, 2_000, noon(day));
    p.publish(&task.assigned(2, id)).await;
    p.publish(&task.completed(3, id)).await;
    // A worker who only paid a fee owes it: nothing to pay out.
    let owed = PricedTask::new(400, 0, noon(day));
    p.publish(&owed.assigned(2, debtor.id.parse().unwrap()))
        .await;
    p.ledger_of(&token, "me", 2).await;
    p.ledger_of(&debtor_token, "me", 1).await;

    let r = p.close(&operator, day).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["newly_closed"], true);
    assert_eq!(
        first["payouts"],
        serde_json::json!([{"account_id": worker.id, "amount_cents": 1_700,
                            "transaction_id": first["payouts"][0]["transaction_id"]}])
    );
    let r = p.close(&operator, day).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["newly_closed"], false);
    assert_eq!(second["payouts"], first["payouts"]);

    let ledger = p.ledger_of(&token, "me", 3).await;
    let payout = &ledger["entries"][0];
    assert_eq!(payout["kind"], "payout");
    assert_eq!(payout["amount_cents"], -1_700);
    assert_eq!(payout["balance_after_cents"], 0);
    assert_eq!(payout["business_day"], day.to_string());
    assert_eq!(ledger["balance_cents"], 0);
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 3);
    let debtor_ledger = p.ledger_of(&debtor_token, "me", 1).await;
    assert_eq!(debtor_ledger["balance_cents"], -400);

    // The payout is published like every entry.
    let keys = std::collections::HashSet::from([worker.id.clone()]);
    let published = testkit::collect_events(
        &p.brokers,
        topics::ACCOUNTING_TRANSACTION,
        &keys,
        3,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(published.len(), 3);
    let last = published[2].state::<Transaction>().unwrap().state;
    assert_eq!(last.kind, Kind::Payout);
    assert_eq!(last.amount_cents, -1_700);
    assert_eq!(last.balance_after_cents, 0);

    // One mail, to the worker, naming the amount and the day.
    let email = format!("{}@example.com", worker.username);
    let mails = events_where(
        &p.brokers,
        topics::NOTIFICATION,
        2,
        Duration::from_secs(5),
        |e| {
            e.state::<Notification>()
                .is_ok_and(|n| n.state.to.contains(&email))
        },
    )
    .await;
    assert_eq!(mails.len(), 1, "one mail per paid worker");
    assert_eq!(mails[0].source.service, "accounting");
    let mail = mails[0].state::<Notification>().unwrap().state;
    assert_eq!(mail.kind, "payout");
    assert!(mail.body.contains("17.00"), "{}", mail.body);
    assert!(mail.body.contains(&day.to_string()), "{}", mail.body);
}

#[tokio::test]
async fn a_day_that_has_not_ended_cannot_be_closed_and_closing_needs_its_scope() {
    let p = spawn().await;
    let (_, operator) = p.worker_with("admin", "close:accounting").await;
    let (_, accountant) = p.worker_with("Accountant", "su_read:accounting").await;
    let today = Utc::now().date_naive();
    let r = p.close(&operator, today).await;
    let body = crate::helpers::assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["field"], "day");
    let r = p.close(&operator, today + Days::new(1)).await;
    crate::helpers::assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = p.close(&accountant, past_day()).await;
    let body = crate::helpers::assert_problem(r, StatusCode::FORBIDDEN).await;
    assert_eq!(
        body["missing_scopes"],
        serde_json::json!(["close:accounting"])
    );
}
