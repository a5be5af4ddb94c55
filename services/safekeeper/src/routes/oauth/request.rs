//! The authorization request (RFC 6749 4.1.1, RFC 7636 4.3), parsed once at
//! the edge of the browser's flow, and the refusals the browser gets when
//! it cannot go on: an error page, or an error sent back to the client.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{
    http::{header, StatusCode},
    HttpResponse,
};
use platform::db::with_conn;
use reqwest::Url;

use super::Params;
use crate::{
    crypto,
    error::ApiError,
    grants::{self, Client},
    routes::pages,
    state::AppState,
    tokens::parse_scopes,
};

/// The parameters of an authorization request, the ones carried through
/// the sign-in and consent forms.
const AUTHZ_FIELDS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// A checked authorization request. Its `response_type` can only be `code`
/// and its code challenge method only `S256`: nothing else gets this far,
/// so neither is kept.
pub(super) struct AuthorizationRequest {
    pub(super) client: Client,
    pub(super) redirect_uri: String,
    pub(super) state: Option<String>,
    pub(super) scope: BTreeSet<String>,
    /// The PKCE challenge (S256), when the client sent one.
    pub(super) code_challenge: Option<String>,
    /// The request's parameters, canonical, to carry through the forms.
    pub(super) fields: Vec<(String, String)>,
}

impl AuthorizationRequest {
    /// Parses the raw parameters of an authorization request: the query of
    /// `GET /oauth2/authorize`, or the fields the sign-in and consent forms
    /// carried through. The client and the redirect URI come first, since
    /// they decide whether a refusal may be sent back to the client at all;
    /// then the response type, the grant, PKCE and the scopes.
    pub(super) async fn parse(state: &AppState, p: &Params) -> Result<Self, Refusal> {
        let client = client_of(state, p).await?;
        let redirect_uri = redirect_uri_of(&client, p)?;
        let st = p.get("state").cloned();
        let refuse = |error: &'static str, description: &str| Refusal::Redirect {
            uri: redirect_uri.clone(),
            state: st.clone(),
            error,
            description: description.to_owned(),
        };
        if p.get("response_type").map(String::as_str) != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        if !client.allows_grant("authorization_code") {
            return Err(refuse(
                "unauthorized_client",
                "this client may not use the authorization code flow",
            ));
        }
        let code_challenge =
            code_challenge_of(&client, p).map_err(|d| refuse("invalid_request", d))?;
        let scope = parse_scopes(p.get("scope").map(String::as_str).unwrap_or(""));
        let fields = canonical_fields(p, &redirect_uri);
        Ok(AuthorizationRequest {
            client,
            redirect_uri,
            state: st,
            scope,
            code_challenge,
            fields,
        })
    }

    /// A refusal sent back to the client, at its redirect URI.
    pub(super) fn refuse(&self, error: &'static str, description: &str) -> Refusal {
        Refusal::Redirect {
            uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            error,
            description: description.to_owned(),
        }
    }

    /// The request's parameters as a query string: the sign-in form's
    /// `return_to`, and what the consent form's CSRF token is bound to.
    pub(super) fn query(&self) -> String {
        let mut url = Url::parse("http://x/").expect("static URL");
        url.query_pairs_mut()
            .extend_pairs(self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        url.query().unwrap_or("").to_owned()
    }
}

/// The client the request names, which must exist.
async fn client_of(state: &AppState, p: &Params) -> Result<Client, Refusal> {
    let client_id = p
        .get("client_id")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Refusal::Page(
                StatusCode::BAD_REQUEST,
                "The request names no client (client_id is missing).".into(),
            )
        })?;
    let cid = client_id.clone();
    with_conn(&state.pool, move |c| {
        grants::client(c, &cid).map_err(ApiError::from)
    })
    .await
    .map_err(store_failure)?
    .ok_or_else(|| {
        Refusal::Page(
            StatusCode::BAD_REQUEST,
            format!("Unknown client {client_id:?}."),
        )
    })
}

