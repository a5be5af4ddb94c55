//! Least privilege for service clients and the OAuth details of RFC 9700:
//! what a client's own token (client credentials) may do at the
//! authenticator and the safekeeper, who learns what of a token by
//! introspection, PKCE for every client, first-party `client_id`s on the
//! task-management design's `/v1/authorize`, and client ids that would pass for user ids.

use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use testkit::authenticator::{ROOT_PASSWORD, ROOT_USER};

use crate::{
    code_flow::{challenge, exchange, location, query, spa_params, Browser, VERIFIER},
    helpers::{
        assert_problem, spawn, TestPlatform, PASSWORD, RESOURCE_SERVER, RESOURCE_SERVER_SECRET,
        SERVICE, SERVICE_SECRET, SPA, THIRD_PARTY,
    },
};

const SECRET: &str = "least-privilege-secret-0123456789";

/// Creates a confidential client (as the platform's administrator) with
/// these grant types and scopes, plus `extra` fields.
async fn client(p: &TestPlatform, id: &str, grants: &[&str], scopes: &[&str], extra: Value) {
    let mut body = json!({"client_id": id, "name": id, "client_secret": SECRET,
                          "grant_types": grants, "scopes": scopes});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    p.create_client(body).await;
}

/// A client's own access token, by client credentials.
async fn own_token(p: &TestPlatform, id: &str, secret: &str, scope: &str) -> String {
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn introspect(p: &TestPlatform, id: &str, secret: &str, token: &str) -> Value {
    let r = p
        .http
        .post(p.sk("/oauth2/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// A call to the authenticator's account administration.
async fn at_authenticator(
    p: &TestPlatform,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = p
        .http
        .request(method, format!("{}{path}", p.auth))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn root_id(p: &TestPlatform) -> String {
    let session = p.session(ROOT_USER, ROOT_PASSWORD).await;
    let me: Value = p
        .http
        .get(format!("{}/v1/me", p.auth))
        .bearer_auth(session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn login_status(p: &TestPlatform, username: &str, password: &str) -> StatusCode {
    p.http
        .post(format!("{}/v1/login", p.auth))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn roles_of(p: &TestPlatform, id: &str) -> Vec<String> {
    let r = p
        .admin_call(Method::GET, &format!("/v1/admin/users/{id}/roles"), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    serde_json::from_value(r.json::<Value>().await.unwrap()["roles"].clone()).unwrap()
}

#[tokio::test]
async fn another_clients_introspection_answers_active_false() {
    let p = spawn().await;
    client(
        &p,
        "nosy-app",
        &["client_credentials"],
        &["read:task"],
        json!({}),
    )
    .await;
    let service_token = own_token(&p, SERVICE, SERVICE_SECRET, "su_read:task").await;
    let (name, _) = p.user_with_role(Some("Employer")).await;
    let session = p.session(&name, PASSWORD).await;
    let r = p.authorize(&session, "read:task").await;
    assert_eq!(r.status(), StatusCode::OK);
    let user_token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another client learns nothing, not even the token's scopes.
    for token in [&service_token, &user_token] {
        assert_eq!(
            introspect(&p, "nosy-app", SECRET, token).await,
            json!({"active": false})
        );
    }
    // The client it was issued to does.
    let own = introspect(&p, SERVICE, SERVICE_SECRET, &service_token).await;
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["client_id"], SERVICE);
    // So does a resource server (`introspect:token`), for anyone's token.
    for token in [&service_token, &user_token] {
        let i = introspect(&p, RESOURCE_SERVER, RESOURCE_SERVER_SECRET, token).await;
        assert_eq!(i["active"], true, "{i}");
    }

    // A refresh token is described to its own client only: never to a
    // resource server.
    let ch = challenge(VERIFIER);
    let r = Browser::new(&p)
        .authorize_as(&spa_params("read:task", &ch), &name)
        .await;
    let code = query(&location(&r))["code"].clone();
    let t: Value = exchange(&p, &code, VERIFIER, crate::helpers::SPA_REDIRECT)
        .await
        .json()
        .await
        .unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    for (id, secret) in [
        (RESOURCE_SERVER, RESOURCE_SERVER_SECRET),
        ("nosy-app", SECRET),
    ] {
        assert_eq!(
            introspect(&p, id, secret, refresh).await,
            json!({"active": false})
        );
    }
}

#[tokio::test]
async fn pkce_is_required_of_a_confidential_client_unless_it_was_let_off() {
    let p = spawn().await;
    let redirect = "https://conf.example/cb";
    client(
        &p,
        "conf-app",
        &["authorization_code"],
        &["read:task"],
        json!({"first_party": true, "redirect_uris": [redirect]}),
    )
    .await;
    let shown: Value = p
        .admin_call(Method::GET, "/v1/admin/clients/conf-app", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["pkce_required"], true);
    let params = [
        ("response_type", "code"),
        ("client_id", "conf-app"),
        ("redirect_uri", redirect),
        ("scope", "read:task"),
        ("state", "s1"),
    ];
    let url = Url::parse_with_params("http://x/oauth2/authorize", params).unwrap();
    let path = format!("/oauth2/authorize?{}", url.query().unwrap());
    let r = Browser::new(&p).get(&path).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let back = query(&location(&r));
    assert_eq!(back["error"], "invalid_request", "{back:?}");
    assert!(back["error_description"].contains("PKCE"), "{back:?}");

    // An administrator lets this client off; the flow then works without.
    let r = p
        .admin_call(
            Method::PATCH,
            "/v1/admin/clients/conf-app",
            Some(json!({"pkce_required": false})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["pkce_required"], false);
    let (name, _) = p.user_with_role(Some("Employee")).await;
    let r = Browser::new(&p).authorize_as(&params, &name).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let code = query(&location(&r))["code"].clone();
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth("conf-app", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A public client can never be let off.
    let r = p
        .admin_call(
            Method::PATCH,
            &format!("/v1/admin/clients/{SPA}"),
            Some(json!({"pkce_required": false})),
        )
        .await;
    assert!(assert_problem(r, StatusCode::BAD_REQUEST).await["detail"]
        .as_str()
        .unwrap()
        .contains("public client"));
}

#[tokio::test]
async fn a_client_id_on_the_seed_authorize_is_accepted_only_for_a_first_party_client() {
    let p = spawn().await;
    let (name, _) = p.user_with_role(Some("Employee")).await;
    let session = p.session(&name, PASSWORD).await;
    let ask = |client: &'static str| {
        p.http
            .post(p.sk("/v1/authorize"))
            .bearer_auth(&session)
            .json(&json!({"scopes": "read:task", "client_id": client}))
            .send()
    };
    let r = ask(THIRD_PARTY).await.unwrap();
    let v = assert_problem(r, StatusCode::FORBIDDEN).await;
    assert!(v["detail"].as_str().unwrap().contains("first-party"), "{v}");
    let r = ask(SPA).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let i = introspect(&p, RESOURCE_SERVER, RESOURCE_SERVER_SECRET, &token).await;
    assert_eq!(i["client_id"], SPA, "{i}");
}

#[tokio::test]
async fn a_client_id_that_parses_as_a_uuid_is_refused() {
    let p = spawn().await;
    let id = uuid::Uuid::new_v4();
    for client_id in [id.to_string(), id.simple().to_string()] {
        let r = p
            .admin_call(
                Method::POST,
                "/v1/admin/clients",
                Some(json!({"client_id": client_id, "name": "Looks like a user", "client_secret": SECRET,
                            "grant_types": ["client_credentials"], "scopes": ["read:task"]})),
            )
            .await;
        let v = assert_problem(r, StatusCode::BAD_REQUEST).await;
        assert!(v["detail"].as_str().unwrap().contains("UUID"), "{v}");
    }
}

#[tokio::test]
async fn the_directorys_token_cannot_reset_a_superusers_password_and_cannot_grant_admin() {
    let p = spawn().await;
    client(
        &p,
        "directory-lp",
        &["client_credentials"],
        &["provision:user", "login:relay"],
        json!({}),
    )
    .await;
    let directory = own_token(&p, "directory-lp", SECRET, "provision:user login:relay").await;
    let root = root_id(&p).await;

    // The superuser's account is out of its reach: password, deactivation,
    // profile, activation.
    for (method, path, body) in [
        (
            Method::POST,
            format!("/v1/users/{root}/password"),
            Some(json!({"password": "Taken-Over-Passw0rd!"})),
        ),
        (Method::POST, format!("/v1/users/{root}/deactivate"), None),
        (Method::POST, format!("/v1/users/{root}/activate"), None),
        (
            Method::PATCH,
            format!("/v1/users/{root}"),
            Some(json!({"email": "attacker@example.com"})),
        ),
    ] {
        let r = at_authenticator(&p, method, &path, &directory, body).await;
        assert_problem(r, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(
        login_status(&p, ROOT_USER, ROOT_PASSWORD).await,
        StatusCode::OK
    );
    assert_eq!(
        login_status(&p, ROOT_USER, "Taken-Over-Passw0rd!").await,
        StatusCode::UNAUTHORIZED
    );

    // Ordinary accounts it still provisions.
    let (name, id) = p.user_with_role(None).await;
    let r = at_authenticator(
        &p,
        Method::PATCH,
        &format!("/v1/users/{id}"),
        &directory,
        Some(json!({"firstname": "Renamed"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    for action in ["deactivate", "activate"] {
        let r = at_authenticator(
            &p,
            Method::POST,
            &format!("/v1/users/{id}/{action}"),
            &directory,
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{action}");
    }
    assert_eq!(login_status(&p, &name, PASSWORD).await, StatusCode::OK);

    // No client's own token grants a role at the safekeeper, whatever
    // scopes it was given: not the directory's, not one with admin:rbac.
    client(
        &p,
        "rogue-admin",
        &["client_credentials"],
        &["admin:rbac", "admin:user", "admin:client"],
        json!({}),
    )
    .await;
    let rogue = own_token(&p, "rogue-admin", SECRET, "admin:rbac admin:user").await;
    for token in [&directory, &rogue] {
        for (method, path, body) in [
            (
                Method::POST,
                format!("/v1/admin/users/{id}/roles"),
                Some(json!({"role": "admin"})),
            ),
            (
                Method::PUT,
                format!("/v1/admin/users/{id}/roles"),
                Some(json!({"roles": ["admin"]})),
            ),
        ] {
            let mut r = p.http.request(method, p.sk(&path)).bearer_auth(token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            assert_problem(r.send().await.unwrap(), StatusCode::FORBIDDEN).await;
        }
    }
    assert!(roles_of(&p, &id).await.is_empty());
}

#[tokio::test]
async fn a_clients_own_token_with_admin_user_is_refused_at_the_authenticator() {
    let p = spawn().await;
    client(
        &p,
        "old-directory",
        &["client_credentials"],
        &["admin:user"],
        json!({}),
    )
    .await;
    let token = own_token(&p, "old-directory", SECRET, "admin:user").await;
    let r = at_authenticator(&p, Method::GET, "/v1/users", &token, None).await;
    let v = assert_problem(r, StatusCode::FORBIDDEN).await;
    assert!(
        v["detail"].as_str().unwrap().contains("provision:user"),
        "{v}"
    );
    let r = at_authenticator(
        &p,
        Method::POST,
        "/v1/users",
        &token,
        Some(
            json!({"username": "made.by.client", "email": "m@example.com",
                    "firstname": "M", "lastname": "C"}),
        ),
    )
    .await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
    // A person's token with admin:user keeps administering.
    let r = at_authenticator(&p, Method::GET, "/v1/users", &p.admin, None).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn role_grants_need_admin_rbac_in_a_persons_token() {
    let p = spawn().await;
    let (_, id) = p.user_with_role(None).await;
    let session = p.session(ROOT_USER, ROOT_PASSWORD).await;
    let r = p.authorize(&session, "admin:user").await;
    assert_eq!(r.status(), StatusCode::OK);
    let user_admin = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = p
        .http
        .post(p.sk(&format!("/v1/admin/users/{id}/roles")))
        .bearer_auth(&user_admin)
        .json(&json!({"role": "Employer"}))
        .send()
        .await
        .unwrap();
    let v = assert_problem(r, StatusCode::FORBIDDEN).await;
    assert!(v.to_string().contains("admin:rbac"), "{v}");
    assert!(roles_of(&p, &id).await.is_empty());
    // The administrator's token (admin:rbac, from their session) grants.
    let r = p
        .admin_call(
            Method::POST,
            &format!("/v1/admin/users/{id}/roles"),
            Some(json!({"role": "Employer"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(roles_of(&p, &id).await, vec!["Employer".to_owned()]);
}
