//! Keeps a service's routes and its OpenAPI document in step, for each
//! service's API tests ([`assert_routes_match_document`]): every documented
//! operation is served, and every route the service registers is
//! documented.
//!
//! actix-web cannot list the routes an `App` holds (its resource map keeps
//! paths without their methods, and no public API walks it), so the routes
//! are read from where they are registered (the service's sources, in
//! practice `src/routes/`, and the platform's `server.rs`), and each one
//! read is then asked for over HTTP, which proves the reading right. The
//! reading refuses what it does not understand (a `web::scope`, an
//! attribute macro, a route without a method), so a new way of registering
//! routes fails the check rather than hiding routes from it. Independently
//! of the reading, the running app is asked for each documented operation
//! (it must be served) and for each other method on each documented path
//! (it must not be).
//!
//! "Not served" is what actix answers when nothing matched: the platform's
//! fallback 404 (a problem whose detail begins `no route for`, see
//! [`crate::problem::extractors::not_found`]) or a resource's bare 405. A
//! handler's own 404 for an unknown id says something else.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// `(METHOD, path template)`, e.g. `("GET", "/v1/users/{id}")`.
pub type Operation = (String, String);

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The operations an OpenAPI document describes.
pub fn documented(openapi: &str) -> BTreeSet<Operation> {
    let doc: serde_json::Value =
        serde_json::from_str(openapi).expect("the OpenAPI document is JSON");
    let paths = doc["paths"]
        .as_object()
        .expect("the OpenAPI document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter_map(move |m| {
                item.get(m.to_ascii_lowercase())
                    .map(|_| (m.to_string(), path.clone()))
            })
        })
        .collect()
}

/// The files that may register a service's routes: every `.rs` file under
/// its `src/` (`manifest_dir` is the service's `CARGO_MANIFEST_DIR`; routes
/// live in `src/routes/`, but one registered elsewhere is read too), the
/// platform's `server.rs` (`/healthz`, `/readyz`, `/metrics`,
/// `/openapi.json`), and the shared route modules ([`SHARED_ROUTES`]) the
/// service's sources configure.
pub fn route_sources(manifest_dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(manifest_dir).join("src"), &mut files);
    files.sort();
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shared: Vec<PathBuf> = SHARED_ROUTES
        .iter()
        .filter(|(call, _)| {
            files
                .iter()
                .any(|f| std::fs::read_to_string(f).is_ok_and(|source| source.contains(call)))
        })
        .map(|(_, file)| crates.join(file))
        .collect();
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server.rs"));
    files.extend(shared);
    files
}

/// Route modules of shared crates, as `(the call a service configures them
/// with, the file that registers them, under crates/)`.
pub const SHARED_ROUTES: [(&str, &str); 1] =
    [("dashboard::routes::configure", "dashboard/src/routes.rs")];

/// The routes registered in `files`: `.route("/path", web::get()...)`
/// (on a `ServiceConfig` or an `App`) and `web::resource("/path")` with its
/// `.route(web::post()...)`. Anything else that registers routes is an
/// error naming the file, so that no route escapes the check unseen.
pub fn registered(files: &[PathBuf]) -> Result<BTreeSet<Operation>, String> {
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let Lexed { plain, masked } = lex(&text);
        let name = file.display();
        for unknown in [
            "web::scope(",
            "#[get(",
            "#[post(",
            "#[put(",
            "#[patch(",
            "#[delete(",
            "#[route(",
            "web::route()",
            "web::method(",
        ] {
            if masked.contains(unknown) {
                return Err(format!(
                    "{name} registers routes with `{unknown}`, which this check does not read yet: teach platform::routecheck::registered"
                ));
            }
        }
        // The `web::resource` being read, and how many routes it has.
        let mut resource: Option<(String, usize)> = None;
        let unrouted = |path: &str| format!("{name}: web::resource({path:?}) has no route");
        let mut at = 0;
        while let Some((pos, token)) = next_token(&masked, at) {
            at = pos + token.len();
            let rest = plain[at..].trim_start();
            if token == "web::resource(" {
                if let Some((path, 0)) = &resource {
                    return Err(unrouted(path));
                }
                let (path, _) = string_literal(rest)
                    .ok_or_else(|| format!("{name}: web::resource( without a literal path"))?;
                resource = Some((path, 0));
                continue;
            }
            let (path, rest) = match string_literal(rest) {
                // `.route("/path", web::get()...)`: ends any resource.
                Some((path, after)) => {
                    if let Some((p, 0)) = &resource {
                        return Err(unrouted(p));
                    }
                    resource = None;
                    let after = after.trim_start().strip_prefix(',').ok_or_else(|| {
                        format!("{name}: .route({path:?} is not followed by a comma")
                    })?;
                    (path, after.trim_start())
                }
                // `.route(web::post()...)` of the resource being read.
                None => match resource.as_mut() {
                    Some((path, routes)) => {
                        *routes += 1;
                        (path.clone(), rest)
                    }
                    None => {
                        return Err(format!(
                            "{name}: a .route( with neither a path nor a web::resource before it"
                        ))
                    }
                },
            };
            let method = rest
                .strip_prefix("web::")
                .and_then(|r| r.split_once("()"))
                .map(|(m, _)| m.to_ascii_uppercase())
                .filter(|m| METHODS.contains(&m.as_str()))
                .ok_or_else(|| {
                    format!(
                        "{name}: the route {path:?} has no method this check reads (web::get() .. web::delete())"
                    )
                })?;
            if !found.insert((method.clone(), path.clone())) {
                return Err(format!("{name}: {method} {path} is registered twice"));
            }
        }
        if let Some((path, 0)) = &resource {
            return Err(unrouted(path));
        }
    }
    if found.is_empty() {
        return Err("no route found in the route sources".into());
    }
    Ok(found)
}

