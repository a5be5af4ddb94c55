//! Members changed and removed through the API (`PATCH /v1/users/{id}`,
//! `PUT /v1/users/{id}/role`, `DELETE /v1/users/{id}`), and environment
//! roles.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const WORKOS_ORG: &str = "org_01HZTESTCHANGES";
const IMPORTED_PASSWORD: &str = "Imported-Passw0rd!";

/// Adds environment roles to the test's file (top-level keys go before
/// the organizations' tables).
fn with_environment_roles(app: &TestApp) {
    let text = std::fs::read_to_string(&app.config.path).unwrap();
    let (head, tail) = text.split_once('\n').unwrap();
    let edited = format!(
        "{head}\nenvironment_roles = [\"member\", \"staff\"]\ndefault_environment_role = \"member\"\n{tail}"
    );
    let tmp = app.config.path.with_extension("env.tmp");
    std::fs::write(&tmp, edited).unwrap();
    let f = std::fs::File::options().write(true).open(&tmp).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(7200))
        .unwrap();
    std::fs::rename(&tmp, &app.config.path).unwrap();
}

fn short_lease() -> Tweaks {
    Tweaks {
        tweak: Box::new(|o| o.saga_lease = Duration::from_secs(1)),
        ..Tweaks::default()
    }
}

async fn get_user(app: &TestApp, org: &Org, id: &str) -> reqwest::Response {
    app.call(
        Method::GET,
        &format!("/v1/users/{id}"),
        Some(&org.token),
        None,
    )
    .await
}

