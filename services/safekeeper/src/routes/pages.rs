//! Server-rendered pages of the authorization flow: plain, accessible HTML
//! that works without JavaScript. Every interpolated value is escaped.

use actix_web::{http::StatusCode, HttpResponse};

pub use platform::html::escape;

/// The `form-action` sources of a page whose form may end in a redirect to
/// `redirect_uri`: browsers apply `form-action` to every redirect that
/// follows a form submission, so the client's origin must be listed or the
/// final 302 to the client is blocked.
fn form_action(redirect_uri: Option<&str>) -> String {
    let origin = redirect_uri
        .and_then(|u| reqwest::Url::parse(u).ok())
        .map(|u| u.origin())
        .filter(|o| o.is_tuple())
        .map(|o| o.ascii_serialization());
    match origin {
        Some(o) => format!("'self' {o}"),
        None => "'self'".to_owned(),
    }
}

fn page(status: StatusCode, title: &str, body: &str, redirect_uri: Option<&str>) -> HttpResponse {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}\
         label{{display:block;margin-top:1rem}}input{{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}}\
         button{{font-size:1rem;padding:.5rem 1.2rem;margin-top:1.2rem;margin-right:.5rem}}\
         .error{{color:#a00;border-left:4px solid #a00;padding-left:.6rem}}</style>\n\
         </head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        // The pages must never be framed (clickjacking of the consent).
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header((
            "Content-Security-Policy",
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; form-action {}; frame-ancestors 'none'",
                form_action(redirect_uri)
            ),
        ))
        .body(html)
}

fn hidden(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .collect()
}

/// The sign-in form. `csrf` is bound to the browser's login cookie and to
/// `return_to` (see `oauth::login::login_csrf`).
pub fn login(
    return_to: &str,
    csrf: &str,
    client_name: &str,
    redirect_uri: &str,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<p>Sign in to continue to <strong>{client}</strong>.</p>\n{error}\
         <form method=\"post\" action=\"/oauth2/login\">\n{hidden}\
         <label for=\"username\">Username</label>\n\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Sign in</button>\n</form>",
        client = escape(client_name),
        hidden = hidden(&[
            ("return_to".into(), return_to.into()),
            ("csrf".into(), csrf.into())
        ]),
    );
    page(status, "Sign in", &body, Some(redirect_uri))
}

pub fn consent(
    client_name: &str,
    username: &str,
    scopes: &[(String, String)],
    fields: &[(String, String)],
    redirect_uri: &str,
) -> HttpResponse {
    let items: String = scopes
        .iter()
        .map(|(name, desc)| format!("<li><code>{}</code>: {}</li>\n", escape(name), escape(desc)))
        .collect();
    let body = format!(
        "<p>Signed in as <strong>{user}</strong>.</p>\n\
         <p><strong>{client}</strong> asks to act on your behalf with these permissions:</p>\n<ul>\n{items}</ul>\n\
         <form method=\"post\" action=\"/oauth2/consent\">\n{hidden}\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>",
        user = escape(username),
        client = escape(client_name),
        hidden = hidden(fields),
    );
    page(
        StatusCode::OK,
        "Authorize access",
        &body,
        Some(redirect_uri),
    )
}

pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    page(
        status,
        "Cannot continue",
        &format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message)),
        None,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn forms_may_end_at_the_clients_origin() {
        assert_eq!(
            super::form_action(Some("https://app.example.com:8443/cb?x=1")),
            "'self' https://app.example.com:8443"
        );
        assert_eq!(super::form_action(None), "'self'");
        assert_eq!(super::form_action(Some("not a url")), "'self'");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
