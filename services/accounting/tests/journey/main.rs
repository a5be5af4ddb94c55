//! Popug's whole loop through the real services: a priced task is created,
//! assigned and completed in the task service; accounting charges the fee
//! and pays the reward from `task.v1`; analytics shows the earnings and the
//! day's most expensive task; the day's close pays the balance out once,
//! and the notifier mails the worker once, over SMTP.

use chrono::{Duration as Days, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{eventually, SmtpSink, TestPlatform};

const EMPLOYER_SCOPES: &str = "create:task,su_read:task,su_edit:task,edit:task";
const IN_PROGRESS: i64 = 2;
const COMPLETED: i64 = 4;

#[tokio::test]
async fn a_completed_task_shows_in_the_ledger_and_the_close_pays_and_mails_once() {
    let p = TestPlatform::builder().build().await;
    let sink = SmtpSink::start();
    let (task_db, accounting_db, notifier_db, analytics_db) = (
        testkit::task::database(),
        testkit::accounting::database(),
        testkit::notifier::database(),
        testkit::analytics::database(),
    );
    let mut o = testkit::task::Options::new(p.brokers.clone(), &task_db, &p.sk);
    o.issuer = testkit::safekeeper::ISSUER.into();
    o.audience = testkit::safekeeper::AUDIENCE.into();
    let task = testkit::task::spawn(o).await;
    let mut o = testkit::accounting::Options::new(p.brokers.clone(), &accounting_db, &p.sk);
    o.issuer = testkit::safekeeper::ISSUER.into();
    o.audience = testkit::safekeeper::AUDIENCE.into();
    let accounting = testkit::accounting::spawn(o).await;
    let mut o = testkit::analytics::Options::new(p.brokers.clone(), &analytics_db, &p.sk);
    o.issuer = testkit::safekeeper::ISSUER.into();
    o.audience = testkit::safekeeper::AUDIENCE.into();
    // What other tests wrote on the shared broker before does not count.
    o.skip_history = true;
    let analytics = testkit::analytics::spawn(o).await;
    let _notifier = testkit::notifier::spawn(testkit::notifier::Options::new(
        p.brokers.clone(),
        &notifier_db,
        sink.port(),
    ))
    .await;
    p.create_client(json!({"client_id": "closer", "name": "Daily close", "client_secret": "closer-secret-0123456789",
                           "grant_types": ["client_credentials"], "scopes": ["close:accounting"]}))
        .await;

    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bob = p.person(Some("Employee")).await;
    let admin = p.person(Some("admin")).await;
    let bt = p.token(&boss, EMPLOYER_SCOPES).await;
    let at = p.token(&ann, "read:task,edit:task,read:accounting").await;
    let bobt = p.token(&bob, "read:task,edit:task").await;
    let admint = p.token(&admin, "read:analytics").await;

    // A task for `who` at `price_cents`, created by the employer, which
    // `token` (the assignee's) moves to Completed; the task as created.
    let complete = |who: String, token: String, title: &'static str, price_cents: i64| {
        let (p, bt, address) = (&p, &bt, &task.address);
        async move {
            let created: Value = eventually(60, "the task service to know the worker", || async {
                let r = p
                    .http
                    .post(format!("{address}/v1/task"))
                    .bearer_auth(bt)
                    .json(&json!({"title": title, "type_id": 1,
                                  "assignee": who, "price_cents": price_cents}))
                    .send()
                    .await
                    .unwrap();
                (r.status() == StatusCode::CREATED).then_some(r.json().await.unwrap())
            })
            .await;
            let id = created["id"].as_str().unwrap().to_owned();
            for to in [IN_PROGRESS, COMPLETED] {
                let r = p
                    .http
                    .post(format!("{address}/v1/tasks/{id}"))
                    .bearer_auth(&token)
                    .json(&json!({"status_id": to}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
            }
            created
        }
    };
    // A task of 20.00 for Ann: a fee of 10.00 and a reward of 20.00.
    let created = complete(ann.username.clone(), at.clone(), "Count the parrots", 2000).await;
    assert_eq!(created["assignment_fee_cents"], 1000);
    assert_eq!(created["completion_reward_cents"], 2000);
    // One for Bob at a price no other test completes: today's most
    // expensive task.
    let dear = complete(bob.username.clone(), bobt, "Paint the sky", 99_999_937).await;

    // Ann's ledger: the fee, then the reward; a balance of 10.00.
    let url = |path: &str| format!("{}{path}", accounting.address);
    let ledger = eventually(60, "the fee and the reward in Ann's ledger", || async {
        let v =
            testkit::json_of_with(&p.http, &url("/v1/accounting/accounts/me/ledger"), &at).await?;
        (v["entries"].as_array()?.len() == 2).then_some(v)
    })
    .await;
    let amounts: Vec<(String, i64)> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        [("fee".to_owned(), -1000), ("reward".to_owned(), 2000)]
    );
    let account = testkit::json_of_with(&p.http, &url("/v1/accounting/accounts/me"), &at)
        .await
        .unwrap();
    assert_eq!(account["balance_cents"], 1000);

    // Analytics, from the ledger's events: today's earnings hold both
    // tasks' fees and rewards (other tests' too, so at least), and Bob's
    // task is today's most expensive, titled.
    let today = Utc::now().date_naive().to_string();
    let analytics_url = |path: &str| format!("{}{path}", analytics.address);
    eventually(60, "both tasks' money in analytics' earnings", || async {
        let v = testkit::json_of_with(
            &p.http,
            &analytics_url("/v1/analytics/earnings/today"),
            &admint,
        )
        .await?;
        (v["fees_cents"].as_i64()? >= 1000 + 49_999_969
            && v["rewards_cents"].as_i64()? >= 2000 + 99_999_937
            && v["earnings_cents"].as_i64()?
                == v["fees_cents"].as_i64()? - v["rewards_cents"].as_i64()?)
        .then_some(())
    })
    .await;
    let top = eventually(60, "Bob's task as today's most expensive", || async {
        let v = testkit::json_of_with(
            &p.http,
            &analytics_url(&format!(
                "/v1/analytics/tasks/most-expensive?period=day&from={today}&to={today}"
            )),
            &admint,
        )
        .await?;
        let task = v["periods"][0]["task"].clone();
        (task["id"] == dear["id"] && task["title"].is_string()).then_some(task)
    })
    .await;
    assert_eq!(top["reward_cents"], 99_999_937);
    assert_eq!(top["title"], "Paint the sky");

    // The close pays the balance out once, however often it runs.
    let closer = p
        .client_token("closer", "closer-secret-0123456789", "close:accounting")
        .await;
    let day = (Utc::now() - Days::days(1)).date_naive().to_string();
    let close = || async {
        p.http
            .post(url("/v1/accounting/closes"))
            .bearer_auth(&closer)
            .json(&json!({"day": day}))
            .send()
            .await
            .unwrap()
    };
    let first = close().await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = close().await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["newly_closed"], false);
    let account = testkit::json_of_with(&p.http, &url("/v1/accounting/accounts/me"), &at)
        .await
        .unwrap();
    assert_eq!(account["balance_cents"], 0);

    // One mail to Ann, naming the amount.
    let mail = sink
        .wait_for(60, "Ann's payout mail", |m| {
            m.recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&format!("{}@example.com", ann.username)))
        })
        .await;
    assert!(
        mail.subject
            .as_deref()
            .unwrap_or_default()
            .contains("10.00"),
        "{mail:?}"
    );
    let to_ann = |m: &testkit::ReceivedMail| {
        m.recipients
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&format!("{}@example.com", ann.username)))
    };
    assert_eq!(sink.messages().iter().filter(|m| to_ann(m)).count(), 1);
}
