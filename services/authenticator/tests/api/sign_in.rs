//! Sign-in as an attacker tries it: lockouts, concurrent guesses, forged
//! addresses, stalled hashing, and sessions that should have ended.

use std::{net::IpAddr, time::Duration};

use diesel::{sql_query, sql_types::Text, Connection, PgConnection, QueryableByName, RunQueryDsl};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_user, spawn_app, spawn_app_with, Options, TestApp};

const PASSWORD: &str = "Sturdy-Passw0rd!";

/// A client whose connections come from `ip` (127.0.0.0/8 is all ours).
fn client_from(ip: &str) -> reqwest::Client {
    testkit::http_client_builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(
    client: &reqwest::Client,
    app_address: &str,
    username: &str,
    password: &str,
) -> StatusCode {
    client
        .post(format!("{app_address}/v1/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn sixty_wrong_passwords_from_one_address_do_not_lock_the_owner_out_from_another() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let attacker = client_from("127.0.0.2");
    let mut refused = 0;
    for _ in 0..60 {
        match login_from(&attacker, &app.address, name, "Wrong-Passw0rd!").await {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 50, "the attacker was slowed down: {refused}");
    // The owner, elsewhere, signs in at once.
    let owner = client_from("127.0.0.3");
    assert_eq!(
        login_from(&owner, &app.address, name, PASSWORD).await,
        StatusCode::OK
    );
    // The attacker's address still waits, even with the right password.
    assert_eq!(
        login_from(&attacker, &app.address, name, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn concurrent_guesses_each_count_as_a_guess() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let attacker = client_from("127.0.0.4");
    let answers =
        join_all((0..20).map(|_| login_from(&attacker, &app.address, name, "Wrong-Passw0rd!")))
            .await;
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // Five free guesses per account and address, however they arrive.
    assert_eq!((checked, throttled), (5, 15), "{answers:?}");
}

#[tokio::test]
async fn a_forged_end_user_address_header_changes_nothing_for_a_stranger() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let attacker = client_from("127.0.0.5");
    let mut statuses = Vec::new();
    for i in 0..10 {
        // A new "address" each time: ignored without a relay token.
        let r = attacker
            .post(format!("{}/v1/login", app.address))
            .header("X-End-User-Address", format!("203.0.113.{i}"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .json(&json!({"username": name, "password": "Wrong-Passw0rd!"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        5,
        "{statuses:?}"
    );
    // A made-up relay token is refused outright.
    let r = attacker
        .post(format!("{}/v1/login", app.address))
        .bearer_auth("not.a.token")
        .header("X-End-User-Address", "203.0.113.99")
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
}

/// The Redis the throttle shares between replicas (the machine's own).
fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn two_replicas_share_one_limit() {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(Options {
        redis_prefix: Some(prefix.clone()),
        ..Options::default()
    })
    .await;
    let mut second = testkit::authenticator::Options::new(app.brokers.clone(), &app.db);
    second.redis = Some((redis_url(), prefix));
    let replica = testkit::authenticator::spawn(second).await;
    let (body, _) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let attacker = client_from("127.0.0.6");
    // Three guesses at one replica, two at the other: five in all.
    for address in [&app.address, &replica.address, &app.address] {
        assert_eq!(
            login_from(&attacker, address, name, "Wrong-Passw0rd!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..2 {
        assert_eq!(
            login_from(&attacker, &replica.address, name, "Wrong-Passw0rd!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    // Either replica now makes the sixth wait.
    assert_eq!(
        login_from(&attacker, &app.address, name, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&attacker, &replica.address, name, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // And the owner elsewhere is not affected at either.
    let owner = client_from("127.0.0.7");
    assert_eq!(
        login_from(&owner, &replica.address, name, PASSWORD).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(Options {
        signups_per_address: Some(3),
        ..Options::default()
    })
    .await;
    let from = client_from("127.0.0.8");
    let register = |c: &reqwest::Client| {
        c.post(format!("{}/v1/user", app.address))
            .json(&new_user())
            .send()
    };
    for _ in 0..3 {
        assert_eq!(register(&from).await.unwrap().status(), StatusCode::CREATED);
    }
    let r = register(&from).await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    let elsewhere = client_from("127.0.0.9");
    assert_eq!(
        register(&elsewhere).await.unwrap().status(),
        StatusCode::CREATED
    );
}

fn bcrypt_at(cost: u32) -> String {
    bcrypt::hash(PASSWORD, cost).unwrap()
}

#[derive(QueryableByName)]
struct StoredHash {
    #[diesel(sql_type = Text)]
    password_hash: String,
}

fn stored_hash(app: &TestApp, username: &str) -> String {
    let mut c = PgConnection::establish(&app.db.url).unwrap();
    sql_query("SELECT password_hash FROM accounts WHERE username = $1")
        .bind::<Text, _>(username)
        .get_result::<StoredHash>(&mut c)
        .unwrap()
        .password_hash
}

#[tokio::test]
async fn an_import_at_cost_31_is_refused_and_a_cheap_one_is_rehashed_at_the_first_login() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let mut body = new_user();
    body.as_object_mut().unwrap().remove("password");
    // Cost 31: one check would keep a core busy for a day and a half.
    body["password_hash"] = json!(bcrypt_at(4).replacen("$04$", "$31$", 1));
    let before = app.account_count().await;
    let r = app
        .admin(Method::POST, "/v1/users", &root, Some(body.clone()))
        .await;
    let problem = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["rule"], "bcrypt_cost_max");
    assert_eq!(problem["field"], "password_hash");
    assert_eq!(app.account_count().await, before);

    // Cost 5 is imported, works, and is re-made at the configured cost (4).
    body["password_hash"] = json!(bcrypt_at(5));
    let r = app
        .admin(Method::POST, "/v1/users", &root, Some(body.clone()))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let name = body["username"].as_str().unwrap();
    assert!(stored_hash(&app, name).starts_with("$2b$05$"));
    assert_eq!(app.login(name, PASSWORD).await.status(), StatusCode::OK);
    let mut rehashed = false;
    for _ in 0..100 {
        if stored_hash(&app, name).starts_with("$2b$04$") {
            rehashed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rehashed, "the hash was re-made at cost 4");
    assert_eq!(app.login(name, PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_at_once_and_healthz_stays_up() {
    let app = spawn_app_with(Options {
        hashing: Some(authenticator::hashing::HashLimits {
            cost: 12,
            max_cost: 14,
            queue: 0,
            deadline: Duration::from_secs(30),
        }),
        ..Options::default()
    })
    .await;
    // Logins of an unknown user cost one hash each at cost 12.
    let attempts = join_all((0..12).map(|i| {
        let c = client_from(&format!("127.0.1.{}", i + 1));
        let url = app.address.clone();
        async move {
            c.post(format!("{url}/v1/login"))
                .json(&json!({"username": "nobody", "password": "Wrong-Passw0rd!"}))
                .send()
                .await
                .unwrap()
        }
    }));
    let healthz = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
    };
    let (answers, health) = tokio::join!(attempts, healthz);
    assert_eq!(health, StatusCode::OK);
    let busy: Vec<_> = answers
        .into_iter()
        .filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "some logins found the queue full");
    for r in busy {
        assert!(r.headers().contains_key("retry-after"));
        assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    }
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    app.http
        .get(app.url("/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_password_reset_by_an_administrator_ends_earlier_sessions() {
    let app = spawn_app().await;
    let (body, account) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let old = app.token(name, PASSWORD).await;
    assert_eq!(me(&app, &old).await, StatusCode::OK);
    let root = app.root_token().await;
    let id = account["id"].as_str().unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/v1/users/{id}/password"),
            &root,
            Some(json!({"password": "Another-Passw0rd!"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(
        app.http
            .get(app.url("/v1/me"))
            .bearer_auth(&old)
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let new = app.token(name, "Another-Passw0rd!").await;
    assert_eq!(me(&app, &new).await, StatusCode::OK);
}

#[tokio::test]
async fn a_deactivation_ends_sessions_for_good_even_after_reactivation() {
    let app = spawn_app().await;
    let (body, account) = app.registered_user().await;
    let old = app
        .token(body["username"].as_str().unwrap(), PASSWORD)
        .await;
    let root = app.root_token().await;
    let id = account["id"].as_str().unwrap();
    for step in ["deactivate", "activate"] {
        let path = format!("/v1/users/{id}/{step}");
        assert_eq!(
            app.admin(Method::POST, &path, &root, None).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(me(&app, &old).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_logout_ends_that_session_and_logout_all_ends_every_one() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let (phone, laptop, tablet) = (
        app.token(name, PASSWORD).await,
        app.token(name, PASSWORD).await,
        app.token(name, PASSWORD).await,
    );
    let logout = |token: &str, all: bool| {
        app.http
            .post(app.url(if all {
                "/v1/logout?all=true"
            } else {
                "/v1/logout"
            }))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        logout(&phone, false).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(me(&app, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &laptop).await, StatusCode::OK);
    assert_eq!(
        logout(&laptop, true).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(me(&app, &laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &tablet).await, StatusCode::UNAUTHORIZED);
    // A new login works as before.
    let fresh = app.token(name, PASSWORD).await;
    assert_eq!(me(&app, &fresh).await, StatusCode::OK);
}

#[tokio::test]
async fn changing_ones_own_password_needs_the_current_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let (this, other) = (
        app.token(name, PASSWORD).await,
        app.token(name, PASSWORD).await,
    );
    let change = |current: &str| {
        app.http
            .post(app.url("/v1/me/password"))
            .bearer_auth(&this)
            .json(&json!({"current_password": current, "new_password": "Brand-New-Passw0rd!"}))
            .send()
    };
    assert_problem(
        change("Wrong-Passw0rd!").await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let r = change(PASSWORD).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = r.json::<Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me(&app, &other).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &this).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &fresh).await, StatusCode::OK);
    assert_eq!(
        app.login(name, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_event_of_a_logout_carries_the_new_epoch_and_the_ended_session() {
    let app = spawn_app().await;
    let (body, account) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let token = app.token(name, PASSWORD).await;
    let r = app
        .http
        .post(app.url("/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let id = account["id"].as_str().unwrap();
    let events = app.events_for(&[id], 2).await;
    let after = events.last().unwrap().after.clone().unwrap();
    assert_eq!(after["session_epoch"], 0);
    let jti = {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["jti"].clone()
    };
    assert_eq!(after["ended_sessions"], json!([jti]));
}

#[tokio::test]
async fn a_redis_that_does_not_answer_leaves_each_replica_throttling_in_memory() {
    let db = testkit::authenticator::database();
    let mut o = testkit::authenticator::Options::new(testkit::shared_brokers(), &db);
    // Nothing listens on port 1.
    o.redis = Some(("redis://127.0.0.1:1".into(), "down:".into()));
    let app = testkit::authenticator::spawn(o).await;
    let attacker = client_from("127.0.0.10");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(login_from(&attacker, &app.address, "root", "Wrong-Passw0rd!").await);
    }
    assert_eq!(&statuses[..5], &[StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    // The owner still signs in from elsewhere.
    let owner = client_from("127.0.0.11");
    assert_eq!(
        login_from(
            &owner,
            &app.address,
            "root",
            testkit::authenticator::ROOT_PASSWORD
        )
        .await,
        StatusCode::OK
    );
}
