//! Who may read which ledger.

use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{assert_problem, noon, past_day, spawn, PricedTask};

#[tokio::test]
async fn a_worker_cannot_read_another_workers_ledger_but_an_accountant_can() {
    let p = spawn().await;
    let (ann, ann_token) = p.worker().await;
    let (bob, bob_token) = p.worker().await;
    let (_, accountant) = p.worker_with("Accountant", "su_read:accounting").await;
    let task = PricedTask::new(300, 2_000, noon(past_day()));
    p.publish(&task.assigned(2, ann.id.parse::<Uuid>().unwrap()))
        .await;
    p.ledger_of(&ann_token, "me", 1).await;

    for path in [
        format!("/v1/accounting/accounts/{}/ledger", ann.id),
        format!("/v1/accounting/accounts/{}", ann.id),
    ] {
        let r = p.get(&bob_token, &path).await;
        let body = assert_problem(r, StatusCode::FORBIDDEN).await;
        assert_eq!(
            body["missing_scopes"],
            serde_json::json!(["su_read:accounting"])
        );
        assert_eq!(p.get(&accountant, &path).await.status(), StatusCode::OK);
    }
    // Their own, by id as by `me`.
    let own = p
        .get_json(
            &ann_token,
            &format!("/v1/accounting/accounts/{}/ledger", ann.id),
        )
        .await;
    assert_eq!(own["balance_cents"], -300);
    let bobs = p
        .get_json(&bob_token, "/v1/accounting/accounts/me/ledger")
        .await;
    assert_eq!(bobs["account_id"], bob.id.as_str());
    assert_eq!(bobs["entries"], serde_json::json!([]));
    let read = p
        .get_json(
            &accountant,
            &format!("/v1/accounting/accounts/{}/ledger", ann.id),
        )
        .await;
    assert_eq!(read["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tokens_without_the_scope_or_without_a_token_are_refused() {
    let p = spawn().await;
    let (worker, _) = p.worker().await;
    let task_only = p.token(&worker, "read:task").await;
    let r = p.get(&task_only, "/v1/accounting/accounts/me").await;
    let body = assert_problem(r, StatusCode::FORBIDDEN).await;
    assert_eq!(
        body["missing_scopes"],
        serde_json::json!(["read:accounting"])
    );
    let r = p
        .http
        .get(p.url("/v1/accounting/accounts/me"))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = p.get("not-a-token", "/v1/accounting/accounts/me").await;
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    // An Employee cannot even ask the safekeeper for management's scope.
    assert!(p
        .try_token(&worker.session, "su_read:accounting")
        .await
        .is_none());
}

#[tokio::test]
async fn a_worker_whose_role_is_revoked_or_whose_account_is_deactivated_is_refused() {
    let p = spawn().await;
    let (worker, token) = p.worker().await;
    assert_eq!(
        p.get(&token, "/v1/accounting/accounts/me").await.status(),
        StatusCode::OK
    );
    // The token still carries the scope; the read model says it is gone.
    p.revoke(&worker, "Employee").await;
    crate::helpers::eventually(30, "the revoked role to reach accounting", || async {
        let r = p.get(&token, "/v1/accounting/accounts/me").await;
        (r.status() == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
    p.deactivate(&worker.id).await;
    let r = crate::helpers::eventually(30, "the deactivation to reach accounting", || async {
        let r = p.get(&token, "/v1/accounting/accounts/me").await;
        (r.status() == StatusCode::UNAUTHORIZED).then_some(r)
    })
    .await;
    // Whichever arrives first: the account event, or the safekeeper's
    // revocation of the user's tokens that a deactivation brings.
    let body = assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("deactivated") || detail.contains("revoked"),
        "{body}"
    );
}
