//! WorkOS organization events (`organization.created|updated|deleted`), by
//! webhook or the Events API, for the organizations named in the
//! directory's file.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{fake_workos::organization, helpers::*};

const WORKOS_ORG: &str = "org_01HZORGEVENTS";
const T0: &str = "2026-03-01T00:00:00.000Z";
const T1: &str = "2026-03-02T00:00:00.000Z";
const T2: &str = "2026-03-03T00:00:00.000Z";

fn org_event(id: &str, event: &str, data: Value) -> Value {
    let at = data["updated_at"].clone();
    json!({"object": "event", "id": id, "event": event, "data": data, "created_at": at})
}

async fn get_org(app: &TestApp, org: &Org) -> Value {
    let r = app
        .call(
            Method::GET,
            &format!("/org/get?organization_name={}", org.name),
            Some(&org.token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn applied(app: &TestApp, n: i64) {
    eventually(20, &format!("{n} provider events applied"), || async {
        (app.count("provider_events WHERE applied_at IS NOT NULL") == n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn organization_events_show_the_providers_name_and_domains_beside_the_local_name() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let before = get_org(&app, &org).await;
    assert!(before.get("provider").is_none(), "{before}");
    let version = before["version"].as_i64().unwrap();
    // Created, by webhook.
    let created = org_event(
        "event_org_created",
        "organization.created",
        organization(WORKOS_ORG, "Foo Corp", &["foo-corp.com"], T0),
    );
    assert_eq!(app.signed_webhook(&created).await.status(), StatusCode::OK);
    let v = eventually(20, "the creation applied", || async {
        let v = get_org(&app, &org).await;
        (v["provider"]["name"] == "Foo Corp").then_some(v)
    })
    .await;
    assert_eq!(v["organization_name"], org.name, "the local name stays");
    assert_eq!(v["provider"]["workos_id"], WORKOS_ORG);
    assert_eq!(v["provider"]["domains"], json!(["foo-corp.com"]));
    assert_eq!(v["provider"]["status"], "active");
    assert_eq!(v["version"], version + 1);
    // Updated, through the Events API only (its webhook never came).
    app.fake().push_event(
        "organization.updated",
        organization(
            WORKOS_ORG,
            "Foo Corporation",
            &["foo.example", "Foo-Corp.com"],
            T1,
        ),
    );
    let v = eventually(20, "the update applied", || async {
        let v = get_org(&app, &org).await;
        (v["provider"]["name"] == "Foo Corporation").then_some(v)
    })
    .await;
    assert_eq!(
        v["provider"]["domains"],
        json!(["foo-corp.com", "foo.example"])
    );
    assert_eq!(v["version"], version + 2);
    assert_eq!(v["organization_name"], org.name);
    // Members are still added under the local name.
    let r = app
        .create_user(&org, &format!("ada@{}.example", org.name), "member")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Each change is published as an update of the organization.
    let events = app
        .events_for("directory.organization.v1", &[&org.id], 3)
        .await;
    let last = &events[2];
    assert_eq!(serde_json::to_value(last.op).unwrap(), json!("u"));
    assert_eq!(last.version, version + 2);
    let after = last.after.as_ref().unwrap();
    assert_eq!(after["organization_name"], org.name);
    assert_eq!(after["provider"]["name"], "Foo Corporation");
    assert_eq!(
        last.before.as_ref().unwrap()["provider"]["name"],
        "Foo Corp"
    );
}

#[tokio::test]
async fn an_older_organization_update_after_a_newer_one_changes_nothing_and_a_duplicate_applies_once(
) {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let version = get_org(&app, &org).await["version"].as_i64().unwrap();
    let newer = org_event(
        "event_org_2",
        "organization.updated",
        organization(WORKOS_ORG, "Newer", &["newer.example"], T2),
    );
    let older = org_event(
        "event_org_1",
        "organization.updated",
        organization(WORKOS_ORG, "Older", &["older.example"], T1),
    );
    let oldest = org_event(
        "event_org_0",
        "organization.created",
        organization(WORKOS_ORG, "Oldest", &[], T0),
    );
    assert_eq!(app.signed_webhook(&newer).await.status(), StatusCode::OK);
    applied(&app, 1).await;
    assert_eq!(app.signed_webhook(&older).await.status(), StatusCode::OK);
    assert_eq!(app.signed_webhook(&oldest).await.status(), StatusCode::OK);
    // WorkOS delivers again: acknowledged, not applied twice.
    let r = app.signed_webhook(&newer).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], true);
    applied(&app, 3).await;
    let v = get_org(&app, &org).await;
    assert_eq!(v["provider"]["name"], "Newer");
    assert_eq!(v["provider"]["domains"], json!(["newer.example"]));
    assert_eq!(v["version"], version + 1, "one change applied, once");
    assert_eq!(
        app.count("provider_events WHERE outcome LIKE 'ignored: older%'"),
        2
    );
    let events = app
        .events_for("directory.organization.v1", &[&org.id], 2)
        .await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].after.as_ref().unwrap()["provider"]["name"],
        "Newer"
    );
}

#[tokio::test]
async fn an_unconfigured_organization_is_ignored_and_a_configured_one_is_recorded_before_it_exists()
{
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let version = get_org(&app, &org).await["version"].as_i64().unwrap();
    let stranger = org_event(
        "event_org_stranger",
        "organization.updated",
        organization(
            "org_01HZNOTINTHEFILE",
            "Stranger",
            &["stranger.example"],
            T1,
        ),
    );
    assert_eq!(app.signed_webhook(&stranger).await.status(), StatusCode::OK);
    applied(&app, 1).await;
    assert_eq!(
        app.count(
            "provider_events WHERE outcome = 'ignored: organization not in the directory config'"
        ),
        1
    );
    assert_eq!(app.count("provider_organizations"), 0);
    let v = get_org(&app, &org).await;
    assert!(v.get("provider").is_none(), "{v}");
    assert_eq!(v["version"], version);
    // Named in the file but not created here yet: WorkOS's view is kept,
    // and shown once the organization is created.
    let (later_id, name) = ("org_01HZLATERORG", unique("later"));
    app.add_config_org(&name, Some(later_id));
    let created = org_event(
        "event_org_later",
        "organization.created",
        organization(later_id, "Later Inc", &["later.example"], T0),
    );
    assert_eq!(app.signed_webhook(&created).await.status(), StatusCode::OK);
    applied(&app, 2).await;
    let email = format!("admin@{name}.example");
    let r = app.create_org(&name, &email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let later = Org {
        id: r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        token: app.token(&email, PASSWORD).await,
        name,
        email,
    };
    let v = get_org(&app, &later).await;
    assert_eq!(v["provider"]["name"], "Later Inc");
    assert_eq!(v["provider"]["domains"], json!(["later.example"]));
}

#[tokio::test]
async fn an_organization_deleted_at_workos_with_members_is_marked_not_removed() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some(WORKOS_ORG)).await;
    let r = app
        .create_user(&org, &format!("ada@{}.example", org.name), "member")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let user: Value = r.json().await.unwrap();
    let member = user["id"].as_str().unwrap().to_owned();
    let deleted = org_event(
        "event_org_deleted",
        "organization.deleted",
        organization(WORKOS_ORG, "Foo Corp", &["foo-corp.com"], T1),
    );
    assert_eq!(app.signed_webhook(&deleted).await.status(), StatusCode::OK);
    let v = eventually(20, "the deletion applied", || async {
        let v = get_org(&app, &org).await;
        (v["provider"]["status"] == "deleted").then_some(v)
    })
    .await;
    assert!(v["provider"]["deleted_at"].is_string(), "{v}");
    // The organization and its member are still there, readable by its admin.
    assert_eq!(
        app.count(&format!("organizations WHERE id = '{}'", org.id)),
        1
    );
    assert_eq!(app.users(&org, "").await["total"], 1);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/users/{member}"),
            Some(&org.token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // It takes no new members, one by one or by import.
    let p = assert_problem(
        app.create_user(&org, &format!("alan@{}.example", org.name), "member")
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        p["type"],
        "https://errors.platform.example/organization-deleted-at-provider"
    );
    let rows = json!([{"email": format!("grace@{}.example", org.name), "first_name": "G",
                       "last_name": "H", "organization": org.name, "role": "member"}]);
    let p = assert_problem(
        app.import(&org, "application/json", rows.to_string()).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        p["type"],
        "https://errors.platform.example/organization-deleted-at-provider"
    );
    assert_eq!(app.fake().memberships().len(), 1, "WorkOS was not asked");
    // A later update cannot bring it back.
    let zombie = org_event(
        "event_org_zombie",
        "organization.updated",
        organization(WORKOS_ORG, "Zombie Corp", &[], T2),
    );
    assert_eq!(app.signed_webhook(&zombie).await.status(), StatusCode::OK);
    applied(&app, 2).await;
    let v = get_org(&app, &org).await;
    assert_eq!(v["provider"]["status"], "deleted");
    assert_eq!(v["provider"]["name"], "Foo Corp");
    // Its members' changes are ignored; their deletions (which WorkOS
    // sends for a deleted organization's members) apply.
    let m_ref = app.fake().memberships()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let membership = |id: &str, event: &str, role: &str, at: &str| {
        json!({"object": "event", "id": id, "event": event, "created_at": at,
               "data": {"object": "organization_membership", "id": m_ref,
                        "user_id": user["reference_id"], "organization_id": WORKOS_ORG,
                        "role": {"slug": role}, "status": "active", "updated_at": at}})
    };
    let promoted = membership(
        "event_m_promoted",
        "organization_membership.updated",
        "admin",
        T1,
    );
    assert_eq!(app.signed_webhook(&promoted).await.status(), StatusCode::OK);
    applied(&app, 3).await;
    assert_eq!(app.users(&org, "").await["items"][0]["role"], "member");
    let removed = membership(
        "event_m_removed",
        "organization_membership.deleted",
        "member",
        T2,
    );
    assert_eq!(app.signed_webhook(&removed).await.status(), StatusCode::OK);
    applied(&app, 4).await;
    assert_eq!(app.users(&org, "").await["total"], 0);
    // Published as an update of the organization, which still exists here.
    let events = app
        .events_for("directory.organization.v1", &[&org.id], 2)
        .await;
    assert_eq!(serde_json::to_value(events[1].op).unwrap(), json!("u"));
    assert_eq!(
        events[1].after.as_ref().unwrap()["provider"]["status"],
        "deleted"
    );
    // Its admin removes it.
    let r = app
        .call(
            Method::DELETE,
            &format!("/org/delete?organization_name={}", org.name),
            Some(&org.token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.count("organizations"), 0);
}
