use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn an_import_with_good_duplicate_and_bad_rows_reports_each_and_runs_twice_safely() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let other = unique("other");
    app.add_config_org(&other, None);
    let d = format!("{}.example", org.name);
    let hash = bcrypt::hash("Imported-Passw0rd!", 4).unwrap();
    let csv = format!(
        "email,first_name,last_name,organization,role,password_hash,password_hash_type\n\
         grace@{d},Grace,Hopper,{o},member,{hash},bcrypt\n\
         alan@{d},Alan,Turing,{o},viewer,,\n\
         GRACE@{d},Grace,Again,{o},member,,\n\
         not-an-email,Bad,Email,{o},member,,\n\
         role@{d},Bad,Role,{o},wizard,,\n\
         theirs@{d},Other,Org,{other},member,,\n\
         hash@{d},Bad,Hash,{o},member,md5:abc,md5\n",
        o = org.name
    );
    let r = app.import(&org, "text/csv", csv.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        outcomes(&v),
        ["created", "created", "exists", "failed", "failed", "failed", "failed"],
        "{v}"
    );
    assert_eq!(
        (
            v["created"].as_i64(),
            v["exists"].as_i64(),
            v["failed"].as_i64()
        ),
        (Some(2), Some(1), Some(4))
    );
    for row in &v["rows"].as_array().unwrap()[3..] {
        assert!(
            row["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{row}"
        );
    }
    // The imported password works at the authenticator, by the derived username.
    let username = user_directory::domain::Email::parse(&format!("grace@{d}"))
        .unwrap()
        .derived_username();
    session(
        &app.http,
        app.auth.as_ref().unwrap(),
        &username,
        "Imported-Passw0rd!",
    )
    .await;
    // Twice: nothing new.
    let v: Value = app
        .import(&org, "text/csv", csv)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["created"].as_i64(),
            v["exists"].as_i64(),
            v["failed"].as_i64()
        ),
        (Some(0), Some(3), Some(4)),
        "{v}"
    );
    assert_eq!(app.users(&org, "").await["total"], 2);
    // JSON works too.
    let body = json!([{"email": format!("json@{d}"), "first_name": "J", "last_name": "S", "organization": org.name, "role": "member"},
                      {"email": format!("json@{d}"), "first_name": "J", "last_name": "S", "organization": org.name, "role": "member", "extra": 1}]);
    let v: Value = app
        .import(&org, "application/json", body.to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["rows"][0]["outcome"], "created");
    assert_eq!(v["rows"][1]["outcome"], "failed");
}

