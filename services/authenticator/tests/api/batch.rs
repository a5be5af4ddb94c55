use platform::events::Op;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

async fn batch(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.admin(Method::POST, "/v1/users/batch", token, Some(body))
        .await
}

fn account(username: &str, email: &str) -> Value {
    json!({"username": username, "email": email, "firstname": "Bat", "lastname": "Ch"})
}

#[tokio::test]
async fn a_batch_answers_each_account_as_its_own_creation_would_and_stores_only_the_good_ones() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let (taken, _) = app.registered_user().await;
    let hash = bcrypt::hash("Imported-Passw0rd!", 4).unwrap();
    let mut imported = account("batch.imported", "imported@batch.example");
    imported["password_hash"] = json!(hash);
    let mut chosen = account("batch.chosen", "chosen@batch.example");
    chosen["password"] = json!("Chosen-Passw0rd!");
    let mut weak = account("batch.weak", "weak@batch.example");
    weak["password"] = json!("Password1");
    let mut bad_hash = account("batch.badhash", "badhash@batch.example");
    bad_hash["password_hash"] = json!("md5:abc");
    let mut extra = account("batch.extra", "extra@batch.example");
    extra["role"] = json!("admin");
    let taken_name = taken["username"].as_str().unwrap();
    let taken_email = taken["email"].as_str().unwrap().to_uppercase();
    let body = json!([
        imported,
        account("batch.invited", "invited@batch.example"),
        account(taken_name, "other@batch.example"),
        account("batch.sameemail", &taken_email),
        // An earlier account of this batch has the email.
        account("batch.again", "IMPORTED@batch.example"),
        account("Not A Name", "name@batch.example"),
        bad_hash,
        extra,
        42,
        chosen,
        weak,
        // An earlier account of this batch has the username.
        account("batch.invited", "invited.again@batch.example"),
    ]);

    let r = batch(&app, &root, body.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let results = v["results"].as_array().unwrap();
    let seen: Vec<(u64, &str)> = results
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (201, "created"),
            (201, "created"),
            (409, "conflict"),
            (409, "conflict"),
            (409, "conflict"),
            (400, "invalid"),
            (400, "invalid"),
            (400, "invalid"),
            (400, "invalid"),
            (201, "created"),
            (400, "invalid"),
            (409, "conflict"),
        ],
        "{v}"
    );
    // Refusals carry the problem the single endpoint answers.
    let field = |i: usize| results[i]["problem"]["field"].as_str().unwrap_or_default();
    assert_eq!(
        [
            field(2),
            field(3),
            field(4),
            field(5),
            field(6),
            field(10),
            field(11)
        ],
        [
            "username",
            "email",
            "email",
            "username",
            "password_hash",
            "password",
            "username"
        ]
    );
    assert_eq!(results[10]["problem"]["rule"], "common_password");
    for r in results.iter().filter(|r| r["status"] != 201) {
        assert_eq!(r["problem"]["status"], r["status"], "{r}");
        assert!(r["problem"]["detail"].is_string(), "{r}");
        assert!(r.get("account").is_none(), "{r}");
    }
    // A created account is answered as GET /v1/users/{id} shows it.
    for i in [0, 1, 9] {
        let id = results[i]["account"]["id"].as_str().unwrap();
        let got: Value = app
            .admin(Method::GET, &format!("/v1/users/{id}"), &root, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(results[i]["account"], got);
    }
    assert_eq!(results[0]["account"]["has_password"], true);
    assert_eq!(results[1]["account"]["has_password"], false);
    assert_eq!(
        app.login("batch.imported", "Imported-Passw0rd!")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("batch.chosen", "Chosen-Passw0rd!").await.status(),
        StatusCode::OK
    );
    // root, the registered user and the three created ones.
    assert_eq!(app.account_count().await, 5);

    // Sent again, every account that was created is now a duplicate.
    let v: Value = batch(&app, &root, body).await.json().await.unwrap();
    let statuses: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [409, 409, 409, 409, 409, 400, 400, 400, 400, 409, 400, 409]
    );
    assert_eq!(app.account_count().await, 5);
}

#[tokio::test]
async fn a_batch_above_the_limit_or_not_an_array_is_refused_whole() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let many: Vec<Value> = (0..501)
        .map(|i| account(&format!("many.{i}"), &format!("many{i}@batch.example")))
        .collect();
    let p = assert_problem(
        batch(&app, &root, json!(many)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(p["limit_accounts"], 500);
    // The body may be larger than other requests', but not without end.
    let mut long = account("long.name", "long@batch.example");
    long["firstname"] = json!("x".repeat(1_100_000));
    let p = assert_problem(
        batch(&app, &root, json!([long])).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(p["limit_bytes"], 1_024_000);
    assert_problem(
        batch(&app, &root, account("one.only", "one@batch.example")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(app.account_count().await, 1);
    // 500 is allowed.
    let r = batch(&app, &root, json!(many[..500])).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == 201));
    assert_eq!(app.account_count().await, 501);
}

#[tokio::test]
async fn a_batch_needs_an_administrator() {
    let app = spawn_app().await;
    let body = json!([account("no.admin", "noadmin@batch.example")]);
    let r = app
        .http
        .post(app.url("/v1/users/batch"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let (user, _) = app.registered_user().await;
    let token = app
        .token(user["username"].as_str().unwrap(), "Sturdy-Passw0rd!")
        .await;
    assert_problem(batch(&app, &token, body).await, StatusCode::FORBIDDEN).await;
    assert_eq!(app.account_count().await, 2);
}

#[tokio::test]
async fn accounts_created_in_a_batch_appear_on_iam_user_v1() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let body = json!([
        account("event.one", "one@events.example"),
        account("event.one", "two@events.example"),
        account("event.two", "two@events.example"),
    ]);
    let v: Value = batch(&app, &root, body).await.json().await.unwrap();
    let ids: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["account"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{v}");
    let events = app.events_for(&ids, 2).await;
    for (id, name) in ids.iter().zip(["event.one", "event.two"]) {
        let e = events.iter().find(|e| e.key == *id).unwrap();
        assert_eq!(
            (e.op, e.version, e.entity.as_str()),
            (Op::Create, 1, "user")
        );
        assert!(e.before.is_none());
        let after = e.after.as_ref().unwrap();
        assert_eq!(after["username"], name);
        assert_eq!(after["id"], *id);
        assert!(after.get("password_hash").is_none());
    }
}
