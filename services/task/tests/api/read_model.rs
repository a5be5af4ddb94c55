//! The users read model: applied idempotently by version, one version per
//! topic, and rebuilt exactly from the earliest offset.

use diesel::{Connection, PgConnection};
use platform::events::{topics, Envelope, Op, Source};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{spawn, task_options, EMPLOYEE_SCOPES};

fn user_event(id: Uuid, version: i64, active: bool) -> Envelope {
    Envelope::new(
        Op::Update,
        "user",
        id.to_string(),
        version,
        Source {
            service: "authenticator".into(),
            table: "accounts".into(),
        },
        None,
        Some(
            json!({"id": id, "username": format!("v{version}"), "is_active": active,
                    "email": "x@example.com", "is_superuser": false}),
        ),
    )
}

fn grant_event(id: Uuid, version: i64, roles: &[&str]) -> Envelope {
    Envelope::new(
        Op::Update,
        "user_role",
        id.to_string(),
        version,
        Source {
            service: "safekeeper".into(),
            table: "user_role".into(),
        },
        None,
        Some(json!({"user_id": id, "roles": roles, "scopes": ["read:task"]})),
    )
}

#[test]
fn events_apply_once_by_version_and_each_topic_keeps_its_own_version() {
    let db = testkit::task::database();
    platform::db::migrate(&db.url, task::startup::MIGRATIONS).unwrap();
    let mut c = PgConnection::establish(&db.url).unwrap();
    let id = Uuid::new_v4();
    let apply = |c: &mut PgConnection, topic: &str, e: &Envelope| {
        task::consumer::apply(c, topic, e).unwrap();
        task::store::user(c, id).unwrap().unwrap()
    };
    // Grants may arrive before the account: the user is not usable yet.
    let u = apply(
        &mut c,
        topics::USER_ROLE,
        &grant_event(id, 5, &["Employee"]),
    );
    assert!(!u.known() && !u.usable());
    assert_eq!(u.roles, ["Employee"]);
    // The account's version 2 is applied although 2 < the grants' 5.
    let u = apply(&mut c, topics::USER, &user_event(id, 2, true));
    assert!(u.usable());
    assert_eq!(u.username.as_deref(), Some("v2"));
    assert_eq!(u.roles, ["Employee"]);
    // Older and repeated events change nothing.
    let u = apply(&mut c, topics::USER, &user_event(id, 1, false));
    assert!(u.is_active && u.user_version == 2);
    let u = apply(&mut c, topics::USER, &user_event(id, 2, false));
    assert!(u.is_active);
    let u = apply(&mut c, topics::USER_ROLE, &grant_event(id, 4, &[]));
    assert_eq!(u.roles, ["Employee"]);
    // Newer ones apply.
    let u = apply(
        &mut c,
        topics::USER_ROLE,
        &grant_event(id, 6, &["Employer"]),
    );
    assert_eq!(
        (u.roles.as_slice(), u.role_version),
        (&["Employer".to_owned()][..], 6)
    );
    let u = apply(&mut c, topics::USER, &user_event(id, 3, false));
    assert!(u.known() && !u.usable());
    // Other topics are not ours.
    task::consumer::apply(
        &mut c,
        topics::MEMBERSHIP,
        &user_event(Uuid::new_v4(), 1, true),
    )
    .unwrap();
}

#[tokio::test]
async fn the_read_model_rebuilds_from_the_earliest_offset() {
    let mut p = spawn().await;
    let ann = p.person(Some("Employee")).await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    assert_eq!(
        p.post(&at, "/v1/task/own", json!({})).await.status(),
        StatusCode::OK
    );
    let before = p.read_model(&ann.id).await.unwrap();

    // `task rebuild-read-model`: stop, empty the table and reset the same
    // group to the earliest offset, start again: everything is replayed
    // (as it would be for a new CONSUMER_GROUP) into the same rows.
    let app = p.task_app.take().unwrap();
    let opts = task_options(&p.brokers, &p.task_db, &p.sk);
    let group = p.task_group.clone();
    app.stop().await;
    let mut o = opts;
    o.consumer_group = group;
    o.skip_history = false;
    let settings = testkit::task::settings(&o);
    task::rebuild::rebuild_read_model(&settings).await.unwrap();
    {
        let mut c = PgConnection::establish(&p.task_db.url).unwrap();
        assert!(task::store::user(&mut c, ann.id.parse().unwrap())
            .unwrap()
            .is_none());
    }
    let again = testkit::task::spawn(o).await;
    p.task = again.address.clone();
    p.task_app = Some(again);
    // A replay of the shared broker's whole history: minutes on a busy machine.
    let after = p
        .wait_for_user_within(300, &ann.id, |u| {
            u["role_version"] == before["role_version"]
                && u["user_version"] == before["user_version"]
        })
        .await;
    for field in [
        "username",
        "active",
        "roles",
        "scopes",
        "user_version",
        "role_version",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(
        p.post(&at, "/v1/task/own", json!({})).await.status(),
        StatusCode::OK
    );
}
