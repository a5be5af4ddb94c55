//! Management's earnings today: fees collected minus rewards paid.

use chrono::{Days, Utc};
use contracts::topics::accounting::Kind;
use uuid::Uuid;

use crate::helpers::{spawn, Ledger};

const TODAY: &str = "/v1/analytics/earnings/today";

#[tokio::test]
async fn todays_earnings_are_the_fees_collected_minus_the_rewards_paid() {
    let p = spawn().await;
    let admin = p.admin().await;
    let today = Utc::now().date_naive();
    let mut ann = Ledger::new();
    let mut bob = Ledger::new();
    p.publish_transactions(&[
        ann.fee(300, today),
        ann.reward(2_000, Uuid::now_v7(), today),
        // Yesterday's and payouts are not today's earnings.
        ann.fee(10_000, today - Days::new(1)),
        ann.entry(Kind::Payout, -1_700, None, today),
        ann.fee(1, today),
        bob.fee(500, today),
    ])
    .await;

    let v = p
        .report_when(&admin, TODAY, |v| {
            v["fees_cents"] == 801 && v["rewards_cents"] == 2_000
        })
        .await;
    assert_eq!(v["day"], today.to_string());
    assert_eq!(v["time_zone"], "UTC");
    assert_eq!(v["earnings_cents"], -1_199);
}

#[tokio::test]
async fn a_duplicated_transaction_changes_nothing() {
    let p = spawn().await;
    let admin = p.admin().await;
    let today = Utc::now().date_naive();
    let mut ann = Ledger::new();
    let fee = ann.fee(300, today);
    let reward = ann.reward(2_000, Uuid::now_v7(), today);
    // The marker comes after the duplicates, on the same partition (the
    // same account): once it is counted, so are they, if they were.
    p.publish_transactions(&[fee.clone(), reward.clone(), fee, reward, ann.fee(7, today)])
        .await;

    let v = p
        .report_when(&admin, TODAY, |v| {
            v["fees_cents"].as_i64().unwrap() % 10 == 7
        })
        .await;
    assert_eq!(v["fees_cents"], 307);
    assert_eq!(v["rewards_cents"], 2_000);
    assert_eq!(v["earnings_cents"], -1_693);
}
