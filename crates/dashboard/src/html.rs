//! Plain, accessible HTML that works without JavaScript: a page layout
//! (`lang`, labelled landmarks, a skip link), tables with a caption and
//! header cells, and nothing interpolated unescaped. Every page is sent
//! with a CSP that allows no script, no framing and forms only to this
//! origin.

use actix_web::{http::StatusCode, HttpResponse};

use crate::config::Links;

pub use platform::html::escape;

/// Cents as an amount with two decimals: `-1234` is `-12.34`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Who is signed in, for the page's header: their name and the sign-out
/// form's CSRF token.
pub struct SignedIn<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
}

/// A table: `caption`, the column headers, and rows of cells already
/// escaped (build them with [`escape`] or [`money`]); each row's first
/// cell is its header.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let head: String = headers
        .iter()
        .map(|h| format!("<th scope=\"col\">{}</th>", escape(h)))
        .collect();
    let body: String = if rows.is_empty() {
        format!(
            "<tr><td colspan=\"{}\">None yet.</td></tr>\n",
            headers.len().max(1)
        )
    } else {
        rows.iter()
            .map(|r| {
                let cells: String = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i == 0 {
                            format!("<th scope=\"row\">{c}</th>")
                        } else {
                            format!("<td>{c}</td>")
                        }
                    })
                    .collect();
                format!("<tr>{cells}</tr>\n")
            })
            .collect()
    };
    format!(
        "<table>\n<caption>{}</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n",
        escape(caption)
    )
}

/// A whole page: `title` (escaped) and `body` (markup the caller escaped),
/// with the sign-out form when someone is signed in.
pub fn page(
    status: StatusCode,
    title: &str,
    signed_in: Option<SignedIn<'_>>,
    body: &str,
) -> HttpResponse {
    let account = match signed_in {
        Some(s) => format!(
            "<p>Signed in as <strong>{}</strong>.</p>\n\
             <form method=\"post\" action=\"/dashboard/signout\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
             <button type=\"submit\">Sign out</button>\n</form>\n",
            escape(s.name),
            escape(s.csrf)
        ),
        None => String::new(),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         table{{border-collapse:collapse;margin:1rem 0}}th,td{{border:1px solid #888;padding:.3rem .6rem;text-align:left}}\
         caption{{font-weight:bold;text-align:left;padding:.3rem 0}}button{{font-size:1rem;padding:.4rem 1rem}}\
         .skip{{position:absolute;left:-999px}}.skip:focus{{left:1rem}}\
         .error{{color:#a00;border-left:4px solid #a00;padding-left:.6rem}}</style>\n\
         </head>\n<body>\n<a class=\"skip\" href=\"#content\">Skip to content</a>\n\
         <header>\n<nav aria-label=\"Dashboards\">\n<ul>\n\
         <li><a href=\"/\">Home</a></li>\n<li><a href=\"/dashboard\">Dashboard</a></li>\n\
         </ul>\n</nav>\n{account}</header>\n\
         <main id=\"content\" aria-labelledby=\"title\">\n<h1 id=\"title\">{title}</h1>\n{body}\n</main>\n\
         </body>\n</html>\n",
        title = escape(title),
    );
    respond(status, html)
}

/// `html` with the headers every dashboard page carries.
pub fn respond(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(html)
}

/// A page that says one thing (an error, a refusal), as an alert.
pub fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    page(
        status,
        title,
        None,
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n<p><a href=\"/\">Back to the start</a></p>",
            escape(text)
        ),
    )
}

/// The page shown to someone not signed in: a link that starts sign-in.
pub fn sign_in(service_title: &str) -> HttpResponse {
    page(
        StatusCode::OK,
        service_title,
        None,
        "<p>You are not signed in.</p>\n\
         <p><a href=\"/dashboard/signin\">Sign in</a> with your Popug account.</p>",
    )
}

/// The landing page: the task tracker's API documentation and the
/// dashboards.
pub fn landing(links: &Links) -> HttpResponse {
    let body = format!(
        "<p>Popug's work management: tasks, what they earn, and how the company is doing.</p>\n\
         <nav aria-label=\"Services\">\n<ul>\n\
         <li><a href=\"{}\">Task tracker API documentation</a> (OpenAPI)</li>\n\
         <li><a href=\"{}\">Accounting</a>: your balance and ledger; management's earnings</li>\n\
         <li><a href=\"{}\">Analytics</a>: for administrators</li>\n\
         </ul>\n</nav>",
        escape(&links.task_docs),
        escape(&links.accounting),
        escape(&links.analytics),
    );
    page(StatusCode::OK, "Popug", None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn formats_cents_with_a_sign_and_two_decimals() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(1700), "17.00");
        assert_eq!(money(-305), "-3.05");
        assert_eq!(money(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn tables_escape_their_caption_and_headers() {
        let t = table("<b>", &["<i>"], &[]);
        assert!(t.contains("<caption>&lt;b&gt;</caption>"));
        assert!(t.contains("<th scope=\"col\">&lt;i&gt;</th>"));
    }
}
