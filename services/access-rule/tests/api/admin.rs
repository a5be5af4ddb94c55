//! The operator API: reasons, lifting by hand, operators by session token
//! (named by account id or the superuser flag, never by username).

use std::sync::Arc;

use platform::jwt::{KeyRing, SessionClaims, SigningKey, ACCESS_TYP, SESSION_TYP};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    assert_problem, eventually, fake_issuer, new_user_id, publish_account, rules_in, spawn_app,
    spawn_app_with,
};

#[tokio::test]
async fn operators_see_the_reasons_and_lift_a_restriction_until_new_evidence() {
    let app = spawn_app().await;
    let mark = app.mark().await;
    let u = new_user_id();
    app.flag(&u).await;
    app.flag(&u).await;
    app.card(&u, "1", "0001", 5000.0).await;
    app.chargeback(&u, 600.0).await;
    let view = app.user(&u).await;
    assert_eq!(view["can_message"], false);
    assert_eq!(view["can_purchase"], false);
    let reasons: Vec<(String, String)> = view["restrictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons[0].0, "scam_flags");
    assert!(reasons[0].1.contains("2 scam flags"), "{}", reasons[0].1);
    assert_eq!(reasons[1].0, "chargeback_ratio");
    assert!(reasons[1].1.contains("600.00") && reasons[1].1.contains("5000.00"));
    assert_eq!(view["cards"][0]["last_four_digits"], "0001");

    let lift_path = format!("/v1/admin/users/{u}/lift");
    let lift = |rule: &str| {
        app.admin(
            Method::POST,
            &lift_path,
            Some(json!({"rule": rule, "note": "false positive, ticket 42"})),
        )
    };
    let r = lift("scam_flags").await;
    assert_eq!(r["lifted"], true);
    assert_eq!(r["user"]["can_message"], true);
    assert!(app.can_message(&u).await);
    assert!(!app.can_purchase(&u).await, "only that rule was lifted");
    assert_eq!(lift("scam_flags").await["lifted"], false, "idempotent");
    let history = &app.user(&u).await["history"];
    assert_eq!(history[0]["action"], "lift");
    assert_eq!(history[0]["actor"], "operator-token");
    assert_eq!(history[0]["reason"], "false positive, ticket 42");

    // New evidence of the rule's kind restricts again.
    let o = app.flag(&u).await;
    assert_eq!(rules_in(&o, "restricted"), ["scam_flags"]);
    assert!(!app.can_message(&u).await);

    let r = app
        .admin_as(
            testkit::access_rule::OPERATOR_TOKEN,
            Method::POST,
            &format!("/v1/admin/users/{}/lift", new_user_id()),
            Some(json!({"rule": "scam_flags"})),
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND).await;

    let events = app.restriction_events(&mark, &[&u], 4).await;
    let last = events[3].after.as_ref().unwrap();
    assert_eq!(last["changes"][0]["action"], "restrict");
    let lifted = events[2].after.as_ref().unwrap();
    assert_eq!(lifted["changes"][0]["cause"], "operator");
}

fn session(ring: &KeyRing, iss: &str, sub: &str, username: &str, exp: i64, typ: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    ring.sign(
        typ,
        &SessionClaims {
            iss: iss.into(),
            sub: sub.into(),
            username: username.into(),
            iat: now,
            exp: now + exp,
            jti: new_user_id(),
            sep: 0,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn operators_are_named_by_account_id_and_a_username_gives_nothing() {
    let ring = Arc::new(KeyRing::new(SigningKey::generate().unwrap().0, vec![]));
    let auth = fake_issuer(ring.clone()).await;
    let ops = new_user_id();
    let app = spawn_app_with(|o| {
        o.authenticator_url = auth.clone();
        o.operator_account_ids = vec![ops.clone()];
    })
    .await;
    let app = &app;
    let get =
        |t: String| async move { app.admin_as(&t, Method::GET, "/v1/admin/rules", None).await };
    // Whatever its username, the listed account is an operator.
    assert_eq!(
        get(session(&ring, &auth, &ops, "ops", 300, SESSION_TYP))
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .admin_as(
            &session(&ring, &auth, &ops, "mallory", 300, SESSION_TYP),
            Method::POST,
            "/v1/admin/rules/scam_flags/reset",
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Anyone may register `admin` or `admin2`: the name gives nothing.
    for name in ["admin", "admin2", "root"] {
        assert_problem(
            get(session(
                &ring,
                &auth,
                &new_user_id(),
                name,
                300,
                SESSION_TYP,
            ))
            .await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    for t in [
        session(&ring, "http://elsewhere", &ops, "ops", 300, SESSION_TYP),
        session(&ring, &auth, &ops, "ops", -600, SESSION_TYP),
        session(&ring, &auth, &ops, "ops", 300, ACCESS_TYP),
    ] {
        assert_problem(get(t).await, StatusCode::UNAUTHORIZED).await;
    }
    let foreign = KeyRing::new(SigningKey::generate().unwrap().0, vec![]);
    let forged = session(&foreign, &auth, &ops, "ops", 300, SESSION_TYP);
    assert_problem(get(forged).await, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_superuser_is_an_operator_until_iam_user_says_otherwise() {
    let ring = Arc::new(KeyRing::new(SigningKey::generate().unwrap().0, vec![]));
    let auth = fake_issuer(ring.clone()).await;
    let app = spawn_app_with(|o| o.authenticator_url = auth.clone()).await;
    let (boss, plain) = (new_user_id(), new_user_id());
    let status = |id: &str| {
        let t = session(&ring, &auth, id, "admin", 300, SESSION_TYP);
        let app = &app;
        async move {
            app.admin_as(&t, Method::GET, "/v1/admin/rules", None)
                .await
                .status()
        }
    };
    publish_account(&app, &boss, 1, true, true).await;
    publish_account(&app, &plain, 1, true, false).await;
    eventually(30, "the superuser to be an operator", || async {
        (status(&boss).await == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(status(&plain).await, StatusCode::FORBIDDEN);
    // No longer a superuser: no longer an operator; an older event resent
    // changes nothing.
    publish_account(&app, &boss, 2, true, false).await;
    publish_account(&app, &boss, 1, true, true).await;
    eventually(30, "the former superuser to be refused", || async {
        (status(&boss).await == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
    // A deactivated superuser is no operator either.
    let other = new_user_id();
    publish_account(&app, &other, 1, true, true).await;
    eventually(30, "another superuser to be an operator", || async {
        (status(&other).await == StatusCode::OK).then_some(())
    })
    .await;
    publish_account(&app, &other, 2, false, true).await;
    eventually(30, "the deactivated superuser to be refused", || async {
        (status(&other).await == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
    assert_eq!(status(&boss).await, StatusCode::FORBIDDEN);
}
