//! The analytics dashboard: HTML for administrators behind a sign-in
//! through the safekeeper; anyone else gets a 403 page. Driven over plain
//! HTTP with a cookie jar, and once in headless Chromium.

use contracts::topics;
use reqwest::StatusCode;
use testkit::dashboard::{sign_in, Jar};
use uuid::Uuid;

use crate::helpers::{eventually, spawn_with_dashboard, task_event, Ledger};

const SESSION: &str = "analytics-dashboard";

#[tokio::test]
async fn an_employee_signing_in_gets_a_403_page_and_no_session() {
    let p = spawn_with_dashboard().await;
    let (employee, _) = p.caller("Employee", "read:accounting").await;
    let mut jar = Jar::default();
    let r = sign_in(
        &p.http,
        &mut jar,
        &p.analytics,
        &p.sk,
        &employee.username,
        testkit::PASSWORD,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("Not allowed"));
    assert!(!jar.0.contains_key(SESSION));
    let r = jar.get(&p.http, &p.url("/dashboard")).await;
    assert!(r.text().await.unwrap().contains("You are not signed in"));
}

#[tokio::test]
async fn an_admin_sees_the_reports_with_task_titles_escaped() {
    let p = spawn_with_dashboard().await;
    let (admin, _) = p.caller("admin", "read:analytics").await;
    let task = Uuid::now_v7();
    let title = "<script>alert('x')</script> & co";
    p.publish(topics::TASK, &task_event(task, title, 1)).await;
    let today = chrono::Utc::now().date_naive();
    let mut ledger = Ledger::new();
    let events = [ledger.fee(300, today), ledger.reward(4200, task, today)];
    p.publish_transactions(&events).await;
    let mut jar = Jar::default();
    let r = sign_in(
        &p.http,
        &mut jar,
        &p.analytics,
        &p.sk,
        &admin.username,
        testkit::PASSWORD,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The reward and the title arrive on two topics: both, in either order.
    let page = eventually(30, "the task and its title on the dashboard", || async {
        let r = jar.clone().get(&p.http, &p.url("/dashboard")).await;
        let page = r.text().await.ok()?;
        (page.contains("42.00") && !page.contains("(title not known yet)")).then_some(page)
    })
    .await;
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
    assert!(page.contains("Workers with a negative balance"));
    assert!(page.contains("<caption>Per week (Monday to Sunday), newest first</caption>"));
}

#[tokio::test]
async fn an_employee_is_refused_on_analytics_in_headless_chromium() {
    let Some(browser) = testkit::Browser::start().await else {
        return;
    };
    let p = spawn_with_dashboard().await;
    let (employee, _) = p.caller("Employee", "read:accounting").await;

    browser.open(&p.url("/dashboard")).await;
    browser.click("a[href=\"/dashboard/signin\"]").await;
    browser.wait_for_url(&p.sk("/oauth2/authorize"), 10).await;
    browser.type_into("#username", &employee.username).await;
    browser.type_into("#password", testkit::PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_url(&p.url("/dashboard/callback"), 10)
        .await;
    let text = browser.page_text().await;
    browser.open(&p.url("/dashboard")).await;
    let after = browser.page_text().await;
    browser.quit().await;
    assert!(text.contains("Not allowed"), "{text}");
    assert!(text.contains("may not see this dashboard"), "{text}");
    assert!(after.contains("You are not signed in"), "{after}");
}
