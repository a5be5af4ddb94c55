use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_oauth_error, eventually, spawn, SERVICE, SERVICE_SECRET, SPA};

#[tokio::test]
async fn a_confidential_client_gets_a_token_by_client_credentials_with_basic_or_post_auth() {
    let p = spawn().await;
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "su_read:task"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scope"], "su_read:task");
    assert!(v.get("refresh_token").is_none());
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SERVICE),
            ("client_secret", SERVICE_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // It cannot obtain what it was not given.
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "su_edit:task"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() {
    let p = spawn().await;
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(SERVICE, Some("not-the-secret-at-all"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("www-authenticate").unwrap(),
        "Basic realm=\"safekeeper\""
    );
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", SPA)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .form(&[("grant_type", "password"), ("client_id", SPA)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

#[tokio::test]
async fn introspection_and_revocation_follow_rfc_7662_and_7009() {
    let p = spawn().await;
    let token = |p: &crate::helpers::TestPlatform| {
        p.http
            .post(p.sk("/oauth2/token"))
            .basic_auth(SERVICE, Some(SERVICE_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let v: Value = token(&p).await.unwrap().json().await.unwrap();
    let access = v["access_token"].as_str().unwrap().to_owned();
    let introspect = |t: String| {
        p.http
            .post(p.sk("/oauth2/introspect"))
            .basic_auth(SERVICE, Some(SERVICE_SECRET))
            .form(&[("token", t)])
            .send()
    };
    let i: Value = introspect(access.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], SERVICE);
    assert_eq!(i["scope"], "su_read:task");
    let i: Value = introspect("garbage".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(i, serde_json::json!({"active": false}));
    // Public clients may not introspect.
    let r = p
        .http
        .post(p.sk("/oauth2/introspect"))
        .form(&[("token", access.as_str()), ("client_id", SPA)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = p
        .http
        .post(p.sk("/oauth2/revoke"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let i: Value = introspect(access).await.unwrap().json().await.unwrap();
    assert_eq!(i["active"], false);
    // Unknown tokens are "revoked" too, silently.
    let r = p
        .http
        .post(p.sk("/oauth2/revoke"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_metadata_document_describes_the_server() {
    let p = spawn().await;
    let m: Value = testkit::json_of(&p.sk("/.well-known/oauth-authorization-server")).await;
    assert_eq!(m["issuer"], "http://127.0.0.1:5001");
    assert_eq!(m["token_endpoint"], "http://127.0.0.1:5001/oauth2/token");
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(m["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "su_edit:task"));
    let jwks: Value = testkit::json_of(&p.sk("/.well-known/jwks.json")).await;
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
}

#[tokio::test]
async fn a_service_with_provision_user_creates_accounts_in_the_authenticator() {
    let p = spawn().await;
    let body = serde_json::json!({"client_id": "directory-test", "name": "Directory", "client_secret": "directory-secret-0123456789",
                                  "grant_types": ["client_credentials"], "scopes": ["provision:user"]});
    assert_eq!(
        p.admin_call(reqwest::Method::POST, "/v1/admin/clients", Some(body))
            .await
            .status(),
        StatusCode::CREATED
    );
    let t: Value = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth("directory-test", Some("directory-secret-0123456789"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "provision:user"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = t["access_token"].as_str().unwrap();
    let invite = serde_json::json!({"username": "from.directory", "email": "dir@example.com", "firstname": "D", "lastname": "R"});
    let r = p
        .http
        .post(format!("{}/v1/users", p.auth))
        .bearer_auth(token)
        .json(&invite)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["has_password"], false);
    // A token without provision:user may not.
    let other: Value = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = p
        .http
        .get(format!("{}/v1/users", p.auth))
        .bearer_auth(other["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// The token endpoint answers from a client cache; an administrative change
/// (a rotated secret, narrower scopes, a deleted client) must still count
/// from the very next request.
#[tokio::test]
async fn client_changes_take_effect_on_the_next_token_request() {
    let p = spawn().await;
    let body = serde_json::json!({"client_id": "cached-app", "name": "Cached", "client_secret": "cached-secret-0123456789abcdef",
                                  "grant_types": ["client_credentials"], "scopes": ["su_read:task", "read:task"]});
    let created = p
        .admin_call(reqwest::Method::POST, "/v1/admin/clients", Some(body))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let token = |secret: String| {
        let p = &p;
        async move {
            p.http
                .post(p.sk("/oauth2/token"))
                .basic_auth("cached-app", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    let old = "cached-secret-0123456789abcdef".to_owned();
    // Twice, so the second is answered from the cache.
    for _ in 0..2 {
        let r = token(old.clone()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.json::<Value>().await.unwrap()["scope"],
            "read:task su_read:task"
        );
    }

    let narrowed = p
        .admin_call(
            reqwest::Method::PATCH,
            "/v1/admin/clients/cached-app",
            Some(serde_json::json!({"scopes": ["read:task"]})),
        )
        .await;
    assert_eq!(narrowed.status(), StatusCode::OK);
    let r = token(old.clone()).await;
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "read:task");

    let rotated = p
        .admin_call(
            reqwest::Method::PATCH,
            "/v1/admin/clients/cached-app",
            Some(serde_json::json!({"rotate_secret": true})),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new = rotated.json::<Value>().await.unwrap()["client_secret"]
        .as_str()
        .expect("a rotated secret is shown once")
        .to_owned();
    assert_oauth_error(token(old).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(token(new.clone()).await.status(), StatusCode::OK);

    let deleted = p
        .admin_call(
            reqwest::Method::DELETE,
            "/v1/admin/clients/cached-app",
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_oauth_error(token(new).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

/// Two replicas on one database: a client changed through one is refused
/// by the other within moments of the change, not after a cache lifetime.
#[tokio::test]
async fn a_client_changed_through_one_replica_is_seen_by_the_others_at_once() {
    let p = spawn().await;
    let other = testkit::safekeeper::spawn(testkit::safekeeper::Options {
        brokers: p.brokers.clone(),
        database_url: p.sk_database_url(),
        authenticator_url: p.auth.clone(),
        code_ttl: std::time::Duration::from_secs(60),
        listener: testkit::listener(),
    })
    .await;
    let body = serde_json::json!({"client_id": "shared-app", "name": "Shared", "client_secret": "shared-secret-0123456789abcdef",
                                  "grant_types": ["client_credentials"], "scopes": ["read:task"]});
    let created = p
        .admin_call(reqwest::Method::POST, "/v1/admin/clients", Some(body))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let token = |secret: &str| {
        let (http, url) = (p.http.clone(), format!("{}/oauth2/token", other.address));
        let secret = secret.to_owned();
        async move {
            http.post(url)
                .basic_auth("shared-app", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The other replica authenticates it, twice: from its cache the second time.
    let old = "shared-secret-0123456789abcdef";
    for _ in 0..2 {
        assert_eq!(token(old).await, StatusCode::OK);
    }
    // Rotated through the first replica: the other refuses the old secret
    // within moments (its cache lives far longer than that).
    let rotated = p
        .admin_call(
            reqwest::Method::PATCH,
            "/v1/admin/clients/shared-app",
            Some(serde_json::json!({"rotate_secret": true})),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new = rotated.json::<Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(5, "the old secret refused by the other replica", || async {
        (token(old).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert_eq!(token(&new).await, StatusCode::OK);
}
