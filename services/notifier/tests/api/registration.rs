//! End to end: a registration at the authenticator reaches the superuser's
//! mailbox through `notification.v1` and the notifier.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::start;

#[tokio::test]
async fn a_registration_is_mailed_to_the_superuser() {
    // The notifier first: it reads what is published after its start.
    let h = start().await;
    let db = testkit::authenticator::database();
    let auth =
        testkit::authenticator::spawn(testkit::authenticator::Options::new(h.brokers.clone(), &db))
            .await;
    let n = uuid::Uuid::new_v4().simple().to_string();
    let username = format!("user.{}", &n[..12]);
    let r = testkit::http_client()
        .post(format!("{}/v1/user", auth.address))
        .json(&json!({
            "username": username,
            "password": "Sturdy-Passw0rd!",
            "email": format!("{}@example.com", &n[..12]),
            "firstname": "Ada",
            "lastname": "Lovelace",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let subject = format!("New account: {username}");
    let mail = h
        .sink
        .wait_for(30, "the registration mail", |m| {
            m.subject.as_deref() == Some(subject.as_str())
        })
        .await;
    assert_eq!(mail.recipients, ["root@example.com"]);
    assert!(
        mail.body().contains(&format!("Username: {username}")),
        "{}",
        mail.data
    );
    let id = mail.message_id.clone().unwrap_or_default();
    assert!(id.starts_with('<') && id.ends_with("@localhost>"), "{id}");
    // The bootstrap superuser's own creation told no one.
    assert!(!h
        .sink
        .messages()
        .iter()
        .any(|m| m.subject.as_deref() == Some("New account: root")),);
    h.app.stop().await;
}
