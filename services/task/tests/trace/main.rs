//! One trace from service to service: a registration sent to the
//! authenticator with a W3C `traceparent` is applied by the task service
//! (through `iam.user.v1` on Kafka) inside the same trace, so that the
//! trace id finds every log line of it in both services.
//!
//! A test binary of its own: it installs the process's log subscriber, to
//! read what the services log.

use reqwest::StatusCode;
use serde_json::json;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test]
async fn a_registration_is_followed_by_its_trace_id_from_the_authenticator_to_the_task_service() {
    let logs = testkit::CapturedLogs::install("info,task=debug,platform=debug,rdkafka=warn");
    let p = testkit::TestPlatform::builder().build().await;
    let task_db = testkit::task::database();
    let mut o = testkit::task::Options::new(p.brokers.clone(), &task_db, &p.sk);
    o.issuer = testkit::safekeeper::ISSUER.into();
    o.audience = testkit::safekeeper::AUDIENCE.into();
    let _task = testkit::task::spawn(o).await;

    let name = format!("t.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let r = p
        .http
        .post(format!("{}/v1/user", p.auth))
        .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
        .json(&json!({"username": name, "password": testkit::PASSWORD,
                      "email": format!("{name}@example.com"),
                      "firstname": "Trace", "lastname": "Able"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The task service applies the account inside the registration's trace.
    let text = testkit::eventually(60, "the account applied in its trace", || {
        let logs = logs.clone();
        let id = id.clone();
        async move {
            let text = logs.text();
            text.lines()
                .any(|l| {
                    l.contains("account applied")
                        && l.contains(&id)
                        && l.contains(&format!("trace_id={TRACE_ID}"))
                })
                .then_some(text)
        }
    })
    .await;
    // And the authenticator served the registration in it.
    assert!(
        text.lines().any(|l| l.contains("http.request")
            && l.contains(&format!("trace_id={TRACE_ID}"))
            && l.contains("/v1/user")),
        "{text}"
    );
}
