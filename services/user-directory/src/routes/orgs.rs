//! The Organization Management design's paths: create, admin login, get, update,
//! delete; and the tenant's own data.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use platform::db::{is_unique_violation, with_conn};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    auth::OrgAdmin,
    domain::{Email, NewPassword, OrganizationName},
    error::ApiError,
    saga::{self, NewOrganization},
    state::AppState,
    store::{self, org_events, OrganizationView},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/org/create", web::post().to(create))
        .route("/admin/login", web::post().to(login))
        .route("/org/get", web::get().to(get))
        .route("/org/update", web::put().to(update))
        .route("/org/delete", web::delete().to(delete))
        .route("/org/data", web::get().to(get_data))
        .route("/org/data/{key}", web::put().to(put_data));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    organization_name: String,
    email: String,
    password: SecretString,
}

/// An organization named in the directory's file is the operators', so
/// that no stranger claims it (and its members) before they do. Its
/// creation needs `Authorization: Bearer` with either
/// - a superuser's session token of our authenticator, checked live there
///   (`GET /v1/me`: active, not ended, a superuser), or
/// - the one-time `ORG_BOOTSTRAP_TOKEN` (compared in constant time), for
///   the first organization, before any operator can sign in here; once it
///   has created one it is spent.
///
/// Answers the digest of a bootstrap token it spent, to give back if the
/// creation fails.
async fn operators_only(
    req: &HttpRequest,
    state: &AppState,
    organization: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    let sent = crate::auth::bearer_token(req).map_err(|_| {
        ApiError::Unauthenticated(
            "this organization is reserved by the directory's configuration: send \
             'Authorization: Bearer <a superuser's session token>' (or the one-time \
             bootstrap token)"
                .into(),
        )
    })?;
    let digest = |s: &str| {
        ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
            .as_ref()
            .to_vec()
    };
    if let Some(expected) = &state.settings.org_bootstrap_token {
        let same: bool = subtle::ConstantTimeEq::ct_eq(
            &digest(&sent)[..],
            &digest(expected.expose_secret())[..],
        )
        .into();
        if same {
            // Spent now, atomically (two creations cannot share it); given
            // back if the creation fails.
            let (d, o) = (digest(&sent), organization.to_owned());
            let fresh = {
                let d = d.clone();
                with_conn(&state.pool, move |c| {
                    store::spend_bootstrap_token(c, &d, &o).map_err(ApiError::from)
                })
                .await?
            };
            if !fresh {
                return Err(ApiError::Forbidden(
                    "the bootstrap token has been used; an operator creates further \
                     organizations with a superuser's session token"
                        .into(),
                ));
            }
            return Ok(Some(d));
        }
    }
    if state.provider.is_superuser_session(&sent).await? {
        tracing::info!(
            organization,
            "a configured organization created by an operator"
        );
        return Ok(None);
    }
    Err(ApiError::Forbidden(
        "only an operator (a superuser's session) may create an organization named in the \
         directory's configuration"
            .into(),
    ))
}

/// `POST /org/create` (anyone, as in the Organization Management design; an organization named in the
/// directory's file needs the operators' bootstrap token): an
/// organization, its tenant storage and its admin account at the identity
/// provider, as one unit. 201. The caller's address goes to the provider
/// with the account's creation.
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let name = OrganizationName::parse("organization_name", &b.organization_name)?;
    let email = Email::parse(&b.email)?;
    let password = NewPassword::parse(b.password)?;
    let bootstrap = if state.config.current().organization(name.as_str()).is_some() {
        operators_only(&req, &state, name.as_str()).await?
    } else {
        None
    };
    let created = saga::create_organization(
        &state,
        NewOrganization {
            name: name.as_str().to_owned(),
            email,
            password: password.secret().clone(),
            end_user_address: state.settings.trusted_proxies.of_request(&req),
        },
    )
    .await;
    let org = match (created, bootstrap) {
        (Ok(org), _) => org,
        (Err(e), Some(d)) => {
            with_conn(&state.pool, move |c| {
                store::unspend_bootstrap_token(c, &d).map_err(ApiError::from)
            })
            .await?;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    tracing::info!(organization.id = %org.id, name = %org.name, "organization created");
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/org/get?organization_name={}", org.name),
        ))
        .json(OrganizationView::from(&org)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: SecretString,
}