/// The redirect URI: one the client registered, or its only one when the
/// request names none.
fn redirect_uri_of(client: &Client, p: &Params) -> Result<String, Refusal> {
    // Exact match only: no prefix, no wildcard, no normalisation.
    match p.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => Ok(r.clone()),
        Some(_) => Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "The redirect URI is not registered for this client.".into(),
        )),
        None if client.redirect_uris.len() == 1 => Ok(client.redirect_uris[0].clone()),
        None => Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "The request names no redirect URI.".into(),
        )),
    }
}

/// The PKCE challenge, if any, checked against what the client needs; the
/// description of an `invalid_request` otherwise.
fn code_challenge_of(client: &Client, p: &Params) -> Result<Option<String>, &'static str> {
    let challenge = p.get("code_challenge").cloned();
    let refused = match (
        challenge.as_deref(),
        p.get("code_challenge_method").map(String::as_str),
    ) {
        // RFC 9700 2.1.1: every client, confidential ones too, unless an
        // administrator let a confidential client off.
        (None, _) if client.is_public || client.pkce_required => {
            "PKCE is required: send code_challenge with code_challenge_method=S256"
        }
        (None, Some(_)) => "code_challenge_method without code_challenge",
        (Some(_), m) if m != Some("S256") => {
            "code_challenge_method must be S256 (plain is not allowed)"
        }
        (Some(c), _) if !crypto::valid_challenge(c) => {
            "code_challenge must be 43 base64url characters"
        }
        _ => return Ok(challenge),
    };
    Err(refused)
}

/// The request's own parameters, sorted, with the redirect URI it will use.
fn canonical_fields(p: &Params, redirect_uri: &str) -> Vec<(String, String)> {
    AUTHZ_FIELDS
        .iter()
        .filter_map(|k| p.get(*k).map(|v| (k.to_string(), v.clone())))
        .chain(std::iter::once((
            "redirect_uri".to_owned(),
            redirect_uri.to_owned(),
        )))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

/// Why a request cannot go on: with an untrusted client or redirect URI we
/// must not redirect (RFC 6749 4.1.2.1), so we show a page; otherwise the
/// error travels back to the client.
pub(super) enum Refusal {
    Page(StatusCode, String),
    Redirect {
        uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl Refusal {
    pub(super) fn respond(self, issuer: &str) -> HttpResponse {
        match self {
            Refusal::Page(status, msg) => pages::error(status, &msg),
            Refusal::Redirect {
                uri,
                state,
                error,
                description,
            } => {
                let mut pairs = vec![
                    ("error", error.to_owned()),
                    ("error_description", description),
                ];
                if let Some(s) = state {
                    pairs.push(("state", s));
                }
                pairs.push(("iss", issuer.to_owned()));
                redirect_to(&uri, &pairs)
            }
        }
    }
}

/// A 302 to `uri` with `pairs` added to its query.
pub(super) fn redirect_to(uri: &str, pairs: &[(&str, String)]) -> HttpResponse {
    let mut url = match Url::parse(uri) {
        Ok(u) => u,
        Err(_) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "the redirect URI is not a valid URL",
            )
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A database failure while a browser's request is checked: the 503 page
/// ("try again") only when the database is unavailable, which a retry may
/// mend; anything else is our fault, a 500 page with its cause logged.
/// (Malformed input never gets this far: control characters, which
/// PostgreSQL refuses in text, are answered 400 before any handler runs.)
pub(super) fn store_failure(e: ApiError) -> Refusal {
    if actix_web::ResponseError::status_code(&e) == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %platform::problem::chain(&e), "the database is unavailable for an authorization request");
        Refusal::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a moment.".into(),
        )
    } else {
        tracing::error!(
            error = format!("{e:#}"),
            "an authorization request could not be checked"
        );
        Refusal::Page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side.".into(),
        )
    }
}
