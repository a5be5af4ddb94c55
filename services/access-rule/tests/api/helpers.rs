use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{web, App, HttpResponse, HttpServer};

use diesel::{
    sql_query, sql_types::BigInt, Connection, PgConnection, QueryableByName, RunQueryDsl,
};
use platform::{
    events::{client_config, ensure_topics, Envelope, Op, Source},
    jwt::{AccessClaims, KeyRing, SigningKey, ACCESS_TYP},
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    producer::FutureRecord,
    Message, Offset, TopicPartitionList,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use testkit::{
    access_rule::{self as testing, Options, Running, OPERATOR_TOKEN},
    TestDatabase,
};
pub use testkit::{assert_problem, eventually};

pub struct TestApp {
    pub address: String,
    pub brokers: String,
    pub http: reqwest::Client,
    pub db: TestDatabase,
    pub app: Running,
    /// The keys of the stand-in safekeeper whose access tokens the app
    /// accepts (see [`fake_issuer`]).
    pub keys: Arc<KeyRing>,
    /// A producer's token: client [`PRODUCER`] with `write:event`.
    pub producer: String,
}

/// The stand-in safekeeper's `iss` and `aud` (the app's defaults in tests).
pub const SK_ISSUER: &str = "http://127.0.0.1:5001";
pub const SK_AUDIENCE: &str = "platform";
/// The client id of the default producer's token.
pub const PRODUCER: &str = "test-producer";

/// Serves `ring`'s JWKS at `/.well-known/jwks.json`, as the authenticator
/// and the safekeeper do; returns its base URL.
pub async fn fake_issuer(ring: Arc<KeyRing>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let ring = ring.clone();
        App::new().route(
            "/.well-known/jwks.json",
            web::get().to(move || {
                let jwks = ring.jwks();
                async move { HttpResponse::Ok().json(jwks) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// A client-credentials access token of `client` for `scope`, signed by
/// `ring` as the safekeeper would sign it.
pub fn client_token(ring: &KeyRing, client: &str, scope: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    ring.sign(
        ACCESS_TYP,
        &AccessClaims {
            iss: SK_ISSUER.into(),
            sub: client.into(),
            aud: SK_AUDIENCE.into(),
            client_id: client.into(),
            scope: scope.into(),
            iat: now,
            exp: now + 3600,
            jti: uuid::Uuid::new_v4().to_string(),
            username: None,
            sid: None,
        },
    )
    .unwrap()
}

pub const RESTRICTIONS: &str = "access.restriction.v1";

/// The end offset of each partition of `topic` (created if missing). The
/// shared topic only grows, so tests read from a mark taken at their start,
/// not from the beginning.
pub async fn topic_end(brokers: &str, topic: &str) -> TopicPartitionList {
    ensure_topics(brokers, &[topic], 3, 1).await.unwrap();
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = client_config(&brokers)
            .set("group.id", format!("test-mark-{}", uuid::Uuid::new_v4()))
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(&topic), Duration::from_secs(60))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            let (_, high) = c
                .fetch_watermarks(&topic, p.id(), Duration::from_secs(60))
                .unwrap();
            tpl.add_partition_offset(&topic, p.id(), Offset::Offset(high))
                .unwrap();
        }
        tpl
    })
    .await
    .unwrap()
}

/// Reads `topic` from `from` until `done` says the events for `keys` read
/// so far are enough (or `timeout` passes); returns them in order.
pub async fn read_from(
    brokers: &str,
    from: &TopicPartitionList,
    keys: &HashSet<String>,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let consumer: StreamConsumer = client_config(brokers)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.assign(from).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Ok(Ok(m)) = tokio::time::timeout(left, consumer.recv()).await {
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            if key.is_some_and(|k| keys.contains(&k)) {
                out.push(serde_json::from_slice(m.payload().unwrap_or_default()).unwrap());
            }
        }
    }
    out
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with its options changed by `tweak` (the rules, say).
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Options)) -> TestApp {
    spawn_on(testkit::access_rule::database(), tweak).await
}

/// Starts the app on `db` (a fresh one, or a shared one for a restart).
pub async fn spawn_on(db: TestDatabase, tweak: impl FnOnce(&mut Options)) -> TestApp {
    let brokers = testkit::shared_brokers();
    let keys = Arc::new(KeyRing::new(SigningKey::generate().unwrap().0, vec![]));
    let mut o = Options::new(brokers.clone(), &db);
    o.safekeeper_url = fake_issuer(keys.clone()).await;
    o.safekeeper_issuer = SK_ISSUER.into();
    o.access_audience = SK_AUDIENCE.into();
    tweak(&mut o);
    let app = testing::spawn(o).await;
    TestApp {
        address: app.address.clone(),
        brokers,
        http: testkit::http_client(),
        db,
        app,
        producer: client_token(&keys, PRODUCER, "write:event"),
        keys,
    }
}

