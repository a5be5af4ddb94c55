//! Concurrent events for one user all count, each judged after the others.

use std::collections::BTreeSet;

use access_rule::domain::{holds, Facts, Rule, RulesConfig};
use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{new_user_id, rules_in, spawn_app};

#[tokio::test]
async fn a_hundred_parallel_scam_flags_for_one_user_leave_exactly_a_hundred_flags() {
    let app = spawn_app().await;
    let u = new_user_id();
    let outcomes: Vec<Value> = join_all((0..100).map(|_| app.flag(&u))).await;
    let counts: BTreeSet<i64> = outcomes
        .iter()
        .map(|o| o["facts"]["scam_flags"].as_i64().unwrap())
        .collect();
    assert_eq!(
        counts,
        (1..=100).collect(),
        "each event saw all earlier ones"
    );
    let restricting: Vec<&Value> = outcomes
        .iter()
        .filter(|o| !rules_in(o, "restricted").is_empty())
        .collect();
    assert_eq!(restricting.len(), 1, "restricted exactly once");
    assert_eq!(restricting[0]["facts"]["scam_flags"], 2);
    let user = app.user(&u).await;
    assert_eq!(user["facts"]["scam_flags"], 100);
    assert_eq!(user["history"].as_array().unwrap().len(), 1);
    assert!(!app.can_message(&u).await);
}

#[tokio::test]
async fn fifty_parallel_cards_for_one_user_are_each_judged_with_all_earlier_cards_seen() {
    let app = spawn_app().await;
    let u = new_user_id();
    // Zips repeat so that the card rule switches on and off as cards arrive.
    let bodies: Vec<Value> = (0..50)
        .map(|i| {
            json!({"name": "add_credit_card", "event_properties": {
                "user_id": u, "zip_code": format!("{}", (i * 7) % 13),
                "last_four_digits": format!("{i:04}"), "total_spend": 10.0}})
        })
        .collect();
    let mut outcomes: Vec<Value> = join_all(bodies.into_iter().map(|b| app.event(b))).await;
    outcomes.sort_by_key(|o| o["facts"]["card_count"].as_i64().unwrap());
    let counts: Vec<i64> = outcomes
        .iter()
        .map(|o| o["facts"]["card_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, (1..=50).collect::<Vec<_>>());
    // Replaying the outcomes in commit order, each decision follows from
    // the facts that event saw, and the restriction state is consistent.
    let cfg = RulesConfig::default();
    let mut restricted = false;
    let mut zips_before = 0;
    for o in &outcomes {
        let f = &o["facts"];
        let facts = Facts {
            card_count: f["card_count"].as_i64().unwrap(),
            zip_count: f["zip_count"].as_i64().unwrap(),
            total_spend_cents: f["total_spend_cents"].as_i64().unwrap(),
            ..Facts::default()
        };
        assert_eq!(facts.total_spend_cents, facts.card_count * 1000);
        assert!(facts.zip_count >= zips_before && facts.zip_count <= zips_before + 1);
        zips_before = facts.zip_count;
        let now = holds(Rule::CardZipRatio, &facts, &cfg);
        let (r, l) = (rules_in(o, "restricted"), rules_in(o, "lifted"));
        match (restricted, now) {
            (false, true) => assert_eq!(r, ["card_zip_ratio"], "{o}"),
            (true, false) => assert_eq!(l, ["card_zip_ratio"], "{o}"),
            _ => assert!(r.is_empty() && l.is_empty(), "{o}"),
        }
        restricted = now;
    }
    let user = app.user(&u).await;
    assert_eq!(user["facts"]["card_count"], 50);
    assert_eq!(user["facts"]["zip_count"], 13);
    assert_eq!(user["cards"].as_array().unwrap().len(), 50);
    assert_eq!(app.can_purchase(&u).await, !restricted);
}
