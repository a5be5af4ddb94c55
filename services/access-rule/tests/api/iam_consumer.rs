//! `iam.user.v1`: a deactivated account can neither message nor purchase.

use crate::helpers::{eventually, new_user_id, publish_account, spawn_app, TestApp};

async fn publish(app: &TestApp, id: &str, version: i64, is_active: bool) {
    publish_account(app, id, version, is_active, false).await
}

async fn account_version(app: &TestApp, id: &str) -> Option<i64> {
    let r = app
        .admin_as(
            testkit::access_rule::OPERATOR_TOKEN,
            reqwest::Method::GET,
            &format!("/v1/admin/users/{id}"),
            None,
        )
        .await;
    if r.status() != reqwest::StatusCode::OK {
        return None;
    }
    r.json::<serde_json::Value>().await.unwrap()["account_version"].as_i64()
}

#[tokio::test]
async fn a_deactivated_account_can_neither_message_nor_purchase_until_reactivated() {
    let app = spawn_app().await;
    let id = new_user_id();
    publish(&app, &id, 1, true).await;
    eventually(60, "the account to be known", || async {
        (account_version(&app, &id).await == Some(1)).then_some(())
    })
    .await;
    assert!(app.can_message(&id).await, "an active account may message");
    app.card(&id, "10001", "1111", 100.0).await;
    assert!(app.can_purchase(&id).await);

    publish(&app, &id, 2, false).await;
    eventually(30, "the deactivation", || async {
        (!app.can_message(&id).await).then_some(())
    })
    .await;
    assert!(!app.can_purchase(&id).await);
    let view = app.user(&id).await;
    assert_eq!(view["restrictions"][0]["rule"], "account_inactive");

    // A stale event (a version already applied) changes nothing.
    publish(&app, &id, 1, true).await;
    publish(&app, &id, 3, false).await;
    eventually(30, "version 3", || async {
        (account_version(&app, &id).await == Some(3)).then_some(())
    })
    .await;
    assert!(!app.can_message(&id).await);
    let history = app.user(&id).await["history"].clone();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");

    publish(&app, &id, 4, true).await;
    eventually(30, "the reactivation", || async {
        app.can_message(&id).await.then_some(())
    })
    .await;
    assert!(app.can_purchase(&id).await);

    // Other test apps consume the same topic and publish for this account
    // too, so look at this app's outbox rather than the shared topic.
    let actions: Vec<String> = app
        .outbox_payloads(&id)
        .iter()
        .map(|p| {
            p["after"]["changes"][0]["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(actions, ["restrict", "lift"]);
}
