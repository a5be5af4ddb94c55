//! Management's earnings: fees collected minus rewards paid, per day.

use chrono::{Days, Utc};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{noon, past_day, spawn, PricedTask};

#[tokio::test]
async fn todays_earnings_are_the_fees_collected_minus_the_rewards_paid() {
    let p = spawn().await;
    let (_, accountant) = p.worker_with("Accountant", "su_read:accounting").await;
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let now = Utc::now();
    let a = PricedTask::new(300, 2_000, now);
    let b = PricedTask::new(500, 4_000, now);
    p.publish(&a.assigned(2, id)).await;
    p.publish(&a.completed(3, id)).await;
    p.publish(&b.assigned(2, id)).await;
    p.ledger_of(&token, "me", 3).await;

    let today = p
        .get_json(&accountant, "/v1/accounting/earnings/today")
        .await;
    assert_eq!(today["day"], now.date_naive().to_string());
    assert_eq!(today["time_zone"], "UTC");
    assert_eq!(today["fees_cents"], 800);
    assert_eq!(today["rewards_cents"], 2_000);
    assert_eq!(today["earnings_cents"], -1_200);
}

#[tokio::test]
async fn the_earnings_history_shows_every_day_of_the_range_with_its_own_totals() {
    let p = spawn().await;
    let (_, accountant) = p.worker_with("Accountant", "su_read:accounting").await;
    let (worker, token) = p.worker().await;
    let id: Uuid = worker.id.parse().unwrap();
    let day = past_day();
    let next = day + Days::new(1);
    let a = PricedTask::new(300, 1_000, noon(day));
    let b = PricedTask::new(700, 0, noon(next));
    p.publish(&a.assigned(2, id)).await;
    p.publish(&a.completed(3, id)).await;
    p.publish(&b.assigned(2, id)).await;
    p.ledger_of(&token, "me", 3).await;

    let from = day - Days::new(1);
    let v = p
        .get_json(
            &accountant,
            &format!("/v1/accounting/earnings?from={from}&to={next}"),
        )
        .await;
    let days: Vec<(String, i64)> = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_owned(),
                d["earnings_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            (from.to_string(), 0),
            (day.to_string(), -700),
            (next.to_string(), 700)
        ]
    );
    assert_eq!(v["total"]["fees_cents"], 1_000);
    assert_eq!(v["total"]["rewards_cents"], 1_000);
    assert_eq!(v["total"]["earnings_cents"], 0);

    // A worker's own token does not reach management's figures.
    let r = p.get(&token, "/v1/accounting/earnings").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