fn next_token(code: &str, from: usize) -> Option<(usize, &'static str)> {
    [".route(", "web::resource("]
        .into_iter()
        .filter_map(|t| code[from..].find(t).map(|p| (p + from, t)))
        .min_by_key(|(p, _)| *p)
}

/// A Rust string literal at the start of `s` (after blanks): its text and
/// what follows it. Escapes are kept as written (paths have none).
fn string_literal(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start().strip_prefix('"')?;
    let end = s.find('"')?;
    Some((s[..end].to_owned(), &s[end + 1..]))
}

/// Two copies of `code` of its length, byte for byte: `plain` with
/// comments blanked, `masked` with the insides of string and char literals
/// blanked too. Tokens are looked for in `masked` (so that neither a
/// comment nor a string that mentions `.route(` reads as a route); a path
/// literal is read from `plain` at the same offset.
struct Lexed {
    plain: String,
    masked: String,
}

fn lex(code: &str) -> Lexed {
    let b = code.as_bytes();
    let mut plain = b.to_vec();
    let mut masked = b.to_vec();
    let blank = |v: &mut Vec<u8>, from: usize, to: usize| {
        for x in &mut v[from..to] {
            if *x != b'\n' {
                *x = b' ';
            }
        }
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
                blank(&mut plain, i, end);
                blank(&mut masked, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = code[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                blank(&mut plain, i, end);
                blank(&mut masked, i, end);
                i = end;
            }
            // A raw string: r"..", r#".."#.
            b'r' if (i == 0 || !ident(b[i - 1]))
                && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                let open = i + 1 + hashes;
                if b.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let end = code[open + 1..]
                    .find(&close)
                    .map_or(b.len(), |n| open + 1 + n);
                blank(&mut masked, open + 1, end);
                i = (end + close.len()).min(b.len());
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(b.len());
                blank(&mut masked, i + 1, end);
                i = end + 1;
            }
            // A char literal ('"', '\'', 'x'), not a lifetime ('a).
            b'\'' => {
                let len = if b.get(i + 1) == Some(&b'\\') { 4 } else { 3 };
                if b.get(i + len - 1) == Some(&b'\'') {
                    blank(&mut masked, i + 1, i + len - 1);
                    i += len;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    let text = |v: Vec<u8>| String::from_utf8(v).expect("blanking keeps UTF-8");
    Lexed {
        plain: text(plain),
        masked: text(masked),
    }
}

/// Whether an answer is actix's "nothing matched": a bare 405, or the
/// platform's fallback 404 problem (`no route for METHOD PATH`).
pub fn is_no_route(status: u16, body: &str) -> bool {
    status == 405
        || (status == 404
            && serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(|d| d.starts_with("no route for")))
                .unwrap_or(false))
}

/// `template` with each `{parameter}` replaced by a value every route's
/// pattern accepts.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| c + open)
            .unwrap_or(rest.len() - 1);
        out.push('0');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether the route `template` matches the concrete `path` (a
/// `{parameter}` matches any one segment, as actix's default does).
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

/// Whether `base` serves `method template`: asked without credentials or
/// body, which every handler refuses before it does anything.
pub async fn served(http: &reqwest::Client, base: &str, method: &str, template: &str) -> bool {
    let url = format!("{base}{}", concrete(template));
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let r = http
        .request(m, &url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    !is_no_route(status, &body)
}

/// The check: the routes registered in the service's sources (see
/// [`route_sources`]) are exactly the operations of `openapi`; the service
/// running at `base` serves every documented operation and every
/// registered route, and no other method on a documented path. Panics
/// listing every mismatch.
pub async fn assert_routes_match_document(base: &str, openapi: &str, manifest_dir: &str) {
    let documented = documented(openapi);
    let registered = registered(&route_sources(manifest_dir)).unwrap_or_else(|e| panic!("{e}"));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let mut problems = Vec::new();
    for (m, p) in registered.difference(&documented) {
        problems.push(format!("{m} {p} is registered but not documented"));
    }
    for (m, p) in documented.difference(&registered) {
        problems.push(format!("{m} {p} is documented but not registered"));
    }
    for (m, p) in documented.union(&registered) {
        if !served(&http, base, m, p).await {
            problems.push(format!("{m} {p} is not served (no route answered)"));
        }
    }
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for p in paths {
        for m in METHODS {
            // `GET /v1/users/batch` is `GET /v1/users/{id}` with the id
            // "batch": not asked, that answer is the other route's.
            let other = documented
                .iter()
                .any(|(dm, dp)| dm == m && dp != p && matches(dp, &concrete(p)));
            if !other
                && !documented.contains(&(m.to_owned(), p.clone()))
                && served(&http, base, m, p).await
            {
                problems.push(format!("{m} {p} is served but not documented"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the routes and the OpenAPI document differ:\n  {}",
        problems.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_routes_and_resources_and_skips_comments() {
        let dir = testkit::TempDir::new("routecheck");
        let f = write(
            &dir.0,
            "a.rs",
            r#"
            pub fn configure(cfg: &mut web::ServiceConfig) {
                // .route("/commented", web::get().to(x))
                cfg.route("/a", web::get().to(a))
                    .route(
                        "/a/{id}",
                        web::delete().to(b),
                    )
                    .service(
                        web::resource("/batch")
                            .guard(guard::Post())
                            .route(web::post().to(c)),
                    )
                    .route("/b", web::patch().to(d));
                let _ = "// not a comment .route(";
            }
            "#,
        );
        let got = registered(&[f]).unwrap();
        let want: BTreeSet<Operation> = [
            ("GET", "/a"),
            ("DELETE", "/a/{id}"),
            ("POST", "/batch"),
            ("PATCH", "/b"),
        ]
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn reads_the_platforms_own_routes() {
        let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server.rs");
        let got: Vec<Operation> = registered(&[server]).unwrap().into_iter().collect();
        let want: Vec<Operation> = ["/healthz", "/metrics", "/openapi.json", "/readyz"]
            .into_iter()
            .map(|p| ("GET".to_owned(), p.to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn refuses_registrations_it_cannot_read() {
        let dir = testkit::TempDir::new("routecheck");
        for (name, text) in [
            (
                "scope.rs",
                r#"cfg.service(web::scope("/v2").route("/x", web::get().to(x)));"#,
            ),
            ("macro.rs", "#[get(\"/x\")]\nasync fn x() {}"),
            ("any.rs", r#"cfg.route("/x", web::route().to(x));"#),
            ("bare.rs", r#"cfg.service(web::resource("/x").to(x));"#),
        ] {
            let f = write(&dir.0, name, text);
            assert!(registered(&[f]).is_err(), "{name}");
        }
    }

    #[test]
    fn tells_the_fallback_from_a_handlers_not_found() {
        assert!(is_no_route(405, ""));
        assert!(is_no_route(
            404,
            r#"{"type":"x","status":404,"detail":"no route for GET /nope"}"#
        ));
        assert!(!is_no_route(
            404,
            r#"{"type":"x","status":404,"detail":"no such user"}"#
        ));
        assert!(!is_no_route(401, ""));
        assert_eq!(
            concrete("/v1/users/{id}/roles/{role}"),
            "/v1/users/0/roles/0"
        );
    }

    #[test]
    fn reads_the_operations_of_a_document() {
        let doc = r#"{"paths": {"/a": {"get": {}, "parameters": [], "post": {}}, "/b/{id}": {"delete": {}}}}"#;
        let got: Vec<Operation> = documented(doc).into_iter().collect();
        assert_eq!(
            got,
            vec![
                ("DELETE".to_owned(), "/b/{id}".to_owned()),
                ("GET".to_owned(), "/a".to_owned()),
                ("POST".to_owned(), "/a".to_owned()),
            ]
        );
    }
}
