//! What the deliveries table keeps, and for how long.

use chrono::{Duration, Utc};
use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use notifier::store::{self, NewDelivery};
use uuid::Uuid;

fn new_delivery() -> NewDelivery {
    NewDelivery {
        id: Uuid::now_v7(),
        kind: "payout".into(),
        source: "accounting".into(),
        recipients: vec!["ann@example.com".into()],
        subject: "Your payout".into(),
        body: "Paid.".into(),
        request_id: None,
        traceparent: None,
    }
}

#[test]
fn a_notification_recorded_twice_is_one_delivery() {
    let db = testkit::notifier::database();
    let mut c = PgConnection::establish(&db.url).unwrap();
    let d = new_delivery();
    assert!(store::record(&mut c, &d).unwrap());
    assert!(!store::record(&mut c, &d).unwrap());
    let stored = store::delivery(&mut c, d.id).unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.attempts), ("pending", 0));
}

#[test]
fn only_deliveries_sent_before_the_cutoff_are_pruned() {
    let db = testkit::notifier::database();
    let mut c = PgConnection::establish(&db.url).unwrap();
    let (old_sent, new_sent, old_failed, pending) = (
        new_delivery(),
        new_delivery(),
        new_delivery(),
        new_delivery(),
    );
    for d in [&old_sent, &new_sent, &old_failed, &pending] {
        store::record(&mut c, d).unwrap();
    }
    store::mark_sent(&mut c, old_sent.id).unwrap();
    store::mark_sent(&mut c, new_sent.id).unwrap();
    store::mark_failed(&mut c, old_failed.id, "refused").unwrap();
    sql_query(
        "UPDATE deliveries SET sent_at = now() - interval '40 days', \
                failed_at = now() - interval '40 days', created_at = now() - interval '40 days' \
          WHERE id = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(vec![old_sent.id, old_failed.id])
    .execute(&mut c)
    .unwrap();

    let pruned = store::prune_sent(&mut c, Utc::now() - Duration::days(30), 100).unwrap();
    assert_eq!(pruned, 1);
    assert!(store::delivery(&mut c, old_sent.id).unwrap().is_none());
    for kept in [new_sent.id, old_failed.id, pending.id] {
        assert!(store::delivery(&mut c, kept).unwrap().is_some());
    }
}

#[test]
fn a_claimed_delivery_is_not_claimed_again_until_its_lease_is_over() {
    let db = testkit::notifier::database();
    let mut c = PgConnection::establish(&db.url).unwrap();
    let d = new_delivery();
    store::record(&mut c, &d).unwrap();
    let lease = std::time::Duration::from_secs(60);
    let claimed = store::claim_due(&mut c, lease).unwrap().unwrap();
    assert_eq!((claimed.id, claimed.attempts), (d.id, 1));
    // Another sender (another replica) finds nothing due meanwhile.
    let mut other = PgConnection::establish(&db.url).unwrap();
    assert!(store::claim_due(&mut other, lease).unwrap().is_none());
    // The first died mid-attempt: once the lease is over, it is taken again.
    sql_query("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'")
        .execute(&mut c)
        .unwrap();
    let again = store::claim_due(&mut other, lease).unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (d.id, 2));
}
