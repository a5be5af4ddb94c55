//! A real browser for tests: headless Chromium driven over the W3C
//! WebDriver protocol by a chromedriver child process, with plain reqwest
//! calls. The browser keeps its cookies and follows redirects as a person's
//! would; tests type into pages and click their buttons.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`CHROMIUM` and
//! `CHROMEDRIVER` name other binaries). Without them [`Browser::start`]
//! answers `None` and the test returns early, saying so, unless
//! `REQUIRE_BROWSER_TESTS=1` (set by scripts/test.sh once it could install
//! them), which makes it a failure. Browser tests are named
//! `…_in_headless_chromium`, the substring scripts/test.sh skips them by.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::Method;
use serde_json::{json, Value};

/// The key W3C WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// A chromedriver child process and one headless Chromium session in it;
/// both end when it is dropped (after [`Browser::quit`]).
pub struct Browser {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: crate::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile;
    /// `None` (after saying why) when they are not installed and
    /// `REQUIRE_BROWSER_TESTS` is not `1`.
    pub async fn start() -> Option<Self> {
        let chromedriver = find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let chromium = find_binary("CHROMIUM", &["/usr/bin/chromium"]);
        let (Some(chromedriver), Some(chromium)) = (chromedriver, chromium) else {
            assert!(
                std::env::var("REQUIRE_BROWSER_TESTS").as_deref() != Ok("1"),
                "REQUIRE_BROWSER_TESTS=1 but chromium or chromedriver is missing"
            );
            eprintln!("skipped: install Debian's chromium and chromium-driver to run this test");
            return None;
        };
        Some(Self::launch(chromedriver, chromium).await)
    }

    async fn launch(chromedriver: PathBuf, chromium: PathBuf) -> Self {
        let port = crate::free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = crate::http_client();
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
        let profile = crate::TempDir::new("chromium-profile");
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
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
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

    /// One WebDriver command of this session; its `value`.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method, &url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {path} failed: {v}"
        );
        v["value"].clone()
    }

    /// Navigates to `url` (and waits for the page to load).
    pub async fn open(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The element `css` selects (the first), as a WebDriver reference.
    pub async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Types `text` into the field `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks the element `css` selects (a link, a submit button).
    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(
            Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The address of the page shown.
    pub async fn current_url(&self) -> String {
        self.call(Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of the page shown, as rendered (`body`'s visible text).
    pub async fn page_text(&self) -> String {
        let body = self.element("body").await;
        self.call(Method::GET, &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's markup.
    pub async fn source(&self) -> String {
        self.call(Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to `secs` seconds for the address to start with `prefix`
    /// and answers it; panics with the page shown otherwise.
    pub async fn wait_for_url(&self, prefix: &str, secs: u64) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let url = self.current_url().await;
            if url.starts_with(prefix) {
                return url;
            }
            if tokio::time::Instant::now() >= deadline {
                let page = self.source().await;
                panic!("expected to reach {prefix}; ended at {url}, showing {page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Closes the browser (killing chromedriver alone would leave it
    /// running).
    pub async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
