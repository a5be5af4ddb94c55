//! The dashboards (accounting's, analytics') in tests: their OAuth2 client
//! at the safekeeper, their settings, and a sign-in driven over plain HTTP
//! with a cookie jar, as a browser without JavaScript would do it.

use std::collections::BTreeMap;

use reqwest::{header, Response, StatusCode, Url};
use secrecy::SecretString;
use serde_json::json;

/// The secret of every test dashboard's client.
pub const CLIENT_SECRET: &str = "dashboard-client-secret-0123456789";

/// The settings of `service`'s dashboard listening on `port`, a client of
/// the safekeeper at `sk` (plain http: cookies without `Secure`).
pub fn config(service: &'static str, sk: &str, port: u16, scope: &str) -> dashboard::Config {
    let links = dashboard::Links {
        task_docs: "http://127.0.0.1:9/openapi.json".into(),
        accounting: "http://127.0.0.1:9/dashboard".into(),
        analytics: "http://127.0.0.1:9/dashboard".into(),
    };
    dashboard::Config {
        service,
        client_id: format!("{service}-dashboard"),
        client_secret: SecretString::from(CLIENT_SECRET),
        safekeeper_public_url: sk.to_owned(),
        safekeeper_url: sk.to_owned(),
        public_url: format!("http://127.0.0.1:{port}"),
        scope: scope.to_owned(),
        cookie_secure: false,
        session_ttl: std::time::Duration::from_secs(3600),
        links,
    }
}

/// The body of `POST /v1/admin/clients` that registers `c` at the
/// safekeeper: confidential, first party, the code flow and refresh.
pub fn client_registration(c: &dashboard::Config) -> serde_json::Value {
    let scopes: Vec<&str> = c.scope.split_whitespace().collect();
    json!({
        "client_id": c.client_id,
        "name": format!("{} dashboard", c.service),
        "client_secret": CLIENT_SECRET,
        "first_party": true,
        "redirect_uris": [c.redirect_uri()],
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": scopes,
    })
}

/// Cookies by name, as a browser keeps them for `127.0.0.1` (ports do
/// not separate cookies; paths are ignored here).
#[derive(Debug, Default, Clone)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    /// Keeps what `r` sets (a cookie set empty or with `Max-Age=0` is
    /// dropped).
    pub fn keep(&mut self, r: &Response) {
        for v in r.headers().get_all(header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let Some((name, value)) = v.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let gone = value.is_empty() || v.to_ascii_lowercase().contains("max-age=0");
            if gone {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// The `Cookie` header.
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `GET url` with the cookies, keeping what it sets.
    pub async fn get(&mut self, http: &reqwest::Client, url: &str) -> Response {
        let r = http
            .get(url)
            .header(header::COOKIE, self.header())
            .send()
            .await
            .expect("an answer");
        self.keep(&r);
        r
    }

    /// `POST url` of `form` with the cookies, keeping what it sets.
    pub async fn post(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        form: &[(&str, &str)],
    ) -> Response {
        let r = http
            .post(url)
            .header(header::COOKIE, self.header())
            .form(form)
            .send()
            .await
            .expect("an answer");
        self.keep(&r);
        r
    }
}

/// Where `r` redirects, resolved against `base`.
pub fn location(base: &str, r: &Response) -> String {
    let loc = r
        .headers()
        .get(header::LOCATION)
        .unwrap_or_else(|| panic!("a redirect, not {}", r.status()))
        .to_str()
        .expect("a text Location");
    Url::parse(base)
        .and_then(|b| b.join(loc))
        .expect("a URL")
        .to_string()
}

/// The value of a hidden field of a form in `html`.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("a closing quote");
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Signs `username` in on the dashboard at `base` through the safekeeper
/// at `sk`, as a browser would (`http` must not follow redirects): up to
/// and including the dashboard's callback, whose answer is returned
/// (a 303 to `/dashboard` with the session cookie in `jar` when it
/// worked).
pub async fn sign_in(
    http: &reqwest::Client,
    jar: &mut Jar,
    base: &str,
    sk: &str,
    username: &str,
    password: &str,
) -> Response {
    let r = jar.get(http, &format!("{base}/dashboard/signin")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign-in begins");
    let authorize = location(base, &r);
    assert!(
        authorize.starts_with(sk),
        "off to the safekeeper: {authorize}"
    );
    let r = jar.get(http, &authorize).await;
    assert_eq!(r.status(), StatusCode::OK, "the safekeeper's login page");
    let page = r.text().await.expect("a page");
    let (return_to, csrf) = (
        hidden_field(&page, "return_to"),
        hidden_field(&page, "csrf"),
    );
    let r = jar
        .post(
            http,
            &format!("{sk}/oauth2/login"),
            &[
                ("username", username),
                ("password", password),
                ("return_to", &return_to),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "signed in at the safekeeper"
    );
    let r = jar.get(http, &location(sk, &r)).await;
    assert_eq!(r.status(), StatusCode::FOUND, "back to the dashboard");
    let callback = location(sk, &r);
    assert!(
        callback.starts_with(&format!("{base}/dashboard/callback")),
        "to the callback: {callback}"
    );
    jar.get(http, &callback).await
}
