//! The number of workers with a negative balance.

use chrono::{NaiveDate, Utc};
use contracts::topics::accounting::{Kind, Transaction};
use uuid::Uuid;

use crate::helpers::{day, noon, spawn, transaction, Ledger};

const NEGATIVE: &str = "/v1/analytics/workers/negative-balance";

#[tokio::test]
async fn the_count_of_workers_in_debt_follows_their_balances() {
    let p = spawn().await;
    let admin = p.admin().await;
    let today = Utc::now().date_naive();
    let (mut ann, mut bob, mut cid) = (Ledger::new(), Ledger::new(), Ledger::new());
    p.publish_transactions(&[
        ann.fee(300, today),
        bob.fee(300, today),
        bob.reward(1_000, Uuid::now_v7(), today),
        cid.fee(100, today),
    ])
    .await;
    p.report_when(&admin, NEGATIVE, |v| v["count"] == 2).await;

    // Ann is paid and out of debt; Bob's balance is paid out to zero.
    p.publish_transactions(&[
        ann.reward(2_000, Uuid::now_v7(), today),
        bob.entry(Kind::Payout, -700, None, today),
    ])
    .await;
    p.report_when(&admin, NEGATIVE, |v| v["count"] == 1).await;

    // Older transactions of Bob's arriving late (lower sequence numbers)
    // do not take his latest balance back. The second is a reward on a
    // day of its own: once the report shows it, both were applied.
    let late =
        |kind, amount, balance_after, day| late(bob.account, kind, amount, balance_after, day);
    let marker_day = day("2001-01-01");
    p.publish_transactions(&[
        transaction(&late(Kind::Fee, -5_000, -5_000, today), 1),
        transaction(&late(Kind::Reward, 123, -4_877, marker_day), 2),
    ])
    .await;
    p.report_when(
        &admin,
        "/v1/analytics/tasks/most-expensive?from=2001-01-01&to=2001-01-01",
        |v| v["periods"][0]["task"]["reward_cents"] == 123,
    )
    .await;
    assert_eq!(p.get_json(&admin, NEGATIVE).await["count"], 1);
}

#[tokio::test]
async fn falling_back_into_debt_counts_again_and_late_transactions_do_not_move_the_count() {
    let p = spawn().await;
    let admin = p.admin().await;
    let today = Utc::now().date_naive();
    let (mut ann, mut bob) = (Ledger::new(), Ledger::new());

    // Bob's first transaction leaves him in debt: a new account counts.
    p.publish_transactions(&[ann.fee(300, today), bob.fee(100, today)])
        .await;
    p.report_when(&admin, NEGATIVE, |v| v["count"] == 2).await;

    // Ann is paid out of debt, then falls back into it.
    p.publish_transactions(&[ann.reward(1_000, Uuid::now_v7(), today)])
        .await;
    p.report_when(&admin, NEGATIVE, |v| v["count"] == 1).await;
    let back_in_debt = ann.fee(900, today);
    p.publish_transactions(std::slice::from_ref(&back_in_debt))
        .await;
    p.report_when(&admin, NEGATIVE, |v| v["count"] == 2).await;

    // An older transaction of Ann's arriving late (a lower sequence number
    // than her latest) would take her out of debt if it replaced her
    // balance; her latest one delivered again is skipped. The reward on a
    // day of its own comes last on her partition: once the report shows
    // it, the others were applied.
    let late =
        |kind, amount, balance_after, day| late(ann.account, kind, amount, balance_after, day);
    let marker_day = day("2001-01-02");
    p.publish_transactions(&[
        transaction(&late(Kind::Reward, 5_000, 4_800, today), 1),
        back_in_debt,
        transaction(&late(Kind::Reward, 321, 5_121, marker_day), 2),
    ])
    .await;
    p.report_when(
        &admin,
        "/v1/analytics/tasks/most-expensive?from=2001-01-02&to=2001-01-02",
        |v| v["periods"][0]["task"]["reward_cents"] == 321,
    )
    .await;
    assert_eq!(p.get_json(&admin, NEGATIVE).await["count"], 2);

    // The count still follows the latest balances: Bob is paid out of debt.
    p.publish_transactions(&[bob.reward(500, Uuid::now_v7(), today)])
        .await;
    p.report_when(&admin, NEGATIVE, |v| v["count"] == 1).await;
}

/// A transaction of `account` as one published earlier than its latest
/// would be (the test gives it a lower sequence number).
fn late(
    account_id: Uuid,
    kind: Kind,
    amount_cents: i64,
    balance_after_cents: i64,
    business_day: NaiveDate,
) -> Transaction {
    Transaction {
        id: Uuid::now_v7(),
        account_id,
        kind,
        amount_cents,
        balance_after_cents,
        task_id: Some(Uuid::now_v7()),
        description: "late".into(),
        business_day,
        created_at: noon(business_day),
    }
}
