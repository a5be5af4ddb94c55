//! Every revocation is published on `oauth.revocation.v1` (through the
//! outbox), so that resource servers refuse what it covers.

use std::{collections::HashSet, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use platform::events::Envelope;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, eventually, spawn, TestPlatform, RESOURCE_SERVER, RESOURCE_SERVER_SECRET,
    SERVICE, SERVICE_SECRET,
};

/// The longest access-token lifetime of the test safekeeper (the default).
const ACCESS_TTL: i64 = 300;

async fn revocation_of(p: &TestPlatform, key: &str) -> Envelope {
    let keys: HashSet<String> = [key.to_owned()].into();
    let mut got = testkit::collect_events(
        &p.brokers,
        platform::events::topics::REVOCATION,
        &keys,
        1,
        Duration::from_secs(30),
    )
    .await;
    // A user's later events while inactive may revoke them again: harmless.
    assert!(!got.is_empty(), "no revocation of {key} was published");
    for e in &got {
        assert_eq!(e.entity, "revocation");
        assert_eq!(e.source.service, "safekeeper");
    }
    got.remove(0)
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn revoking_an_access_token_publishes_its_jti_until_it_expires() {
    let p = spawn().await;
    let r = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = claims(&token);
    let r = p
        .http
        .post(p.sk("/oauth2/revoke"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let jti = c["jti"].as_str().unwrap();
    let after = revocation_of(&p, jti).await.after.unwrap();
    assert_eq!(after["kind"], "jti");
    assert_eq!(after["value"], jti);
    assert_eq!(after["expires_at"], c["exp"]);
}

#[tokio::test]
async fn deleting_a_client_publishes_the_revocation_of_its_tokens() {
    let p = spawn().await;
    let id = format!("doomed-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let r = p
        .admin_call(
            Method::POST,
            "/v1/admin/clients",
            Some(json!({"client_id": id, "name": "Doomed", "client_secret": "doomed-secret-0123456789abcdef",
                        "grant_types": ["client_credentials"], "scopes": ["su_read:task"]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let token: Value = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(&id, Some("doomed-secret-0123456789abcdef"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "su_read:task"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let introspected = || async {
        p.http
            .post(p.sk("/oauth2/introspect"))
            .basic_auth(RESOURCE_SERVER, Some(RESOURCE_SERVER_SECRET))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["active"]
            .clone()
    };
    assert_eq!(introspected().await, true);
    let r = p
        .admin_call(Method::DELETE, &format!("/v1/admin/clients/{id}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Its tokens are dead at the safekeeper too, not only downstream.
    assert_eq!(introspected().await, false);
    let after = revocation_of(&p, &id).await.after.unwrap();
    assert_eq!(after["kind"], "client");
    assert_eq!(
        after["expires_at"].as_i64().unwrap() - after["revoked_at"].as_i64().unwrap(),
        ACCESS_TTL
    );
}

#[tokio::test]
async fn deactivating_a_user_publishes_the_revocation_of_their_tokens() {
    let p = spawn().await;
    let (_, id) = p.user_with_role(Some("Employee")).await;
    p.deactivate(&id).await;
    let after = revocation_of(&p, &id).await.after.unwrap();
    assert_eq!(after["kind"], "user");
    assert_eq!(after["value"], id.as_str());
}

#[tokio::test]
async fn a_service_token_revoked_at_the_safekeeper_is_refused_by_the_authenticator() {
    let p = spawn().await;
    let id = format!(
        "provisioner-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let secret = "provisioner-secret-0123456789abcdef";
    let r = p
        .admin_call(
            Method::POST,
            "/v1/admin/clients",
            Some(
                json!({"client_id": id, "name": "Provisioner", "client_secret": secret,
                        "grant_types": ["client_credentials"], "scopes": ["provision:user"]}),
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = p
        .http
        .post(p.sk("/oauth2/token"))
        .basic_auth(&id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = || async {
        p.http
            .get(format!("{}/v1/users?limit=1", p.auth))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(list().await.status(), StatusCode::OK);

    let r = p
        .http
        .post(p.sk("/oauth2/revoke"))
        .basic_auth(&id, Some(secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = eventually(
        15,
        "the authenticator to refuse the revoked token",
        || async {
            let r = list().await;
            (r.status() == StatusCode::UNAUTHORIZED).then_some(r)
        },
    )
    .await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}
