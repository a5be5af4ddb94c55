//! The User Access Management design's cases (docs/architecture.md, "The
//! source designs").

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, new_user_id, rules_in, spawn_app};

#[tokio::test]
async fn checks_without_user_id_answer_400_and_for_an_unknown_user_404() {
    let app = spawn_app().await;
    for path in [
        "/canmessage",
        "/canpurchase",
        "/canmessage?user_id=",
        "/canpurchase?other=1",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_problem(r, StatusCode::BAD_REQUEST).await;
    }
    let nobody = new_user_id();
    assert_problem(
        app.check("canmessage", &nobody).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.check("canpurchase", &nobody).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn two_scam_flags_restrict_messaging_but_not_purchasing() {
    let app = spawn_app().await;
    let u = new_user_id();
    let first = app.flag(&u).await;
    assert_eq!(first["facts"]["scam_flags"], 1);
    assert!(app.can_message(&u).await);
    let second = app.flag(&u).await;
    assert_eq!(rules_in(&second, "restricted"), ["scam_flags"]);
    assert!(!app.can_message(&u).await);
    assert!(app.can_purchase(&u).await);
    app.flag(&u).await;
    assert!(!app.can_message(&u).await);
}

#[tokio::test]
async fn three_cards_in_three_zips_restrict_purchasing_but_four_cards_in_three_zips_do_not() {
    let app = spawn_app().await;
    let u = new_user_id();
    app.card(&u, "10001", "1111", 100.0).await;
    app.card(&u, "20002", "2222", 100.0).await;
    assert!(app.can_purchase(&u).await, "two cards are too few to judge");
    let third = app.card(&u, "30003", "3333", 100.0).await;
    assert_eq!(rules_in(&third, "restricted"), ["card_zip_ratio"]);
    assert!(!app.can_purchase(&u).await);
    assert!(app.can_message(&u).await);
    let fourth = app.card(&u, "10001", "4444", 100.0).await;
    assert_eq!(rules_in(&fourth, "lifted"), ["card_zip_ratio"]);
    assert!(
        app.can_purchase(&u).await,
        "3 zips / 4 cards is not above 0.75"
    );

    // Four cards in three zips from the start never restrict.
    let v = new_user_id();
    for (zip, last4) in [("1", "0001"), ("2", "0002"), ("1", "0003"), ("3", "0004")] {
        let o = app.card(&v, zip, last4, 10.0).await;
        if o["facts"]["card_count"] == 4 {
            assert!(rules_in(&o, "restricted").is_empty());
        }
    }
    // (the third card, 2 zips / 3 cards = 0.67, did not restrict either)
    assert!(app.can_purchase(&v).await);
}

#[tokio::test]
async fn a_duplicate_card_is_not_added_twice() {
    let app = spawn_app().await;
    let u = new_user_id();
    app.card(&u, "10001", "1111", 100.0).await;
    let again = app.card(&u, "10001", "1111", 250.0).await;
    assert_eq!(again["effect"], "duplicate_card");
    assert_eq!(again["facts"]["card_count"], 1);
    assert_eq!(again["facts"]["total_spend_cents"], 10_000);
    // Zip codes compare without case; a number is its text.
    app.card(&u, "sw1a 1aa", "1111", 1.0).await;
    let same = app.card(&u, "SW1A 1AA", "1111", 1.0).await;
    assert_eq!(same["effect"], "duplicate_card");
    let n = app
        .event(json!({"name": "add_credit_card", "event_properties":
            {"user_id": u, "zip_code": 10001, "last_four_digits": 1111, "total_spend": 1}}))
        .await;
    assert_eq!(n["effect"], "duplicate_card");
    assert_eq!(n["facts"]["card_count"], 2);
}

#[tokio::test]
async fn spends_of_5000_and_3000_with_a_700_chargeback_keep_purchasing_and_200_more_restrict_it() {
    let app = spawn_app().await;
    let u = new_user_id();
    app.card(&u, "10001", "1111", 5000.0).await;
    app.card(&u, "10001", "2222", 3000.0).await;
    app.chargeback(&u, 700.0).await;
    assert!(app.can_purchase(&u).await, "700 is not above 10 % of 8000");
    let o = app.chargeback(&u, 200.0).await;
    assert_eq!(rules_in(&o, "restricted"), ["chargeback_ratio"]);
    assert_eq!(o["facts"]["chargeback_cents"], 90_000);
    assert!(!app.can_purchase(&u).await);
    assert!(app.can_message(&u).await);
    // More spend brings the ratio back under the limit: 900 of 10000.
    let o = app.card(&u, "10001", "3333", 2000.0).await;
    assert_eq!(rules_in(&o, "lifted"), ["chargeback_ratio"]);
    assert!(app.can_purchase(&u).await);
}

#[tokio::test]
async fn every_restriction_and_lift_is_published_on_access_restriction_v1_in_order() {
    let app = spawn_app().await;
    let mark = app.mark().await;
    let u = new_user_id();
    app.flag(&u).await;
    app.flag(&u).await; // restrict scam_flags
    app.card(&u, "1", "0001", 10.0).await;
    app.card(&u, "2", "0002", 10.0).await;
    app.card(&u, "3", "0003", 10.0).await; // restrict card_zip_ratio
    app.card(&u, "1", "0004", 10.0).await; // lift card_zip_ratio
    let events = app.restriction_events(&mark, &[&u], 3).await;
    let seen: Vec<(i64, String, String)> = events
        .iter()
        .map(|e| {
            let c = &e.after.as_ref().unwrap()["changes"][0];
            (
                e.version,
                c["rule"].as_str().unwrap().to_owned(),
                c["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "scam_flags".into(), "restrict".into()),
            (2, "card_zip_ratio".into(), "restrict".into()),
            (3, "card_zip_ratio".into(), "lift".into()),
        ],
        "exactly once each, in order"
    );
    let e = &events[1];
    assert_eq!(e.entity, "user_access");
    assert_eq!(e.source.service, "access-rule");
    let after = e.after.as_ref().unwrap();
    assert_eq!(after["restrictions"].as_array().unwrap().len(), 2);
    assert_eq!(
        e.before.as_ref().unwrap()["restrictions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