/// Publishes account `id`'s `iam.user.v1` event at `version`, as the
/// authenticator would.
pub async fn publish_account(
    app: &TestApp,
    id: &str,
    version: i64,
    is_active: bool,
    is_superuser: bool,
) {
    let producer = platform::events::producer(&app.brokers).unwrap();
    let e = Envelope::new(
        if version == 1 { Op::Create } else { Op::Update },
        "user",
        id,
        version,
        Source {
            service: "authenticator".into(),
            table: "accounts".into(),
        },
        None,
        Some(
            json!({"id": id, "username": format!("u{version}"), "is_active": is_active,
                    "is_superuser": is_superuser, "version": version}),
        ),
    );
    let payload = serde_json::to_vec(&e).unwrap();
    producer
        .send(
            FutureRecord::to("iam.user.v1").key(id).payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// A user id no other test uses.
pub fn new_user_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `POST /event` as the default producer.
    pub async fn post_event(&self, body: &Value) -> Response {
        self.post_event_as(Some(&self.producer), body).await
    }

    /// `POST /event` with `token` (or none).
    pub async fn post_event_as(&self, token: Option<&str>, body: &Value) -> Response {
        let mut req = self.http.post(self.url("/event")).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Posts an event that must be accepted; returns the outcome.
    pub async fn event(&self, body: Value) -> Value {
        let r = self.post_event(&body).await;
        assert_eq!(r.status(), StatusCode::OK, "{body}");
        r.json().await.unwrap()
    }

    pub async fn flag(&self, user: &str) -> Value {
        self.event(json!({"name": "flag_scam_message", "event_properties": {"user_id": user}}))
            .await
    }

    pub async fn card(&self, user: &str, zip: &str, last4: &str, spend: f64) -> Value {
        self.event(json!({"name": "add_credit_card", "event_properties": {
            "user_id": user, "zip_code": zip, "last_four_digits": last4, "total_spend": spend}}))
            .await
    }

    pub async fn chargeback(&self, user: &str, amount: f64) -> Value {
        self.event(
            json!({"name": "chargeback", "event_properties": {"user_id": user, "chargebacks": amount}}),
        )
        .await
    }

    pub async fn check(&self, what: &str, user: &str) -> Response {
        self.http
            .get(self.url(&format!("/{what}")))
            .query(&[("user_id", user)])
            .send()
            .await
            .unwrap()
    }

    async fn check_bool(&self, what: &str, field: &str, user: &str) -> bool {
        let r = self.check(what, user).await;
        assert_eq!(r.status(), StatusCode::OK, "{what} {user}");
        r.json::<Value>().await.unwrap()[field].as_bool().unwrap()
    }

    pub async fn can_message(&self, user: &str) -> bool {
        self.check_bool("canmessage", "can_message", user).await
    }

    pub async fn can_purchase(&self, user: &str) -> bool {
        self.check_bool("canpurchase", "can_purchase", user).await
    }

    pub async fn admin_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// An operator call that must succeed; returns the body.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let r = self.admin_as(OPERATOR_TOKEN, method, path, body).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }

    pub async fn user(&self, user: &str) -> Value {
        self.admin(Method::GET, &format!("/v1/admin/users/{user}"), None)
            .await
    }

    pub async fn rule(&self, rule: &str) -> Value {
        let all = self.admin(Method::GET, "/v1/admin/rules", None).await;
        all["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == rule)
            .cloned()
            .unwrap()
    }

    /// Counts rows of a table in the app's database.
    pub fn count(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut c = PgConnection::establish(&self.db.url).unwrap();
        sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result::<N>(&mut c)
            .unwrap()
            .n
    }

    /// The payloads this app wrote to its outbox for `key`, in order.
    pub fn outbox_payloads(&self, key: &str) -> Vec<Value> {
        #[derive(QueryableByName)]
        struct P {
            #[diesel(sql_type = diesel::sql_types::Jsonb)]
            payload: Value,
        }
        let mut c = PgConnection::establish(&self.db.url).unwrap();
        sql_query("SELECT payload FROM outbox WHERE message_key = $1 ORDER BY id")
            .bind::<diesel::sql_types::Text, _>(key)
            .load::<P>(&mut c)
            .unwrap()
            .into_iter()
            .map(|p| p.payload)
            .collect()
    }

    /// Where access.restriction.v1 ends now; see [`TestApp::restriction_events`].
    pub async fn mark(&self) -> TopicPartitionList {
        topic_end(&self.brokers, RESTRICTIONS).await
    }

    /// The access.restriction.v1 events for `keys` after `mark`: waits for
    /// `want`, then a moment more so that a duplicate would show.
    pub async fn restriction_events(
        &self,
        mark: &TopicPartitionList,
        keys: &[&str],
        want: usize,
    ) -> Vec<Envelope> {
        let keys: HashSet<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut got = read_from(&self.brokers, mark, &keys, Duration::from_secs(60), |e| {
            e.len() >= want
        })
        .await;
        let n = got.len();
        let more = read_from(
            &self.brokers,
            mark,
            &keys,
            Duration::from_millis(1500),
            |e| e.len() > n,
        )
        .await;
        got = if more.len() > n { more } else { got };
        got.into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect()
    }
}

/// The rule names in an outcome's `restricted`, `lifted` or `tripped`.
pub fn rules_in(outcome: &Value, key: &str) -> Vec<String> {
    outcome[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}
