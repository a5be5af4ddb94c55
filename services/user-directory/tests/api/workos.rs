use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const WORKOS_ORG: &str = "org_01HZTESTACME";

#[tokio::test]
async fn with_workos_a_user_and_its_membership_are_created_there() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let email = format!("ada@{}.example", org.name);
    let r = app.create_user(&org, &email, "member").await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let user: Value = r.json().await.unwrap();
    let reference = user["reference_id"].as_str().unwrap();
    assert!(reference.starts_with("user_"));
    let m = app.fake().memberships();
    let m = m.iter().find(|m| m["user_id"] == reference).unwrap();
    assert_eq!(m["organization_id"], WORKOS_ORG);
    assert_eq!(m["role"]["slug"], "member");
    // Reading a user never calls the provider (the Events API reader
    // polls on its own schedule: not counted).
    let user_calls = || {
        app.fake()
            .state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| *c != "events")
            .count()
    };
    let before = user_calls();
    let id = user["id"].as_str().unwrap();
    let r = app
        .call(
            Method::GET,
            &format!("/v1/users/{id}"),
            Some(&org.token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(user_calls(), before);
}

#[tokio::test]
async fn with_workos_an_import_creates_each_user_and_membership_there() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let d = format!("{}.example", org.name);
    // Made in the WorkOS dashboard: not the directory's to take.
    app.fake().add_user(&format!("taken@{d}"));
    let rows: Vec<Value> = ["ada", "alan", "taken"]
        .iter()
        .map(|n| {
            json!({"email": format!("{n}@{d}"), "first_name": n, "last_name": "L",
                        "organization": org.name, "role": "member"})
        })
        .collect();
    let r = app
        .import(&org, "application/json", json!(rows).to_string())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(outcomes(&v), ["created", "created", "failed"], "{v}");
    for row in &v["rows"].as_array().unwrap()[..2] {
        let user: Value = app
            .call(
                Method::GET,
                &format!("/v1/users/{}", row["id"].as_str().unwrap()),
                Some(&org.token),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let reference = user["reference_id"].as_str().unwrap();
        let memberships = app.fake().memberships();
        let m = memberships
            .iter()
            .find(|m| m["user_id"] == reference)
            .unwrap_or_else(|| panic!("no membership for {user}"));
        assert_eq!(m["organization_id"], WORKOS_ORG);
    }
    // The dashboard's account is left as it was, with no membership.
    let taken = app
        .fake()
        .users()
        .into_iter()
        .find(|u| u["email"] == format!("taken@{d}"))
        .unwrap();
    assert!(!app
        .fake()
        .memberships()
        .iter()
        .any(|m| m["user_id"] == taken["id"]));
    assert_eq!(app.users(&org, "").await["total"], 2);
}

#[tokio::test]
async fn a_provider_failure_at_the_second_step_leaves_no_orphan() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let users_before = app.fake().users().len(); // the admin
    app.fake().fail("create_membership", true);
    let email = format!("ada@{}.example", org.name);
    let r = app.create_user(&org, &email, "member").await;
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    // Neither side keeps the user: the account made at step one is deleted.
    eventually(20, "the compensation at WorkOS", || async {
        (app.fake().users().len() == users_before).then_some(())
    })
    .await;
    assert_eq!(app.users(&org, "").await["total"], 0);
    assert_eq!(app.count("users"), 0);
    assert_eq!(app.count("user_creations WHERE state = 'compensated'"), 1);
    // Once WorkOS is well again, the same creation works.
    app.fake().fail("create_membership", false);
    let r = app.create_user(&org, &email, "member").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.fake().users().len(), users_before + 1);
}

#[tokio::test]
async fn a_creation_interrupted_between_steps_is_compensated_by_the_reconciler() {
    let app = spawn_with_workos(Tweaks {
        tweak: Box::new(|o| o.saga_lease = std::time::Duration::from_secs(1)),
        ..Tweaks::default()
    })
    .await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    // A crash right after step one: the account exists at WorkOS, the
    // creation is recorded, nothing else happened.
    let orphan = app.fake().add_user("crashed@example.com");
    let reference = orphan["id"].as_str().unwrap();
    app.sql(&format!(
        "INSERT INTO user_creations (id, email, provider_login, organization_id, role, state, reference_id, updated_at) \
         VALUES (gen_random_uuid(), 'crashed@example.com', 'crashed@example.com', '{}', 'member', 'user_created', '{reference}', now() - interval '1 minute')",
        org.id
    ));
    // A crash before step one's answer was recorded: found by email.
    let lost = app.fake().add_user("lost@example.com");
    app.sql(&format!(
        "INSERT INTO user_creations (id, email, provider_login, organization_id, role, state, updated_at) \
         VALUES (gen_random_uuid(), 'lost@example.com', 'lost@example.com', '{}', 'member', 'pending', now() - interval '1 minute')",
        org.id
    ));
    eventually(20, "both orphans removed", || async {
        let ids: Vec<String> = app
            .fake()
            .users()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect();
        (!ids
            .iter()
            .any(|i| i == reference || i == lost["id"].as_str().unwrap()))
        .then_some(())
    })
    .await;
    assert_eq!(app.count("user_creations WHERE state = 'compensated'"), 2);
}

#[tokio::test]
async fn admin_login_and_password_change_go_through_workos() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(None).await;
    assert!(app.fake().users().iter().any(|u| u["email"] == org.email));
    let r = app
        .call(
            Method::PUT,
            "/org/update",
            Some(&org.token),
            Some(json!({"organization_name": org.name, "password": "Changed-Passw0rd!"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(
        app.login(&org.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.token(&org.email, "Changed-Passw0rd!").await;
}

#[tokio::test]
async fn the_events_api_closes_a_gap_webhooks_left() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let r = app
        .create_user(&org, &format!("gap@{}.example", org.name), "member")
        .await;
    let user: Value = r.json().await.unwrap();
    let id = user["id"].as_str().unwrap();
    let later = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    // A user made in the dashboard, and a change of ours, whose webhooks never came.
    let outsider = app.fake().add_user(&format!("dash@{}.example", org.name));
    app.fake().push_event("user.created", outsider.clone());
    app.fake().push_event(
        "user.updated",
        json!({"id": user["reference_id"], "email": user["email"],
        "first_name": "Changed", "last_name": "InDashboard", "updated_at": later}),
    );
    eventually(20, "the Events API read", || async {
        let v: Value = app
            .call(
                Method::GET,
                &format!("/v1/users/{id}"),
                Some(&org.token),
                None,
            )
            .await
            .json()
            .await
            .ok()?;
        (v["first_name"] == "Changed").then_some(())
    })
    .await;
    eventually(20, "the dashboard's user in the directory", || async {
        (app.count(&format!(
            "users WHERE reference_id = '{}'",
            outsider["id"].as_str().unwrap()
        )) == 1)
            .then_some(())
    })
    .await;
    // The cursor is kept: the same events are not read twice.
    assert_eq!(app.count("provider_events WHERE source = 'events_api'"), 2);
    assert_eq!(app.count("sync_cursors"), 1);
}