/// `POST /admin/login` (anyone, as in the design): an organization admin's email and
/// password, checked by the identity provider, to a platform token
/// (`typ: org+jwt`, verifiable with our JWKS) carrying the organization
/// and the admin's session epoch (`sep`), and a refresh token for `POST
/// /admin/refresh`. The provider hears the caller's address, and throttles
/// failures by it.
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { email, password } = body.into_inner();
    let email = Email::parse(&email).map_err(|_| ApiError::InvalidCredentials)?;
    let e = email.as_str().to_owned();
    let org = with_conn(&state.pool, move |c| {
        store::organization_by_admin_email(c, &e).map_err(ApiError::from)
    })
    .await?;
    // No provider call for an unknown email: it would spend the
    // authenticator's per-address failure budget, which all directory
    // logins share. (Which emails administer an organization is no secret
    // worth a timing defence: `POST /org/create` answers 409 for them.)
    let Some(org) = org else {
        return Err(ApiError::InvalidCredentials);
    };
    let address = state.settings.trusted_proxies.of_request(&req);
    let signed_in = state
        .provider
        .authenticate(&org.admin_login, &password, address)
        .await?;
    if org.admin_reference_id.as_deref() != Some(signed_in.reference_id.as_str()) {
        return Err(ApiError::InvalidCredentials);
    }
    let answer = super::admin_refresh::signed_in(
        &state,
        &org,
        signed_in.reference_id,
        signed_in.session_epoch,
    )
    .await?;
    tracing::info!(organization.id = %org.id, "organization admin logged in");
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameQuery {
    organization_name: String,
}

