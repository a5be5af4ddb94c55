//! The tripwire: a rule that newly restricts too many users is suspended,
//! alone, until it is reset or its suspension ends.

use std::{collections::HashSet, time::Duration};

use futures::future::join_all;
use rdkafka::TopicPartitionList;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{
    eventually, new_user_id, read_from, rules_in, spawn_app, spawn_app_with, TestApp,
};

/// 40 users seen, one scam flag each; the first also has a card restriction.
async fn population(app: &TestApp) -> Vec<String> {
    let users: Vec<String> = (0..40).map(|_| new_user_id()).collect();
    join_all(users.iter().map(|u| app.flag(u))).await;
    let p = &users[39];
    for (zip, last4) in [("1", "0001"), ("2", "0002"), ("3", "0003")] {
        app.card(p, zip, last4, 10.0).await;
    }
    assert!(!app.can_purchase(p).await);
    users
}

/// Waits for this app's event of `rule` whose `after.field` is `value`
/// (other apps trip the same rules on the shared topic).
async fn rule_event(
    app: &TestApp,
    mark: &TopicPartitionList,
    rule: &str,
    field: &str,
    value: &Value,
) -> Value {
    let keys = HashSet::from([rule.to_owned()]);
    let is_it = |e: &Value| &e["after"][field] == value;
    let found = read_from(&app.brokers, mark, &keys, Duration::from_secs(60), |e| {
        e.iter().any(is_it)
    })
    .await;
    found
        .into_iter()
        .find(is_it)
        .unwrap_or_else(|| panic!("no event for {rule} with {field} = {value}"))
}

#[tokio::test]
async fn a_rule_restricting_too_many_users_trips_suspends_only_itself_and_resets() {
    // The periodic safety-net check could trip the rule between the third
    // restriction's commit and that request's own check, and the event's
    // answer would then not name the trip: here only requests check.
    let app = spawn_app_with(|o| o.rules_refresh = Duration::from_secs(3600)).await;
    let mark = app.mark().await;
    let users = population(&app).await;

    // Two of forty is 5 %: not more than the share.
    for u in &users[..2] {
        let o = app.flag(u).await;
        assert_eq!(rules_in(&o, "restricted"), ["scam_flags"], "{o}");
        assert!(!app.can_message(u).await);
    }
    let rule = app.rule("scam_flags").await;
    assert_eq!(rule["tripped"], false);
    assert_eq!(rule["newly_restricted_in_window"], 2);
    assert_eq!(rule["population"], 40);

    // The third trips it: its restrictions are suspended.
    let o = app.flag(&users[2]).await;
    assert_eq!(rules_in(&o, "tripped"), ["scam_flags"], "{o}");
    for u in &users[..3] {
        assert!(app.can_message(u).await, "suspended rule ignored");
    }
    // Other rules still apply.
    assert!(!app.can_purchase(&users[39]).await);
    assert_eq!(app.rule("card_zip_ratio").await["tripped"], false);
    let rule = app.rule("scam_flags").await;
    assert_eq!(rule["tripped"], true);
    assert_eq!(rule["trip_count"], 1);
    let tripped_at = rule["tripped_at"].clone();
    let until =
        chrono::DateTime::parse_from_rfc3339(rule["suspended_until"].as_str().unwrap()).unwrap();
    let hour = until.timestamp() - chrono::Utc::now().timestamp();
    assert!((3500..=3600).contains(&hour), "{hour}");

    // Restrictions made meanwhile are recorded, and suspended too.
    app.flag(&users[3]).await;
    assert!(app.can_message(&users[3]).await);
    let view = app.user(&users[3]).await;
    assert_eq!(view["restrictions"][0]["rule"], "scam_flags");
    assert_eq!(view["restrictions"][0]["suspended"], true);
    assert_eq!(view["can_message"], true);

    // An operator resets it: the restrictions apply again, the window
    // starts afresh.
    let r = app
        .admin(Method::POST, "/v1/admin/rules/scam_flags/reset", None)
        .await;
    assert_eq!(r["reset"], true);
    assert_eq!(r["rule"]["tripped"], false);
    assert_eq!(r["rule"]["newly_restricted_in_window"], 0);
    assert_eq!(r["rule"]["last_reset_by"], "operator-token");
    let reset_at = r["rule"]["last_reset_at"].clone();
    for u in &users[..4] {
        assert!(!app.can_message(u).await);
    }
    let r = app
        .admin(Method::POST, "/v1/admin/rules/scam_flags/reset", None)
        .await;
    assert_eq!(r["reset"], false, "nothing to reset");

    let trip = rule_event(&app, &mark, "scam_flags", "tripped_at", &tripped_at).await;
    assert_eq!(trip["after"]["action"], "trip");
    assert_eq!(trip["entity"], "rule");
    assert_eq!(trip["after"]["newly_restricted"], 3);
    assert_eq!(trip["after"]["population"], 40);
    let reset = rule_event(&app, &mark, "scam_flags", "last_reset_at", &reset_at).await;
    assert_eq!(reset["after"]["action"], "reset");
}

#[tokio::test]
async fn a_tripped_rule_applies_again_when_its_suspension_ends() {
    let app = spawn_app_with(|o| o.rules.tripwire.suspend = Duration::from_secs(2)).await;
    let users = population(&app).await;
    join_all(users[..3].iter().map(|u| app.flag(u))).await;
    assert_eq!(app.rule("scam_flags").await["tripped"], true);
    assert!(app.can_message(&users[0]).await);
    eventually(10, "the suspension to end", || async {
        (!app.can_message(&users[0]).await).then_some(())
    })
    .await;
    assert_eq!(app.rule("scam_flags").await["tripped"], false);
}

#[tokio::test]
async fn a_small_population_never_trips() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..10).map(|_| new_user_id()).collect();
    for u in &users {
        app.flag(u).await;
        let o = app.flag(u).await;
        assert!(rules_in(&o, "tripped").is_empty());
    }
    for u in &users {
        assert!(!app.can_message(u).await);
    }
    assert_eq!(
        app.rule("scam_flags").await["newly_restricted_in_window"],
        10
    );
}
