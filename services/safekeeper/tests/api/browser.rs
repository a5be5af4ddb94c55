//! The code flow once in a real browser: headless Chromium driven over the
//! W3C WebDriver protocol (chromedriver), typing into the login page and
//! submitting it as a person would, with the browser keeping the cookie
//! and following the redirects.
//!
//! Needs Debian's `chromium` and `chromium-driver` (CI installs them). On a
//! machine without them the test says so and passes without running;
//! `REQUIRE_BROWSER_TESTS=1` turns that into a failure.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    code_flow::{challenge, exchange, query, spa_params, VERIFIER},
    helpers::{spawn, PASSWORD, SPA_REDIRECT},
};

/// The key W3C WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// A chromedriver child process and one browser session in it.
struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: testkit::TempDir,
}

impl Driver {
    async fn start(chromedriver: PathBuf, chromium: PathBuf) -> Self {
        let port = testkit::free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = testkit::http_client();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["value"]["ready"].as_bool())
                    == Some(true)
                {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready on {base}");
        let profile = testkit::TempDir::new("chromium-profile");
        // The flags keep Chromium off the network it cannot reach here.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.0.display())]
            }
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Self {
            child,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method, &url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {path} failed: {v}"
        );
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Closes the browser (killing chromedriver alone would leave it running).
    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_code_flow_works_in_headless_chromium() {
    let chromedriver = find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    let chromium = find_binary("CHROMIUM", &["/usr/bin/chromium"]);
    let (Some(chromedriver), Some(chromium)) = (chromedriver, chromium) else {
        assert!(
            std::env::var("REQUIRE_BROWSER_TESTS").as_deref() != Ok("1"),
            "REQUIRE_BROWSER_TESTS=1 but chromium or chromedriver is missing"
        );
        eprintln!("skipped: install Debian's chromium and chromium-driver to run this test");
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

    let browser = Driver::start(chromedriver, chromium).await;
    browser.open(authorize.as_str()).await;
    browser.type_into("#username", &username).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;

    // The browser follows the 303 back to /oauth2/authorize with its new
    // cookie, then the 302 to the client (nothing listens there, so the
    // page is an error page, but its address is what the client receives).
    let mut landed = String::new();
    for _ in 0..100 {
        landed = browser.current_url().await;
        if landed.starts_with(SPA_REDIRECT) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !landed.starts_with(SPA_REDIRECT) {
        let page = browser.call(reqwest::Method::GET, "/source", None).await;
        browser.quit().await;
        panic!("ended at {landed}, showing {page}");
    }
    browser.quit().await;
    let q = query(&landed);
    assert_eq!(q["state"], "st4te-42");
    let r = exchange(&p, &q["code"], VERIFIER, SPA_REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "edit:task read:task");
    assert!(t["refresh_token"].as_str().is_some());
}
