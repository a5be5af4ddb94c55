use std::sync::Arc;

use platform::jwt::{
    KeySource, RemoteJwks, SessionClaims, SigningKey, Verifier, ACCESS_TYP, SESSION_TYP,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app_with, Options};

fn verifier(app: &crate::helpers::TestApp, typ: &'static str) -> Verifier {
    let jwks = RemoteJwks::new(app.url("/.well-known/jwks.json"), testkit::http_client());
    // The issuer defaults to the configured port's URL; tests bind port 0.
    Verifier::new(
        KeySource::Remote(Arc::new(jwks)),
        "http://127.0.0.1:5000",
        typ,
    )
}

#[tokio::test]
async fn a_session_token_verifies_against_the_served_jwks_and_carries_the_documented_claims() {
    let app = spawn_app_with(Options::default()).await;
    let (body, account) = app.registered_user().await;
    let token = app
        .token(body["username"].as_str().unwrap(), "Sturdy-Passw0rd!")
        .await;
    let claims: SessionClaims = verifier(&app, SESSION_TYP)
        .verify(&token)
        .await
        .expect("verifies");
    assert_eq!(claims.sub, account["id"].as_str().unwrap());
    assert_eq!(claims.username, body["username"].as_str().unwrap());
    assert_eq!(claims.exp - claims.iat, 3600);
    assert!(!claims.jti.is_empty());
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some(SESSION_TYP));
    // It is not an access token, whoever asks.
    assert!(verifier(&app, ACCESS_TYP)
        .verify::<SessionClaims>(&token)
        .await
        .is_err());

    let jwks: Value = testkit::json_of(&app.url("/.well-known/jwks.json")).await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["kid"].as_str(), header.kid.as_deref());
    assert!(key.get("d").is_none(), "never the private part");
}

#[tokio::test]
async fn after_a_key_rotation_old_tokens_still_verify_and_new_ones_use_the_new_key() {
    let (_, old_pem) = SigningKey::generate().unwrap();
    let (_, new_pem) = SigningKey::generate().unwrap();
    let first = spawn_app_with(Options {
        signing_key: Some(old_pem.clone()),
        ..Options::default()
    })
    .await;
    let (body, _) = first.registered_user().await;
    let name = body["username"].as_str().unwrap().to_owned();
    let old_token = first.token(&name, "Sturdy-Passw0rd!").await;

    // The next release: a new signing key, the old one kept for verification.
    let db = first.db.share();
    let second = spawn_app_with(Options {
        db: Some(db),
        signing_key: Some(new_pem),
        previous_keys: Some(old_pem),
        ..Options::default()
    })
    .await;
    let jwks: Value = testkit::json_of(&second.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let v = verifier(&second, SESSION_TYP);
    v.verify::<SessionClaims>(&old_token)
        .await
        .expect("old token still valid");
    let new_token = second.token(&name, "Sturdy-Passw0rd!").await;
    v.verify::<SessionClaims>(&new_token)
        .await
        .expect("new token valid");
    assert_ne!(
        jsonwebtoken::decode_header(&old_token).unwrap().kid,
        jsonwebtoken::decode_header(&new_token).unwrap().kid
    );
    // The running service accepts the old session as well.
    let r = second
        .http
        .get(second.url("/v1/me"))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