#[tokio::test]
async fn a_large_file_runs_as_a_job_with_progress() {
    let app = spawn_with_authenticator(Tweaks {
        tweak: Box::new(|o| o.import_sync_rows = 5),
        ..Tweaks::default()
    })
    .await;
    let org = app.org().await;
    let rows: Vec<Value> = (0..30)
        .map(|i| json!({"email": format!("u{i}@{}.example", org.name), "first_name": "U", "last_name": format!("{i}"),
                        "organization": org.name, "role": "member"}))
        .collect();
    let r = app
        .import(
            &org,
            "application/json",
            serde_json::to_string(&rows).unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let job = eventually(60, "the import job to finish", || async {
        let v: Value = app
            .http
            .get(app.url(&location))
            .bearer_auth(&org.token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["status"] == "finished").then_some(v)
    })
    .await;
    assert_eq!(job["total"], 30);
    assert_eq!(job["processed"], 30);
    assert_eq!(job["created"], 30);
    assert_eq!(job["rows"].as_array().unwrap().len(), 30);
    // Another organization cannot follow it.
    let other = app.org().await;
    let r = app
        .http
        .get(app.url(&location))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn limits_on_size_and_rows_answer_413_naming_the_limit() {
    let app = spawn_with_authenticator(Tweaks {
        tweak: Box::new(|o| {
            o.import_max_rows = 2;
            o.import_max_bytes = 400;
        }),
        ..Tweaks::default()
    })
    .await;
    let org = app.org().await;
    let row = format!("a@x.example,A,B,{},member\n", org.name);
    let csv = format!(
        "email,first_name,last_name,organization,role\n{}",
        row.repeat(3)
    );
    let p = assert_problem(
        app.import(&org, "text/csv", csv).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(p["limit_rows"], 2);
    let csv = format!(
        "email,first_name,last_name,organization,role\n{}",
        "x".repeat(500)
    );
    let p = assert_problem(
        app.import(&org, "text/csv", csv).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(p["limit_bytes"], 400);
    assert_problem(
        app.import(&org, "text/plain", "hello".into()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert_problem(
        app.import(&org, "text/csv", "name,age\nx,1\n".into()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(app.count("users"), 0);
}

#[tokio::test]
async fn concurrent_imports_of_one_file_make_each_account_once_here_and_at_the_authenticator() {
    let app = spawn_with_authenticator(Tweaks {
        tweak: Box::new(|o| o.import_sync_rows = 1000),
        ..Tweaks::default()
    })
    .await;
    let org = app.org().await;
    let d = format!("{}.example", org.name);
    let hash = bcrypt::hash("Imported-Passw0rd!", 4).unwrap();
    // 250 people, then ten of them again in capitals: more rows than one
    // batch, with duplicates across batches.
    let mut csv = String::from(
        "email,first_name,last_name,organization,role,password_hash,password_hash_type\n",
    );
    for i in 0..250 {
        csv.push_str(&format!(
            "p{i}@{d},P,{i},{o},member,{hash},bcrypt\n",
            o = org.name
        ));
    }
    for i in 0..10 {
        csv.push_str(&format!(
            "P{}@{},P,{i},{o},member,,\n",
            i * 25,
            d.to_uppercase(),
            o = org.name
        ));
    }
    // The same file twice at once.
    let (a, b) = tokio::join!(
        app.import(&org, "text/csv", csv.clone()),
        app.import(&org, "text/csv", csv.clone())
    );
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    let created = |v: &Value| -> Vec<String> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["outcome"] == "created")
            .map(|r| r["email"].as_str().unwrap().to_lowercase())
            .collect()
    };
    let mut both = created(&a);
    both.extend(created(&b));
    both.sort();
    let mut distinct = both.clone();
    distinct.dedup();
    assert_eq!(both, distinct, "an email was created twice: {a} {b}");
    assert_eq!(distinct.len(), 250, "{a} {b}");
    assert_eq!(a["rows"].as_array().unwrap().len(), 260);
    assert_eq!(b["rows"].as_array().unwrap().len(), 260);
    // Whatever one run did not create, the other did or reports why.
    for row in a["rows"].as_array().unwrap() {
        if row["outcome"] == "failed" {
            assert!(
                row["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{row}"
            );
        }
    }
    // Exactly one account per person in the directory ...
    assert_eq!(app.count("users"), both.len() as i64);
    assert_eq!(
        app.count(
            "user_creations WHERE state IN ('pending', 'user_created', 'membership_created')"
        ),
        0
    );
    // ... and at the authenticator (the test's accounts use its domain).
    let mut emails: Vec<String> = Vec::new();
    for offset in (0..).step_by(200) {
        let page = app
            .authenticator_get(&format!("/v1/users?limit=200&offset={offset}"))
            .await;
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        emails.extend(
            items
                .iter()
                .map(|a| a["email"].as_str().unwrap())
                .filter(|e| e.ends_with(&format!("@{d}")) && !e.starts_with("admin@"))
                .map(str::to_lowercase),
        );
    }
    emails.sort();
    assert_eq!(emails, distinct);
    // Once more, after both: every row is there already, nothing is made.
    let v: Value = app
        .import(&org, "text/csv", csv)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["created"].as_i64(),
            v["exists"].as_i64(),
            v["failed"].as_i64()
        ),
        (Some(0), Some(260), Some(0)),
        "{v}"
    );
    assert_eq!(app.users(&org, "limit=1").await["total"], 250);
    // An imported password works at the authenticator.
    let username = user_directory::domain::Email::parse(&format!("p7@{d}"))
        .unwrap()
        .derived_username();
    session(
        &app.http,
        app.auth.as_ref().unwrap(),
        &username,
        "Imported-Passw0rd!",
    )
    .await;
}
