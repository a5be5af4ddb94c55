//! Access tokens: verified locally against the issuer's JWKS, refused the
//! moment the account is deactivated or the grant revoked.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use actix_web::{web, App, HttpResponse, HttpServer};
use platform::{
    events::{topics, Envelope, Op, Source},
    jwt::{AccessClaims, Jwks, KeyRing, SigningKey, ACCESS_TYP, SESSION_TYP},
};
use reqwest::StatusCode;
use serde_json::json;
use testkit::TestDatabase;

use crate::helpers::{assert_problem, spawn, EMPLOYEE_SCOPES};

#[tokio::test]
async fn a_deactivated_users_unexpired_token_is_refused_as_soon_as_the_event_lands() {
    let p = spawn().await;
    let ann = p.person(Some("Employee")).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let own = || p.post(&at, "/v1/task/own", json!({}));
    assert_eq!(own().await.status(), StatusCode::OK);
    let started = Instant::now();
    p.deactivate(&ann.id).await;
    // However long the broker takes, the first request after the event is
    // applied must be refused: check the read model, then call.
    loop {
        let applied = p
            .read_model(&ann.id)
            .await
            .is_some_and(|u| u["active"] == false);
        let r = own().await;
        if applied || r.status() == StatusCode::UNAUTHORIZED {
            let body = assert_problem(r, StatusCode::UNAUTHORIZED).await;
            // Two events end the token, whichever lands first: the account's
            // deactivation (iam.user.v1) and the safekeeper's revocation of
            // the user's tokens (oauth.revocation.v1).
            let detail = body["detail"].as_str().unwrap();
            assert!(
                detail.contains("deactivated") || detail.contains("revoked"),
                "{detail}"
            );
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the deactivation never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revocation took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_revoked_grant_stops_working_although_the_token_still_carries_it() {
    let p = spawn().await;
    let ann = p.person(Some("Employee")).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    assert_eq!(
        p.post(&at, "/v1/task/own", json!({})).await.status(),
        StatusCode::OK
    );
    p.revoke(&ann, "Employee").await;
    p.wait_for_user(&ann.id, |u| u["roles"] == json!([])).await;
    let r = p.post(&at, "/v1/task/own", json!({})).await;
    let body = assert_problem(r, StatusCode::FORBIDDEN).await;
    assert_eq!(body["missing_scopes"], json!(["read:task"]));
}

#[tokio::test]
async fn session_tokens_clients_and_missing_tokens_get_what_they_deserve() {
    let p = spawn().await;
    let ann = p.person(Some("Employee")).await;
    // A session token is not an access token.
    let r = p.post(&ann.session, "/v1/task/own", json!({})).await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("not an access token"));
    let r = p
        .http
        .post(p.url("/v1/task/own"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    assert_problem(
        p.post("not.a.token", "/v1/task/own", json!({})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // A client (no user) may read everything but owns nothing and writes nothing.
    assert_eq!(
        p.post(&p.reader, "/v1/task/all", json!({})).await.status(),
        StatusCode::OK
    );
    assert_problem(
        p.post(&p.reader, "/v1/task/own", json!({})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_problem(
        p.post(&p.reader, "/v1/task", json!({"title": "x", "type_id": 1}))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// A JWKS served from memory, to mint tokens the safekeeper never would.
struct FakeIssuer {
    url: String,
    jwks: Arc<RwLock<Jwks>>,
}

async fn fake_issuer(ring: &KeyRing) -> FakeIssuer {
    let jwks = Arc::new(RwLock::new(ring.jwks()));
    let served = jwks.clone();
    let server = HttpServer::new(move || {
        let served = served.clone();
        App::new().route(
            "/.well-known/jwks.json",
            web::get().to(move || {
                let body = served.read().unwrap().clone();
                async move { HttpResponse::Ok().json(body) }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    FakeIssuer {
        url: format!("http://127.0.0.1:{port}"),
        jwks,
    }
}

const ISSUER: &str = "https://issuer.test";

fn claims(sub: &str, exp_in: i64) -> AccessClaims {
    let now = chrono::Utc::now().timestamp();
    AccessClaims {
        iss: ISSUER.into(),
        sub: sub.into(),
        aud: "platform".into(),
        client_id: "test-spa".into(),
        scope: "read:task edit:task".into(),
        iat: now,
        exp: now + exp_in,
        jti: uuid::Uuid::new_v4().to_string(),
        username: None,
        sid: None,
    }
}

/// Applies an account event straight to the task database, as the consumer would.
fn known_user(db: &TestDatabase, id: uuid::Uuid) {
    use diesel::Connection;
    let mut c = diesel::PgConnection::establish(&db.url).unwrap();
    let e = Envelope::new(
        Op::Create,
        "user",
        id.to_string(),
        1,
        Source {
            service: "authenticator".into(),
            table: "accounts".into(),
        },
        None,
        Some(json!({"id": id, "username": "minted", "is_active": true})),
    );
    task::consumer::apply(&mut c, topics::USER, &e).unwrap();
}

#[tokio::test]
async fn tokens_are_checked_for_issuer_audience_expiry_type_and_key_and_keys_may_rotate() {
    let ring = KeyRing::new(SigningKey::generate().unwrap().0, vec![]);
    let issuer = fake_issuer(&ring).await;
    let db = testkit::task::database();
    let mut o = testkit::task::Options::new(testkit::shared_brokers(), &db, &issuer.url);
    o.issuer = ISSUER.into();
    o.audience = "platform".into();
    let app = testkit::task::spawn(o).await;
    let http = testkit::http_client();
    let call = |token: String| {
        let http = http.clone();
        let url = format!("{}/v1/task/own", app.address);
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
        }
    };
    let user = uuid::Uuid::new_v4();
    let good = claims(&user.to_string(), 300);
    // Valid, but the read model has not heard of the account.
    let r = call(ring.sign(ACCESS_TYP, &good).unwrap()).await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(body["detail"].as_str().unwrap().contains("not known"));
    known_user(&db, user);
    assert_eq!(
        call(ring.sign(ACCESS_TYP, &good).unwrap()).await.status(),
        StatusCode::OK
    );
    let wrong = [
        AccessClaims {
            iss: "https://elsewhere.test".into(),
            ..good.clone()
        },
        AccessClaims {
            aud: "another-audience".into(),
            ..good.clone()
        },
        claims(&user.to_string(), -120),
    ];
    for c in wrong {
        let r = call(ring.sign(ACCESS_TYP, &c).unwrap()).await;
        assert_problem(r, StatusCode::UNAUTHORIZED).await;
    }
    let r = call(ring.sign(SESSION_TYP, &good).unwrap()).await;
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let stranger = KeyRing::new(SigningKey::generate().unwrap().0, vec![]);
    let r = call(stranger.sign(ACCESS_TYP, &good).unwrap()).await;
    assert_problem(r, StatusCode::UNAUTHORIZED).await;

    // Rotation: the issuer publishes a new key and signs with it; an
    // unknown kid makes the verifier refetch (at most every 5 s).
    let next = KeyRing::new(
        SigningKey::generate().unwrap().0,
        SigningKey::all_from_pem(&SigningKey::generate().unwrap().1).unwrap(),
    );
    {
        let mut w = issuer.jwks.write().unwrap();
        w.keys.extend(next.jwks().keys);
    }
    let token = next.sign(ACCESS_TYP, &good).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = call(token.clone()).await;
        if r.status() == StatusCode::OK {
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            Instant::now() < deadline,
            "the rotated key was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Still accepted with the old key, which the JWKS still publishes.
    assert_eq!(
        call(ring.sign(ACCESS_TYP, &good).unwrap()).await.status(),
        StatusCode::OK
    );
    app.stop().await;
}
