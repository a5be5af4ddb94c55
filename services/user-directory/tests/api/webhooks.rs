use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const WORKOS_ORG: &str = "org_01HZTESTHOOKS";

fn user_event(
    id: &str,
    event: &str,
    user: &str,
    email: &str,
    first: &str,
    updated_at: &str,
) -> Value {
    json!({"id": id, "event": event, "created_at": updated_at,
           "data": {"object": "user", "id": user, "email": email, "first_name": first, "last_name": "L",
                    "created_at": "2026-01-01T00:00:00.000Z", "updated_at": updated_at}})
}

#[tokio::test]
async fn webhook_signatures_golden_cases() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let body = user_event(
        "event_sig_1",
        "user.created",
        "user_sig_1",
        "sig@example.com",
        "Sig",
        "2026-01-01T00:00:00.000Z",
    )
    .to_string();
    let now = chrono::Utc::now().timestamp_millis();
    // Missing header, forged, tampered, wrong secret, stale, future, malformed.
    let cases = [
        ("missing", None),
        ("wrong secret", Some(sign("whsec_not_ours", now, &body))),
        ("stale", Some(sign(WEBHOOK_SECRET, now - 181_000, &body))),
        ("future", Some(sign(WEBHOOK_SECRET, now + 181_000, &body))),
        ("malformed", Some("v1=abc".to_owned())),
        ("garbage signature", Some(format!("t={now}, v1=00ff"))),
    ];
    for (what, header) in cases {
        let p = assert_problem(app.webhook(&body, header).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            p["type"], "https://errors.platform.example/invalid-signature",
            "{what}"
        );
    }
    let tampered = body.replace("Sig", "Evil");
    let p = assert_problem(
        app.webhook(&tampered, Some(sign(WEBHOOK_SECRET, now, &body)))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(p["detail"], "the signature does not match");
    assert_eq!(app.count("provider_events"), 0, "nothing stored");
    // The valid one, as sent (its raw bytes, whitespace and all).
    let spaced = body.replace(",", ", ");
    let r = app
        .webhook(&spaced, Some(sign(WEBHOOK_SECRET, now, &spaced)))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.count("provider_events"), 1);
    eventually(20, "the webhook applied", || async {
        (app.count("users WHERE reference_id = 'user_sig_1'") == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn out_of_order_and_duplicate_deliveries_apply_only_what_is_newer() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let r = app
        .create_user(&org, &format!("order@{}.example", org.name), "member")
        .await;
    let user: Value = r.json().await.unwrap();
    let (id, reference, email) = (
        user["id"].as_str().unwrap(),
        user["reference_id"].as_str().unwrap(),
        user["email"].as_str().unwrap(),
    );
    let t1 = (chrono::Utc::now() + chrono::Duration::seconds(10)).to_rfc3339();
    let t2 = (chrono::Utc::now() + chrono::Duration::seconds(20)).to_rfc3339();
    // The newer change arrives first, the older one after it.
    let newer = user_event(
        "event_order_2",
        "user.updated",
        reference,
        email,
        "Newer",
        &t2,
    );
    let older = user_event(
        "event_order_1",
        "user.updated",
        reference,
        email,
        "Older",
        &t1,
    );
    assert_eq!(app.signed_webhook(&newer).await.status(), StatusCode::OK);
    assert_eq!(app.signed_webhook(&older).await.status(), StatusCode::OK);
    // WorkOS retries: the same event again is acknowledged and not applied twice.
    let r = app.signed_webhook(&newer).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], true);
    eventually(20, "both events applied", || async {
        (app.count("provider_events WHERE applied_at IS NOT NULL") == 2).then_some(())
    })
    .await;
    // Applied: the directory answers with it (each replica's copy follows
    // within milliseconds of the commit).
    let user_now = || async {
        app.call(
            Method::GET,
            &format!("/v1/users/{id}"),
            Some(&org.token),
            None,
        )
        .await
    };
    eventually(5, "the newer name in the directory", || async {
        let v: Value = user_now().await.json().await.ok()?;
        (v["first_name"] == "Newer").then_some(())
    })
    .await;
    assert_eq!(
        app.count("provider_events WHERE outcome LIKE 'ignored: older%'"),
        1
    );
    // Membership: a role change, then a stale one.
    let m = user["membership_id"].as_str().unwrap();
    let m_ref = app.fake().memberships()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let membership = |eid: &str, role: &str, at: &str| {
        json!({"id": eid, "event": "organization_membership.updated", "created_at": at,
        "data": {"object": "organization_membership", "id": m_ref, "user_id": reference, "organization_id": WORKOS_ORG,
                 "role": {"slug": role}, "status": "active", "updated_at": at}})
    };
    app.signed_webhook(&membership("event_m_2", "admin", &t2))
        .await;
    app.signed_webhook(&membership("event_m_1", "viewer", &t1))
        .await;
    eventually(20, "the membership events applied", || async {
        (app.count("provider_events WHERE applied_at IS NOT NULL") == 4).then_some(())
    })
    .await;
    eventually(5, "the newer role in the directory", || async {
        let v: Value = user_now().await.json().await.ok()?;
        (v["role"] == "admin").then_some(())
    })
    .await;
    let events = app.events_for("directory.membership.v1", &[m], 2).await;
    assert_eq!(
        events.last().unwrap().after.as_ref().unwrap()["role"],
        "admin"
    );
    // A deletion, then a late update: the user stays deleted.
    let t3 = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
    app.signed_webhook(&user_event(
        "event_order_3",
        "user.deleted",
        reference,
        email,
        "Gone",
        &t3,
    ))
    .await;
    let t4 = (chrono::Utc::now() + chrono::Duration::seconds(40)).to_rfc3339();
    app.signed_webhook(&user_event(
        "event_order_4",
        "user.updated",
        reference,
        email,
        "Zombie",
        &t4,
    ))
    .await;
    eventually(20, "the deletion applied", || async {
        (app.count("provider_events WHERE applied_at IS NOT NULL") == 6).then_some(())
    })
    .await;
    eventually(5, "the deletion in the directory", || async {
        (user_now().await.status() == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert_problem(user_now().await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_deletion_delivered_before_the_creation_keeps_the_user_deleted() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let (r, e) = (
        "user_01HZEARLYDELETE",
        format!("early@{}.example", org.name),
    );
    app.signed_webhook(&user_event(
        "event_d_2",
        "user.deleted",
        r,
        &e,
        "E",
        "2026-02-02T00:00:00.000Z",
    ))
    .await;
    app.signed_webhook(&user_event(
        "event_d_1",
        "user.created",
        r,
        &e,
        "E",
        "2026-02-01T00:00:00.000Z",
    ))
    .await;
    eventually(20, "both applied", || async {
        (app.count("provider_events WHERE applied_at IS NOT NULL") == 2).then_some(())
    })
    .await;
    assert_eq!(
        app.count(&format!(
            "users WHERE reference_id = '{r}' AND deleted_at IS NULL"
        )),
        0
    );
    // A membership for a user not known yet waits for the user.
    let (u, ue) = ("user_01HZLATEUSER", format!("late@{}.example", org.name));
    app.signed_webhook(&json!({"id": "event_m_early", "event": "organization_membership.created", "created_at": "2026-02-01T00:00:01.000Z",
        "data": {"object": "organization_membership", "id": "om_01HZLATE", "user_id": u, "organization_id": WORKOS_ORG,
                 "role": {"slug": "viewer"}, "status": "active", "updated_at": "2026-02-01T00:00:01.000Z"}})).await;
    app.signed_webhook(&user_event(
        "event_u_late",
        "user.created",
        u,
        &ue,
        "Late",
        "2026-02-01T00:00:00.000Z",
    ))
    .await;
    let found = eventually(30, "the late membership applied", || async {
        let v = app.users(&org, &format!("email={ue}")).await;
        (v["total"] == 1).then_some(v)
    })
    .await;
    assert_eq!(found["items"][0]["role"], "viewer");
}