/// `GET /org/get?organization_name=` (that organization's admin).
/// With WorkOS, what the provider says of it (its name, domains, and
/// whether it still exists there) under `provider`, once an event told.
async fn get(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    q: web::Query<NameQuery>,
) -> Result<HttpResponse, ApiError> {
    admin.must_own(&q.organization_name)?;
    let workos_id = state
        .config
        .current()
        .organization(&admin.organization.name)
        .and_then(|e| e.workos_id.clone());
    // The organization's row and the provider's, from one snapshot: an
    // applied provider event changes both in one transaction, so the
    // version shown is the one of the provider's state shown.
    let id = admin.organization.id;
    let (organization, provider) = with_conn(&state.pool, move |c| {
        c.build_transaction()
            .repeatable_read()
            .read_only()
            .run(|c| {
                let organization = store::organization(c, id)?;
                let provider = match &workos_id {
                    Some(w) => org_events::provider_organization(c, w)?,
                    None => None,
                };
                Ok::<_, diesel::result::Error>((organization, provider))
            })
            .map_err(ApiError::from)
    })
    .await?;
    let organization = organization.unwrap_or(admin.organization);
    Ok(HttpResponse::Ok().json(org_events::organization_view(
        &organization,
        provider.as_ref(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    organization_name: String,
    new_organization_name: Option<String>,
    email: Option<String>,
    password: Option<SecretString>,
}

/// `PUT /org/update` (that organization's admin): rename (atomic; the
/// tenant's data is keyed by id and follows), change the admin's email or
/// password (through the identity provider).
async fn update(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    body: web::Json<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    admin.must_own(&b.organization_name)?;
    let new_name = b
        .new_organization_name
        .as_deref()
        .map(|n| OrganizationName::parse("new_organization_name", n))
        .transpose()?;
    let email = b.email.as_deref().map(Email::parse).transpose()?;
    let password = b.password.map(NewPassword::parse).transpose()?;
    if new_name.is_none() && email.is_none() && password.is_none() {
        return Err(ApiError::BadRequest(
            "send new_organization_name, email or password".into(),
        ));
    }
    let org = admin.organization;
    let reference = org.admin_reference_id.clone().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("an active organization without admin"))
    })?;
    // Refuse what the database would refuse before asking the provider.
    let (n, e, id) = (
        new_name.as_ref().map(|n| n.as_str().to_owned()),
        email.as_ref().map(|e| e.as_str().to_owned()),
        org.id,
    );
    with_conn(&state.pool, move |c| {
        if let Some(n) = &n {
            if store::organization_by_name(c, n)?.is_some_and(|o| o.id != id) {
                return Err(ApiError::OrganizationTaken);
            }
        }
        if let Some(e) = &e {
            if store::organization_by_admin_email(c, e)?.is_some_and(|o| o.id != id) {
                return Err(ApiError::AdminEmailTaken);
            }
        }
        Ok(())
    })
    .await?;
    let email_changes = email
        .as_ref()
        .is_some_and(|e| !e.as_str().eq_ignore_ascii_case(&org.admin_email));
    if let (Some(e), true) = (&email, email_changes) {
        state
            .provider
            .change_email(&reference, e.as_str())
            .await
            .map_err(|e| match e {
                crate::provider::ProviderError::Conflict { .. } => ApiError::AdminEmailTaken,
                other => other.into(),
            })?;
    }
    if let Some(p) = &password {
        state.provider.set_password(&reference, p.secret()).await?;
        // The admin's refresh tokens end with the old password (with the
        // authenticator its new session epoch would refuse them too; with
        // WorkOS this is what ends them).
        let id = org.id;
        with_conn(&state.pool, move |c| {
            store::admin_refresh::revoke_families_of(c, id, "the admin's password changed")
                .map_err(ApiError::from)
        })
        .await?;
    }
    let (n, e, id) = (
        new_name.map(|n| n.as_str().to_owned()),
        email.map(|e| e.as_str().to_owned()),
        org.id,
    );
    let updated = with_conn(&state.pool, move |c| {
        store::update_organization(c, id, n.as_deref(), e.as_deref()).map_err(|e| {
            if is_unique_violation(&e, store::ORG_NAME_UNIQUE) {
                ApiError::OrganizationTaken
            } else if is_unique_violation(&e, store::ORG_ADMIN_EMAIL_UNIQUE) {
                ApiError::AdminEmailTaken
            } else {
                ApiError::Database(e)
            }
        })
    })
    .await;
    let updated = match updated {
        Ok(u) => u,
        Err(err) => {
            // Lost a race for the name or email: put the provider back.
            if email_changes {
                let _ = state
                    .provider
                    .change_email(&reference, &org.admin_email)
                    .await;
            }
            return Err(err);
        }
    }
    .ok_or_else(|| ApiError::NotFound("the organization no longer exists".into()))?;
    // Its members' answers carry its name: none is served from before.
    state.members.clear();
    state.outbox.nudge();
    tracing::info!(organization.id = %updated.id, "organization updated");
    Ok(HttpResponse::Ok().json(OrganizationView::from(&updated)))
}

/// `DELETE /org/delete?organization_name=` (that organization's admin):
/// the organization, its memberships and tenant data go (and are
/// published); the admin's account is removed at the provider.
async fn delete(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    q: web::Query<NameQuery>,
) -> Result<HttpResponse, ApiError> {
    admin.must_own(&q.organization_name)?;
    let id = admin.organization.id;
    let org = with_conn(&state.pool, move |c| {
        store::delete_organization(c, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("the organization no longer exists".into()))?;
    state.members.clear();
    state.outbox.nudge();
    state.reconcile.notify_one();
    tracing::info!(organization.id = %org.id, name = %org.name, "organization deleted");
    Ok(HttpResponse::Ok().json(json!({
        "message": "Organization deleted",
        "organization_name": org.name,
    })))
}

/// `GET /org/data` (the organization's admin): the tenant's stored data.
async fn get_data(admin: OrgAdmin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = admin.organization.id;
    let rows = with_conn(&state.pool, move |c| {
        store::tenant_data_of(c, id).map_err(ApiError::from)
    })
    .await?;
    let map: Map<String, Value> = rows.into_iter().collect();
    Ok(HttpResponse::Ok().json(json!({
        "organization_name": admin.organization.name,
        "data": map,
    })))
}

/// `PUT /org/data/{key}` (the organization's admin): stores a JSON value
/// in the tenant's data.
async fn put_data(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    key: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = key.into_inner();
    let ok = (1..=64).contains(&key.len())
        && !key.starts_with('_')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !ok {
        return Err(ApiError::BadRequest(
            "key must be 1 to 64 of A-Z a-z 0-9 _ - . and not start with '_'".into(),
        ));
    }
    let (id, value) = (admin.organization.id, body.into_inner());
    let v = value.clone();
    with_conn(&state.pool, move |c| {
        store::put_tenant_data(c, id, &key, &v).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(value))
}
