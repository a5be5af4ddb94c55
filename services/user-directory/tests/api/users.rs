use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_user_is_invited_in_the_authenticator_and_read_from_the_directory() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let email = format!("Ada@{}.example", org.name);
    let r = app.create_user(&org, &email, "member").await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["role"], "member");
    assert_eq!(user["organization"], org.name);
    let reference = user["reference_id"].as_str().unwrap().to_owned();
    // The authenticator has the account, as an invitation (no password).
    let account = app
        .authenticator_get(&format!("/v1/users/{reference}"))
        .await;
    assert_eq!(account["email"], email);
    assert_eq!(account["has_password"], false);
    // Reads come from the directory.
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
    assert_eq!(r.json::<Value>().await.unwrap()["email"], email);
    // The email is unique regardless of case.
    let p = assert_problem(
        app.create_user(&org, &email.to_uppercase(), "viewer").await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["field"], "email");
    // Filters and pages.
    app.create_user(&org, &format!("bob@{}.example", org.name), "viewer")
        .await;
    app.create_user(&org, &format!("cy@{}.example", org.name), "viewer")
        .await;
    let all = app.users(&org, "").await;
    assert_eq!(all["total"], 3);
    let viewers = app.users(&org, "role=viewer&limit=1").await;
    assert_eq!(viewers["total"], 2);
    assert_eq!(viewers["items"].as_array().unwrap().len(), 1);
    let by_email = app
        .users(
            &org,
            &format!("email=ADA@{}.EXAMPLE&organization={}", org.name, org.name),
        )
        .await;
    assert_eq!(by_email["items"][0]["id"], user["id"]);
    // The membership was published.
    let key = user["membership_id"].as_str().unwrap();
    let m = app.events_for("directory.membership.v1", &[key], 1).await;
    assert_eq!(m[0].after.as_ref().unwrap()["role"], "member");
    assert_eq!(m[0].after.as_ref().unwrap()["organization"], org.name);
}

#[tokio::test]
async fn roles_and_organizations_come_from_the_config_file_reloaded_without_a_restart() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let email = format!("x@{}.example", org.name);
    let p = assert_problem(
        app.create_user(&org, &email, "auditor").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "role");
    let text = std::fs::read_to_string(&app.config.path).unwrap();
    let edited = text.replace(
        "roles = [\"admin\",\"member\",\"viewer\"]",
        "roles = [\"admin\",\"member\",\"viewer\",\"auditor\"]",
    );
    assert_ne!(text, edited);
    std::fs::write(&app.config.path, edited).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(&app.config.path)
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .unwrap();
    let r = app.create_user(&org, &email, "auditor").await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    // An organization absent from the file is refused.
    let r = app.call(Method::POST, "/v1/users", Some(&org.token),
        Some(json!({"email": "y@example.com", "first_name": "Y", "last_name": "Z", "organization": "nowhere", "role": "member"}))).await;
    let p = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["field"], "organization");
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn another_organizations_admin_sees_and_adds_none_of_its_users() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let first = app.org().await;
    let second = app.org().await;
    let r = app
        .create_user(&first, &format!("u@{}.example", first.name), "member")
        .await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_problem(
        app.call(
            Method::GET,
            &format!("/v1/users/{id}"),
            Some(&second.token),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/users?organization={}", first.name),
            Some(&second.token),
            None,
        )
        .await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
    assert_eq!(app.users(&second, "").await["total"], 0);
    // Nor may it add users to the first.
    let r = app.call(Method::POST, "/v1/users", Some(&second.token),
        Some(json!({"email": "z@example.com", "first_name": "Z", "last_name": "Z", "organization": first.name, "role": "member"}))).await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn authenticator_changes_arrive_through_iam_user_v1_and_memberships_are_published() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let r = app
        .create_user(&org, &format!("old@{}.example", org.name), "member")
        .await;
    let user: Value = r.json().await.unwrap();
    let (id, reference) = (
        user["id"].as_str().unwrap(),
        user["reference_id"].as_str().unwrap(),
    );
    let root = app.root().await;
    let auth = app.auth.clone().unwrap();
    let new_email = format!("new@{}.example", org.name);
    let r = app
        .http
        .patch(format!("{auth}/v1/users/{reference}"))
        .bearer_auth(&root)
        .json(&json!({"email": new_email, "firstname": "Augusta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .http
        .post(format!("{auth}/v1/users/{reference}/deactivate"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    eventually(
        30,
        "the authenticator's changes in the directory",
        || async {
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
            (v["email"] == new_email && v["first_name"] == "Augusta" && v["is_active"] == false)
                .then_some(())
        },
    )
    .await;
    let key = user["membership_id"].as_str().unwrap();
    let events = app.events_for("directory.membership.v1", &[key], 2).await;
    assert!(events.len() >= 2, "{events:?}");
    let last = events.last().unwrap().after.clone().unwrap();
    assert_eq!(last["email"], new_email);
    let versions: Vec<i64> = events.iter().map(|e| e.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
}
