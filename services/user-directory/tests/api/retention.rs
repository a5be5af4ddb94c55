//! Pruning: finished work past its window goes, in the background; what is
//! younger, or still has a use, stays.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn finished_work_past_its_window_is_pruned_and_the_rest_stays() {
    let app = spawn_with_workos(Tweaks {
        tweak: Box::new(|o| o.retention_interval = Some(Duration::from_millis(200))),
        ..Tweaks::default()
    })
    .await;
    // Their creations write outbox rows; the relay publishes them.
    let org = app.org_with_workos(Some("org_01HZRETENTION")).await;
    let r = app
        .create_user(&org, &format!("kept@{}.example", org.name), "member")
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    // Its creation record (completed, fresh) stays.
    assert_eq!(app.count("user_creations"), 1);
    eventually(30, "the organization's events published", || async {
        (app.count("outbox WHERE published_at IS NULL") == 0).then_some(())
    })
    .await;
    let outbox = app.count("outbox");
    assert!(outbox >= 2, "{outbox} outbox rows");

    // Two webhooks, applied (as events the directory does not follow).
    for id in ["event_old", "event_new"] {
        let event = json!({"id": id, "event": "connection.activated", "data": {},
                           "created_at": "2026-01-01T00:00:00.000Z"});
        assert_eq!(app.signed_webhook(&event).await.status(), StatusCode::OK);
    }
    eventually(30, "the webhooks applied", || async {
        (app.count("provider_events WHERE applied_at IS NOT NULL") == 2).then_some(())
    })
    .await;

    // Age some of each, past the default windows (outbox 7 days, provider
    // events 7, import jobs and creations 30).
    let org_id = &org.id;
    for sql in [
        "UPDATE outbox SET published_at = now() - interval '8 days'
          WHERE id = (SELECT min(id) FROM outbox)"
            .to_owned(),
        "UPDATE provider_events SET received_at = now() - interval '8 days'
          WHERE id = 'event_old'"
            .to_owned(),
        // Not applied yet (its next attempt is tomorrow): kept, however old.
        "INSERT INTO provider_events (id, event, payload, source, received_at, next_attempt_at)
         VALUES ('event_waiting', 'user.updated', '{}', 'webhook',
                 now() - interval '8 days', now() + interval '1 day')"
            .to_owned(),
        format!(
            "INSERT INTO import_jobs (id, organization_id, status, total, finished_at)
             VALUES (gen_random_uuid(), '{org_id}', 'finished', 1, now() - interval '31 days'),
                    (gen_random_uuid(), '{org_id}', 'finished', 1, now() - interval '1 day')"
        ),
        format!(
            "INSERT INTO user_creations
                 (id, email, provider_login, organization_id, role, state, updated_at)
             SELECT gen_random_uuid(), s || '@old.example', s || '@old.example', '{org_id}'::uuid,
                    'member', s, now() - interval '31 days'
             FROM unnest(ARRAY['completed', 'failed', 'compensated']) AS s
             UNION ALL
             SELECT gen_random_uuid(), 'new@new.example', 'new@new.example', '{org_id}'::uuid,
                    'member', 'completed', now() - interval '1 day'"
        ),
        "INSERT INTO provider_tasks (kind, reference_id, done_at, next_attempt_at)
         VALUES ('remove_user', 'user_old', now() - interval '31 days', now()),
                ('remove_user', 'user_new', now() - interval '1 day', now()),
                ('remove_user', 'user_due', NULL, now() + interval '1 day')"
            .to_owned(),
    ] {
        app.sql(&sql);
    }

    eventually(30, "what is past its window pruned", || async {
        let gone = app.count("provider_events WHERE id = 'event_old'") == 0
            && app.count("outbox") == outbox - 1
            && app.count("import_jobs") == 1
            && app.count("user_creations") == 3
            && app.count("provider_tasks") == 2;
        gone.then_some(())
    })
    .await;
    let ids = |table: &str, column: &str| {
        let mut ids = vec![];
        for candidate in ["event_new", "event_waiting", "user_new", "user_due"] {
            if app.count(&format!("{table} WHERE {column} = '{candidate}'")) == 1 {
                ids.push(candidate);
            }
        }
        ids
    };
    assert_eq!(
        ids("provider_events", "id"),
        ["event_new", "event_waiting"],
        "the fresh event and the one still to apply stay"
    );
    assert_eq!(
        app.count("user_creations WHERE state = 'compensated'"),
        1,
        "a compensated creation stays (it lets a retry take its account back)"
    );
    assert_eq!(
        app.count(
            "user_creations WHERE state = 'completed' AND updated_at > now() - interval '2 days'"
        ),
        2,
        "the fresh completed creations stay"
    );
    assert_eq!(
        ids("provider_tasks", "reference_id"),
        ["user_new", "user_due"]
    );
    assert_eq!(
        app.count("import_jobs WHERE finished_at > now() - interval '2 days'"),
        1
    );
    assert_eq!(app.count("outbox WHERE published_at IS NULL"), 0);

    // An operator sees what went, by table.
    let metrics = app
        .call(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    for table in [
        "outbox",
        "provider_events",
        "import_jobs",
        "user_creations",
        "provider_tasks",
    ] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("rows_pruned_total{") && l.contains(&format!("kind=\"{table}\""))
            })
            .unwrap_or_else(|| panic!("no rows_pruned_total for {table} in {metrics}"));
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1, "{line}");
    }
}