async fn user_json(app: &TestApp, org: &Org, id: &str) -> Value {
    let r = get_user(app, org, id).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn patch(app: &TestApp, org: &Org, id: &str, body: Value) -> reqwest::Response {
    app.call(
        Method::PATCH,
        &format!("/v1/users/{id}"),
        Some(&org.token),
        Some(body),
    )
    .await
}

async fn put_role(app: &TestApp, org: &Org, id: &str, role: &str) -> reqwest::Response {
    app.call(
        Method::PUT,
        &format!("/v1/users/{id}/role"),
        Some(&org.token),
        Some(json!({ "role": role })),
    )
    .await
}

async fn delete(app: &TestApp, org: &Org, id: &str) -> reqwest::Response {
    app.call(
        Method::DELETE,
        &format!("/v1/users/{id}"),
        Some(&org.token),
        None,
    )
    .await
}

async fn created(app: &TestApp, org: &Org, email: &str, role: &str) -> Value {
    let r = app.create_user(org, email, role).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    r.json().await.unwrap()
}

fn id_of(user: &Value) -> String {
    user["id"].as_str().unwrap().to_owned()
}

/// A member imported with a password (so that they can sign in at the
/// authenticator); their id and username there.
async fn member_with_password(app: &TestApp, org: &Org, email: &str) -> (String, String) {
    let hash = bcrypt::hash(IMPORTED_PASSWORD, 4).unwrap();
    let csv = format!(
        "email,first_name,last_name,organization,role,password_hash,password_hash_type\n\
         {email},Grace,Hopper,{o},member,{hash},bcrypt\n",
        o = org.name
    );
    let r = app.import(org, "text/csv", csv).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(outcomes(&v), ["created"], "{v}");
    let username = user_directory::domain::Email::parse(email)
        .unwrap()
        .derived_username();
    (v["rows"][0]["id"].as_str().unwrap().to_owned(), username)
}

async fn authenticator_login(app: &TestApp, username: &str) -> StatusCode {
    app.http
        .post(format!("{}/v1/login", app.auth.as_ref().unwrap()))
        .json(&json!({"username": username, "password": IMPORTED_PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
}

// ------------------------------------------------------------ with the authenticator

#[tokio::test]
async fn an_admin_changes_a_members_email_names_and_environment_role_at_the_authenticator_and_here()
{
    let app = spawn_with_authenticator(Tweaks::default()).await;
    with_environment_roles(&app);
    let org = app.org().await;
    let user = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    assert_eq!(user["environment_role"], "member", "the file's default");
    let (id, reference) = (id_of(&user), user["reference_id"].as_str().unwrap());
    let new_email = format!("Augusta@{}.example", org.name);
    let r = patch(
        &app,
        &org,
        &id,
        json!({"email": new_email, "first_name": "Augusta", "last_name": "King",
               "environment_role": "STAFF"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (&v["email"], &v["first_name"], &v["last_name"]),
        (&json!(new_email), &json!("Augusta"), &json!("King"))
    );
    assert_eq!(v["environment_role"], "staff", "as the file writes it");
    assert_eq!(v["role"], "member", "the organization role is another");
    // What a reader sees now.
    let read = user_json(&app, &org, &id).await;
    assert_eq!(read["email"], new_email);
    assert_eq!(read["environment_role"], "staff");
    // The authenticator has the new email and names.
    let account = app
        .authenticator_get(&format!("/v1/users/{reference}"))
        .await;
    assert_eq!(account["email"], new_email);
    assert_eq!(account["firstname"], "Augusta");
    assert_eq!(account["lastname"], "King");
    // The change is published on the membership's topic.
    let key = user["membership_id"].as_str().unwrap();
    let events = app.events_for("directory.membership.v1", &[key], 2).await;
    let last = events.last().unwrap();
    assert_eq!(last.version, 2, "{events:?}");
    let after = last.after.clone().unwrap();
    assert_eq!(after["email"], new_email);
    assert_eq!(after["first_name"], "Augusta");
    assert_eq!(after["environment_role"], "staff");
    assert_eq!(last.before.as_ref().unwrap()["email"], user["email"]);
    // The new email is taken, regardless of case.
    assert_problem(
        app.create_user(&org, &new_email.to_lowercase(), "viewer")
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    // The same values again: nothing to do, nothing published.
    let r = patch(&app, &org, &id, json!({"first_name": "Augusta"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.count("user_changes"), 1);
}

#[tokio::test]
async fn a_role_change_is_kept_checked_against_the_file_and_published() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let user = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    let id = id_of(&user);
    let r = put_role(&app, &org, &id, "Viewer").await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "viewer");
    assert_eq!(user_json(&app, &org, &id).await["role"], "viewer");
    assert_eq!(app.users(&org, "role=viewer").await["total"], 1);
    assert_eq!(app.users(&org, "role=member").await["total"], 0);
    let key = user["membership_id"].as_str().unwrap();
    let events = app.events_for("directory.membership.v1", &[key], 2).await;
    assert_eq!(
        events.last().unwrap().after.as_ref().unwrap()["role"],
        "viewer"
    );
    // A role the file does not name: 400, and nothing changes.
    let p = assert_problem(
        put_role(&app, &org, &id, "wizard").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "role");
    assert_eq!(user_json(&app, &org, &id).await["role"], "viewer");
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/users/{id}/role"),
            Some(&org.token),
            Some(json!({"role": "member", "extra": 1})),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(user_json(&app, &org, &id).await["role"], "viewer");
}

#[tokio::test]
async fn a_taken_email_is_refused_regardless_of_case_and_changes_nothing() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let ada = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    let bob = created(&app, &org, &format!("bob@{}.example", org.name), "member").await;
    let id = id_of(&ada);
    let upper = bob["email"].as_str().unwrap().to_uppercase();
    let p = assert_problem(
        patch(
            &app,
            &org,
            &id,
            json!({"email": upper, "first_name": "Changed"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["field"], "email");
    // An email a creation is giving right now is taken too.
    let in_flight = format!("coming@{}.example", org.name);
    app.sql(&format!(
        "INSERT INTO user_creations (id, email, provider_login, organization_id, role, state) \
         VALUES (gen_random_uuid(), '{in_flight}', 'coming', '{}', 'member', 'pending')",
        org.id
    ));
    assert_problem(
        patch(&app, &org, &id, json!({"email": in_flight.to_uppercase()})).await,
        StatusCode::CONFLICT,
    )
    .await;
    // Nothing changed, here or at the authenticator.
    let read = user_json(&app, &org, &id).await;
    assert_eq!(
        (&read["email"], &read["first_name"]),
        (&ada["email"], &ada["first_name"])
    );
    let account = app
        .authenticator_get(&format!(
            "/v1/users/{}",
            ada["reference_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(account["email"], ada["email"]);
    assert_eq!(account["firstname"], "Ada");
    assert_eq!(app.count("user_changes"), 0);
    // A creation may not take an email a change is giving.
    let giving = format!("given@{}.example", org.name);
    app.sql(&format!(
        "INSERT INTO user_changes (id, organization_id, user_id, membership_id, kind, state, reference_id, email, previous) \
         VALUES (gen_random_uuid(), '{}', '{}', '{}', 'update', 'pending', '{}', '{giving}', '{{}}')",
        org.id,
        bob["id"].as_str().unwrap(),
        bob["membership_id"].as_str().unwrap(),
        bob["reference_id"].as_str().unwrap(),
    ));
    assert_problem(
        app.create_user(&org, &giving.to_uppercase(), "member")
            .await,
        StatusCode::CONFLICT,
    )
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_as_a_problem_and_changes_nothing() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let ada = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    let id = id_of(&ada);
    for (body, field) in [
        (json!({}), None),
        (json!({"email": "not-an-email"}), Some("email")),
        (json!({"first_name": ""}), Some("first_name")),
        (json!({"first_name": "Ok", "role": "admin"}), None),
        (
            json!({"environment_role": "staff"}),
            Some("environment_role"),
        ),
        (json!({"email": 7}), None),
    ] {
        let p = assert_problem(
            patch(&app, &org, &id, body.clone()).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        if let Some(f) = field {
            assert_eq!(p["field"], f, "{body}");
        }
    }
    let read = user_json(&app, &org, &id).await;
    assert_eq!(read["email"], ada["email"]);
    assert_eq!(read["first_name"], "Ada");
    assert_eq!(read["environment_role"], "member");
    assert_eq!(app.count("user_changes"), 0);
}

#[tokio::test]
async fn another_organizations_admin_can_neither_change_nor_remove_its_members() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let first = app.org().await;
    let second = app.org().await;
    let ada = created(
        &app,
        &first,
        &format!("ada@{}.example", first.name),
        "member",
    )
    .await;
    let id = id_of(&ada);
    let stranger = uuid::Uuid::new_v4().to_string();
    for target in [&id, &stranger] {
        let p = assert_problem(
            patch(&app, &second, target, json!({"first_name": "Mallory"})).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert!(!p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&first.name));
        assert_problem(
            put_role(&app, &second, target, "admin").await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_problem(delete(&app, &second, target).await, StatusCode::NOT_FOUND).await;
    }
    // The member is as they were, here and at the authenticator.
    let read = user_json(&app, &first, &id).await;
    assert_eq!(
        (&read["first_name"], &read["role"]),
        (&json!("Ada"), &json!("member"))
    );
    let account = app
        .authenticator_get(&format!(
            "/v1/users/{}",
            ada["reference_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(account["is_active"], true);
    assert_eq!(account["firstname"], "Ada");
    assert_eq!(app.count("user_changes"), 0);
}

#[tokio::test]
async fn a_removed_member_cannot_sign_in_and_the_same_email_is_created_again_with_the_account_taken_back(
) {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let email = format!("grace@{}.example", org.name);
    let (id, username) = member_with_password(&app, &org, &email).await;
    let before = user_json(&app, &org, &id).await;
    let reference = before["reference_id"].as_str().unwrap().to_owned();
    assert_eq!(authenticator_login(&app, &username).await, StatusCode::OK);
    let r = delete(&app, &org, &id).await;
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
    // Gone from the directory, deactivated at the authenticator.
    assert_problem(get_user(&app, &org, &id).await, StatusCode::NOT_FOUND).await;
    assert_eq!(app.users(&org, "").await["total"], 0);
    assert_ne!(authenticator_login(&app, &username).await, StatusCode::OK);
    let account = app
        .authenticator_get(&format!("/v1/users/{reference}"))
        .await;
    assert_eq!(account["is_active"], false);
    let key = before["membership_id"].as_str().unwrap();
    let events = app.events_for("directory.membership.v1", &[key], 2).await;
    let last = events.last().unwrap();
    assert_eq!(last.op, platform::events::Op::Delete, "{events:?}");
    assert!(last.after.is_none());
    // Twice: 404.
    assert_problem(delete(&app, &org, &id).await, StatusCode::NOT_FOUND).await;
    // Created again (another case): the same account, active again.
    let again = created(&app, &org, &email.to_uppercase(), "viewer").await;
    assert_eq!(again["reference_id"], reference.as_str());
    assert_eq!(again["role"], "viewer");
    let account = app
        .authenticator_get(&format!("/v1/users/{reference}"))
        .await;
    assert_eq!(account["is_active"], true);
    assert_eq!(authenticator_login(&app, &username).await, StatusCode::OK);
    let again_id = id_of(&again);
    eventually(30, "the member active again", || async {
        let read = user_json(&app, &org, &again_id).await;
        (read["is_active"] == true && read["membership_status"] == "active").then_some(())
    })
    .await;
    assert_eq!(app.users(&org, "").await["total"], 1);
}

#[tokio::test]
async fn changes_interrupted_after_they_were_recorded_are_completed_by_the_reconciler() {
    let app = spawn_with_authenticator(short_lease()).await;
    let org = app.org().await;
    let email = format!("grace@{}.example", org.name);
    let (grace, username) = member_with_password(&app, &org, &email).await;
    let grace = user_json(&app, &org, &grace).await;
    let ada = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    // A crash after each change was recorded, before its provider call.
    let record = |u: &Value, kind: &str, email: Option<&str>| {
        format!(
            "INSERT INTO user_changes (id, organization_id, user_id, membership_id, kind, state, reference_id, email, previous, updated_at) \
             VALUES (gen_random_uuid(), '{}', '{}', '{}', '{kind}', 'pending', '{}', {}, '{}', now() - interval '1 minute')",
            org.id,
            u["id"].as_str().unwrap(),
            u["membership_id"].as_str().unwrap(),
            u["reference_id"].as_str().unwrap(),
            email.map_or("NULL".to_owned(), |e| format!("'{e}'")),
            json!({"email": u["email"], "first_name": u["first_name"], "last_name": u["last_name"],
                   "environment_role": "member", "role": "member"}),
        )
    };
    app.sql(&record(&grace, "remove", None));
    let moved = format!("moved@{}.example", org.name);
    app.sql(&record(&ada, "update", Some(&moved)));
    eventually(30, "both changes completed", || async {
        (app.count("user_changes WHERE state = 'completed'") == 2).then_some(())
    })
    .await;
    assert_problem(
        get_user(&app, &org, grace["id"].as_str().unwrap()).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_ne!(authenticator_login(&app, &username).await, StatusCode::OK);
    assert_eq!(user_json(&app, &org, &id_of(&ada)).await["email"], moved);
    let account = app
        .authenticator_get(&format!(
            "/v1/users/{}",
            ada["reference_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(account["email"], moved);
}

#[tokio::test]
async fn a_change_the_provider_then_refuses_is_compensated_by_the_reconciler() {
    let app = spawn_with_authenticator(short_lease()).await;
    let org = app.org().await;
    let ada = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    // An account the directory does not know holds the email meanwhile.
    let outsider = format!("outsider@{}.example", org.name);
    let r = app
        .http
        .post(format!("{}/v1/user", app.auth.as_ref().unwrap()))
        .json(
            &json!({"username": unique("outsider"), "password": PASSWORD, "email": outsider,
                      "firstname": "Out", "lastname": "Sider"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    app.sql(&format!(
        "INSERT INTO user_changes (id, organization_id, user_id, membership_id, kind, state, reference_id, email, first_name, previous, updated_at) \
         VALUES (gen_random_uuid(), '{}', '{}', '{}', 'update', 'pending', '{}', '{outsider}', 'Changed', '{}', now() - interval '1 minute')",
        org.id,
        ada["id"].as_str().unwrap(),
        ada["membership_id"].as_str().unwrap(),
        ada["reference_id"].as_str().unwrap(),
        json!({"email": ada["email"], "first_name": "Ada", "last_name": "Lovelace",
               "environment_role": "member", "role": "member"}),
    ));
    eventually(30, "the change compensated", || async {
        (app.count("user_changes WHERE state = 'compensated'") == 1).then_some(())
    })
    .await;
    // Neither side kept any of it.
    let read = user_json(&app, &org, &id_of(&ada)).await;
    assert_eq!(
        (&read["email"], &read["first_name"]),
        (&ada["email"], &json!("Ada"))
    );
    let account = app
        .authenticator_get(&format!(
            "/v1/users/{}",
            ada["reference_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(account["email"], ada["email"]);
    assert_eq!(account["firstname"], "Ada");
}

// ------------------------------------------------------------ with WorkOS

#[tokio::test]
async fn with_workos_changes_go_to_the_user_and_the_membership_there() {
    let app = spawn_with_workos(Tweaks::default()).await;
    with_environment_roles(&app);
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let email = format!("ada@{}.example", org.name);
    let user = created(&app, &org, &email, "member").await;
    let (id, reference) = (
        id_of(&user),
        user["reference_id"].as_str().unwrap().to_owned(),
    );
    let at_workos = |app: &TestApp| {
        app.fake()
            .users()
            .into_iter()
            .find(|u| u["id"] == reference.as_str())
    };
    assert_eq!(
        at_workos(&app).unwrap()["metadata"]["environment_role"],
        "member"
    );
    // Email, names and environment role: the WorkOS user.
    let new_email = format!("augusta@{}.example", org.name);
    let r = patch(
        &app,
        &org,
        &id,
        json!({"email": new_email, "last_name": "King", "environment_role": "staff"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let u = at_workos(&app).unwrap();
    assert_eq!(
        (&u["email"], &u["last_name"]),
        (&json!(new_email), &json!("King"))
    );
    assert_eq!(u["metadata"]["environment_role"], "staff");
    // The organization role: the membership's role_slug.
    let r = put_role(&app, &org, &id, "admin").await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let m = app.fake().memberships();
    let m = m
        .iter()
        .find(|m| m["user_id"] == reference.as_str())
        .unwrap();
    assert_eq!(m["role"]["slug"], "admin");
    let read = user_json(&app, &org, &id).await;
    assert_eq!(
        (&read["email"], &read["role"], &read["environment_role"]),
        (&json!(new_email), &json!("admin"), &json!("staff"))
    );
    // Removal deletes the WorkOS user (and so its membership).
    assert_eq!(
        delete(&app, &org, &id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(at_workos(&app).is_none());
    assert!(!app
        .fake()
        .memberships()
        .iter()
        .any(|m| m["user_id"] == reference.as_str()));
    assert_problem(get_user(&app, &org, &id).await, StatusCode::NOT_FOUND).await;
    // The email may be used again: a new WorkOS account.
    let again = created(&app, &org, &new_email, "member").await;
    assert_ne!(again["reference_id"], reference.as_str());
}

#[tokio::test]
async fn with_workos_a_failure_after_a_change_was_recorded_is_completed_by_the_reconciler() {
    let app = spawn_with_workos(short_lease()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let user = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    let (id, reference) = (
        id_of(&user),
        user["reference_id"].as_str().unwrap().to_owned(),
    );
    let fake = app.fake();
    // WorkOS fails (a 5xx: the outcome is unknown) on each call.
    fake.fail("update_user", true);
    let p = assert_problem(
        patch(&app, &org, &id, json!({"first_name": "Augusta"})).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(
        p["type"].as_str().unwrap().rsplit('/').next(),
        Some("change-unfinished")
    );
    // Half a change is never shown: the directory still has the old name,
    // and another change of the user waits for this one.
    assert_eq!(user_json(&app, &org, &id).await["first_name"], "Ada");
    assert_problem(
        put_role(&app, &org, &id, "viewer").await,
        StatusCode::CONFLICT,
    )
    .await;
    fake.fail("update_user", false);
    eventually(30, "the name change completed", || async {
        (user_json(&app, &org, &id).await["first_name"] == "Augusta").then_some(())
    })
    .await;
    let at_workos = fake
        .users()
        .into_iter()
        .find(|u| u["id"] == reference.as_str())
        .unwrap();
    assert_eq!(at_workos["first_name"], "Augusta");
    // The role, then the removal, the same way.
    fake.fail("update_membership", true);
    assert_problem(
        put_role(&app, &org, &id, "viewer").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(user_json(&app, &org, &id).await["role"], "member");
    fake.fail("update_membership", false);
    eventually(30, "the role change completed", || async {
        (user_json(&app, &org, &id).await["role"] == "viewer").then_some(())
    })
    .await;
    let m = fake.memberships();
    assert_eq!(
        m.iter()
            .find(|m| m["user_id"] == reference.as_str())
            .unwrap()["role"]["slug"],
        "viewer"
    );
    fake.fail("delete_user", true);
    assert_problem(
        delete(&app, &org, &id).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(get_user(&app, &org, &id).await.status(), StatusCode::OK);
    fake.fail("delete_user", false);
    eventually(30, "the removal completed", || async {
        (get_user(&app, &org, &id).await.status() == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(!fake.users().iter().any(|u| u["id"] == reference.as_str()));
    assert_eq!(app.count("user_changes WHERE state = 'completed'"), 3);
    assert_eq!(app.count("user_changes WHERE state <> 'completed'"), 0);
    // Each step was published once the change completed.
    let key = user["membership_id"].as_str().unwrap();
    let events = app.events_for("directory.membership.v1", &[key], 4).await;
    let ops: Vec<_> = events.iter().map(|e| e.op).collect();
    assert_eq!(
        ops,
        [
            platform::events::Op::Create,
            platform::events::Op::Update,
            platform::events::Op::Update,
            platform::events::Op::Delete
        ]
    );
}

#[tokio::test]
async fn with_workos_a_change_whose_email_was_taken_meanwhile_is_undone_at_workos() {
    let app = spawn_with_workos(short_lease()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let ada = created(&app, &org, &format!("ada@{}.example", org.name), "member").await;
    let taken = format!("taken@{}.example", org.name);
    created(&app, &org, &taken, "member").await;
    let reference = ada["reference_id"].as_str().unwrap().to_owned();
    // A crash after WorkOS took the change, before the local write; the
    // email went to another user here meanwhile.
    {
        let mut s = app.fake().state.lock().unwrap();
        let u = s.users.get_mut(&reference).unwrap();
        u["email"] = json!(taken);
        u["first_name"] = json!("Changed");
    }
    app.sql(&format!(
        "INSERT INTO user_changes (id, organization_id, user_id, membership_id, kind, state, reference_id, email, first_name, previous, updated_at) \
         VALUES (gen_random_uuid(), '{}', '{}', '{}', 'update', 'provider_done', '{reference}', '{taken}', 'Changed', '{}', now() - interval '1 minute')",
        org.id,
        ada["id"].as_str().unwrap(),
        ada["membership_id"].as_str().unwrap(),
        json!({"email": ada["email"], "first_name": "Ada", "last_name": "Lovelace",
               "environment_role": "member", "role": "member"}),
    ));
    eventually(30, "the change compensated", || async {
        (app.count("user_changes WHERE state = 'compensated'") == 1).then_some(())
    })
    .await;
    // WorkOS was set back; the directory never took the change.
    let u = app
        .fake()
        .users()
        .into_iter()
        .find(|u| u["id"] == reference.as_str())
        .unwrap();
    assert_eq!(
        (&u["email"], &u["first_name"]),
        (&ada["email"], &json!("Ada"))
    );
    let read = user_json(&app, &org, &id_of(&ada)).await;
    assert_eq!(
        (&read["email"], &read["first_name"]),
        (&ada["email"], &json!("Ada"))
    );
}

#[tokio::test]
async fn imports_take_an_environment_role_or_the_files_default() {
    let app = spawn_with_workos(Tweaks::default()).await;
    with_environment_roles(&app);
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let d = format!("{}.example", org.name);
    let csv = format!(
        "email,first_name,last_name,organization,role,environment_role\n\
         staff@{d},S,T,{o},member,Staff\n\
         plain@{d},P,L,{o},viewer,\n\
         wrong@{d},W,R,{o},member,owner\n",
        o = org.name
    );
    let r = app.import(&org, "text/csv", csv).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(outcomes(&v), ["created", "created", "failed"], "{v}");
    assert!(v["rows"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("environment_role"));
    let mut seen = Vec::new();
    for row in &v["rows"].as_array().unwrap()[..2] {
        let u = user_json(&app, &org, row["id"].as_str().unwrap()).await;
        let at_workos = app
            .fake()
            .users()
            .into_iter()
            .find(|w| w["id"] == u["reference_id"])
            .unwrap();
        assert_eq!(
            at_workos["metadata"]["environment_role"],
            u["environment_role"]
        );
        seen.push(u["environment_role"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["staff", "member"]);
}

#[tokio::test]
async fn a_user_shared_with_another_organization_keeps_their_account_but_not_their_role_here() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let ours = app.org_with_workos(Some(WORKOS_ORG)).await;
    let theirs = app.org_with_workos(Some("org_01HZTESTSHAREDWITH")).await;
    let email = format!("grace@{}.example", ours.name);
    let user = created(&app, &ours, &email, "member").await;
    let (id, reference) = (
        id_of(&user),
        user["reference_id"].as_str().unwrap().to_owned(),
    );
    // WorkOS makes the same user a member of the other organization too.
    app.signed_webhook(&json!({"id": "event_shared_membership",
        "event": "organization_membership.created", "created_at": "2026-03-01T00:00:00.000Z",
        "data": {"object": "organization_membership", "id": "om_01HZSHARED", "user_id": reference,
                 "organization_id": "org_01HZTESTSHAREDWITH", "role": {"slug": "viewer"},
                 "status": "active", "updated_at": "2026-03-01T00:00:00.000Z"}}))
        .await;
    eventually(
        30,
        "the other organization's membership applied",
        || async {
            let v = app.users(&theirs, &format!("email={email}")).await;
            (v["total"] == 1).then_some(())
        },
    )
    .await;

    // Our admin may not change or remove the account the other
    // organization shares, nor learn more than that it is shared.
    let r = patch(&app, &ours, &id, json!({"email": format!("x-{email}")})).await;
    let problem = assert_problem(r, StatusCode::CONFLICT).await;
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("account-shared"));
    let r = delete(&app, &ours, &id).await;
    assert_problem(r, StatusCode::CONFLICT).await;
    // The role here is ours to change.
    let r = put_role(&app, &ours, &id, "admin").await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // The other organization still has the member, unchanged, and so does
    // WorkOS.
    let v = app.users(&theirs, &format!("email={email}")).await;
    assert_eq!(
        (&v["items"][0]["email"], &v["items"][0]["role"]),
        (&json!(email), &json!("viewer"))
    );
    assert!(app
        .fake()
        .users()
        .iter()
        .any(|u| u["id"] == reference.as_str() && u["email"] == email.as_str()));
    assert_eq!(user_json(&app, &ours, &id).await["role"], "admin");
}
