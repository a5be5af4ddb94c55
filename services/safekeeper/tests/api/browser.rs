//! The code flow once in a real browser ([`testkit::Browser`]: headless
//! Chromium over WebDriver), typing into the login page and submitting it
//! as a person would, with the browser keeping the cookie and following
//! the redirects. Skipped, saying so, without Chromium unless
//! `REQUIRE_BROWSER_TESTS=1`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    code_flow::{challenge, exchange, query, spa_params, VERIFIER},
    helpers::{spawn, PASSWORD, SPA_REDIRECT},
};

#[tokio::test]
async fn the_code_flow_works_in_headless_chromium() {
    let Some(browser) = testkit::Browser::start().await else {
        return;
    };
    let p = spawn().await;
    let (username, _) = p.user_with_role(Some("Employee")).await;
    let ch = challenge(VERIFIER);
    let authorize = reqwest::Url::parse_with_params(
        &p.sk("/oauth2/authorize"),
        &spa_params("read:task edit:task", &ch),
    )
    .unwrap();

    browser.open(authorize.as_str()).await;
    browser.type_into("#username", &username).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;

    // The browser follows the 303 back to /oauth2/authorize with its new
    // cookie, then the 302 to the client (nothing listens there, so the
    // page is an error page, but its address is what the client receives).
    let landed = browser.wait_for_url(SPA_REDIRECT, 10).await;
    browser.quit().await;
    let q = query(&landed);
    assert_eq!(q["state"], "st4te-42");
    let r = exchange(&p, &q["code"], VERIFIER, SPA_REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "edit:task read:task");
    assert!(t["refresh_token"].as_str().is_some());
}
