use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn administration_needs_a_superuser_session() {
    let app = spawn_app().await;
    let (body, account) = app.registered_user().await;
    let id = account["id"].as_str().unwrap();
    let r = app.http.get(app.url("/v1/users")).send().await.unwrap();
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = app
        .admin(Method::GET, "/v1/users", "not-a-token", None)
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let user = app
        .token(body["username"].as_str().unwrap(), "Sturdy-Passw0rd!")
        .await;
    for (m, path) in [
        (Method::GET, "/v1/users".to_string()),
        (Method::GET, format!("/v1/users/{id}")),
        (Method::POST, format!("/v1/users/{id}/deactivate")),
    ] {
        assert_problem(
            app.admin(m, &path, &user, None).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
}

#[tokio::test]
async fn a_superuser_lists_accounts_by_page_and_filter() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(
            app.registered_user().await.1["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.admin(
        Method::POST,
        &format!("/v1/users/{}/deactivate", ids[1]),
        &root,
        None,
    )
    .await;

    let page: Value = app
        .admin(Method::GET, "/v1/users?limit=2&offset=1", &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 4);
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![ids[0].as_str(), ids[1].as_str()],
        "creation order, after the superuser"
    );

    let inactive: Value = app
        .admin(Method::GET, "/v1/users?active=false", &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inactive["total"], 1);
    assert_eq!(inactive["items"][0]["id"], ids[1].as_str());

    let prefixed: Value = app
        .admin(Method::GET, "/v1/users?username_prefix=roo", &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prefixed["total"], 1);
    // LIKE wildcards in the prefix are literal.
    let none: Value = app
        .admin(Method::GET, "/v1/users?username_prefix=%25", &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);

    assert_problem(
        app.admin(Method::GET, "/v1/users?limit=1000", &root, None)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        app.admin(Method::GET, "/v1/users?active=maybe", &root, None)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn a_superuser_changes_a_profile_and_resets_a_password() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let (body, account) = app.registered_user().await;
    let id = account["id"].as_str().unwrap();
    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            &root,
            Some(json!({"firstname": "Grace", "phone": ""})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = app
        .admin(Method::GET, &format!("/v1/users/{id}"), &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["firstname"], "Grace");
    assert_eq!(got["lastname"], "Lovelace");
    assert_eq!(got["phone"], "");

    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            &root,
            Some(json!({"email": "root@EXAMPLE.com"})),
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT).await;
    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            &root,
            Some(json!({"username": "x"})),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;

    let r = app
        .admin(
            Method::POST,
            &format!("/v1/users/{id}/password"),
            &root,
            Some(json!({"password": "New-Sturdy-Passw0rd!"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let name = body["username"].as_str().unwrap();
    assert_eq!(
        app.login(name, "Sturdy-Passw0rd!").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(name, "New-Sturdy-Passw0rd!").await.status(),
        StatusCode::OK
    );

    let missing = uuid::Uuid::new_v4();
    assert_problem(
        app.admin(Method::GET, &format!("/v1/users/{missing}"), &root, None)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.admin(Method::GET, "/v1/users/not-a-uuid", &root, None)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_superuser_cannot_deactivate_themselves() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let me: Value = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/v1/users/{}/deactivate", me["id"].as_str().unwrap()),
            &root,
            None,
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn an_administrator_creates_invited_and_imported_accounts() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let invite = json!({"username": "invited.one", "email": "invited@example.com", "firstname": "In", "lastname": "Vited"});
    let r = app
        .admin(Method::POST, "/v1/users", &root, Some(invite))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let invited: Value = r.json().await.unwrap();
    assert_eq!(invited["has_password"], false);
    // No password can match an invitation until one is set.
    assert_problem(app.login("invited.one", "").await, StatusCode::UNAUTHORIZED).await;
    let id = invited["id"].as_str().unwrap();
    app.admin(
        Method::POST,
        &format!("/v1/users/{id}/password"),
        &root,
        Some(json!({"password": "Chosen-Passw0rd!"})),
    )
    .await;
    assert_eq!(
        app.login("invited.one", "Chosen-Passw0rd!").await.status(),
        StatusCode::OK
    );

    let hash = bcrypt::hash("Imported-Passw0rd!", 4).unwrap();
    let import = json!({"username": "imported.one", "email": "imported@example.com", "firstname": "Im", "lastname": "Ported", "password_hash": hash});
    let r = app
        .admin(Method::POST, "/v1/users", &root, Some(import))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        app.login("imported.one", "Imported-Passw0rd!")
            .await
            .status(),
        StatusCode::OK
    );

    let bad = json!({"username": "bad.hash", "email": "bad@example.com", "firstname": "B", "lastname": "H", "password_hash": "md5:abc"});
    let p = assert_problem(
        app.admin(Method::POST, "/v1/users", &root, Some(bad)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "password_hash");
    let both = json!({"username": "both.given", "email": "both@example.com", "firstname": "B", "lastname": "G", "password_hash": hash, "password": "Chosen-Passw0rd!"});
    assert_problem(
        app.admin(Method::POST, "/v1/users", &root, Some(both))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(app.account_count().await, 3);
}
