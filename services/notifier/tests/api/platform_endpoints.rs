use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{message_id, notification, publish, start};

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served_and_sent_mail_is_counted() {
    let h = start().await;
    let get = |path: &str| reqwest::get(format!("{}{path}", h.app.address));
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    let ready = testkit::eventually(30, "readiness", || async {
        let r = get("/readyz").await.ok()?;
        (r.status() == StatusCode::OK).then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["broker"], "ok");
    let spec: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert_eq!(spec["info"]["title"], "notifier");

    let n = notification("payout", &["ann@example.com"]);
    publish(&h.brokers, "accounting", &n).await;
    let id = message_id(n.id);
    h.sink
        .wait_for(30, "the mail", |m| m.message_id.as_deref() == Some(&id))
        .await;
    h.wait_for_status(n.id, "sent").await;
    let metrics = testkit::text_of(&format!("{}/metrics", h.app.address)).await;
    assert!(
        metrics.contains(r#"notifications_sent_total{service="notifier",kind="payout"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("events_applied_total"), "{metrics}");
    h.app.stop().await;
}
