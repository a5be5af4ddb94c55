//! A local server that speaks the documented WorkOS wire format for the
//! endpoints the directory uses, with switches to fail a given call.
//! Test-only code.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

pub const API_KEY: &str = "sk_test_fake_workos_key";
pub const CLIENT_ID: &str = "client_fake";

#[derive(Default)]
pub struct FakeState {
    pub users: BTreeMap<String, Value>,
    pub passwords: BTreeMap<String, String>,
    pub memberships: BTreeMap<String, Value>,
    pub events: Vec<Value>,
    /// Calls that answer 500: "create_user", "create_membership", ...
    pub failing: HashSet<&'static str>,
    pub calls: Vec<String>,
    /// The `ip_address` of each password authentication, in order.
    pub sign_in_addresses: Vec<Option<String>>,
    seq: u64,
}

#[derive(Clone)]
pub struct FakeWorkOs {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl FakeWorkOs {
    pub fn fail(&self, call: &'static str, on: bool) {
        let mut s = self.state.lock().unwrap();
        if on {
            s.failing.insert(call);
        } else {
            s.failing.remove(call);
        }
    }

    pub fn users(&self) -> Vec<Value> {
        self.state.lock().unwrap().users.values().cloned().collect()
    }

    pub fn memberships(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .memberships
            .values()
            .cloned()
            .collect()
    }

    /// Adds a user as if made in the WorkOS dashboard; returns it.
    pub fn add_user(&self, email: &str) -> Value {
        let mut s = self.state.lock().unwrap();
        s.seq += 1;
        let id = format!("user_{:026}", s.seq);
        let u = json!({"object": "user", "id": id, "email": email, "first_name": "Dash", "last_name": "Board",
                       "email_verified": false, "created_at": now(), "updated_at": now()});
        s.users.insert(id, u.clone());
        u
    }

    /// Appends an event to the Events API (as if its webhook was lost).
    pub fn push_event(&self, event: &str, data: Value) -> Value {
        let mut s = self.state.lock().unwrap();
        s.seq += 1;
        let e = json!({"object": "event", "id": format!("event_{:026}", s.seq), "event": event,
                       "data": data, "created_at": now()});
        s.events.push(e.clone());
        e
    }
}

/// An organization in the WorkOS wire format (the `data` of
/// `organization.created|updated|deleted` events, as the Organizations API
/// answers it): `domains` are `organization_domain` objects.
pub fn organization(id: &str, name: &str, domains: &[&str], updated_at: &str) -> Value {
    let domains: Vec<Value> = domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"object": "organization_domain", "id": format!("org_domain_{i:026}"),
                   "organization_id": id, "domain": d, "state": "verified",
                   "verification_strategy": "dns", "verification_prefix": null,
                   "verification_token": null,
                   "created_at": "2026-01-01T00:00:00.000Z", "updated_at": updated_at})
        })
        .collect();
    json!({"object": "organization", "id": id, "name": name,
           "allow_profiles_outside_organization": false, "domains": domains,
           "metadata": {}, "external_id": null, "stripe_customer_id": null,
           "created_at": "2026-01-01T00:00:00.000Z", "updated_at": updated_at})
}

fn authorized(req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {API_KEY}"))
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"code": code, "message": message}))
}

type Fake = web::Data<Arc<Mutex<FakeState>>>;

macro_rules! guard {
    ($req:expr, $s:expr, $call:expr) => {{
        if !authorized(&$req) {
            return error(401, "unauthorized", "bad API key");
        }
        let mut s = $s.lock().unwrap();
        s.calls.push($call.to_string());
        if s.failing.contains($call) {
            return error(500, "server_error", "injected failure");
        }
        s
    }};
}

async fn create_user(req: HttpRequest, st: Fake, body: web::Json<Value>) -> HttpResponse {
    let mut s = guard!(req, st, "create_user");
    let email = body["email"].as_str().unwrap_or_default().to_lowercase();
    if s.users
        .values()
        .any(|u| u["email"].as_str() == Some(&email))
    {
        return HttpResponse::UnprocessableEntity().json(json!({"code": "user_creation_error", "message": "Could not create user.",
            "errors": [{"code": "email_not_available", "message": "This email is not available."}]}));
    }
    s.seq += 1;
    let id = format!("user_{:026}", s.seq);
    let u = json!({"object": "user", "id": id, "email": email, "first_name": body["first_name"], "last_name": body["last_name"],
                   "email_verified": false, "profile_picture_url": null, "metadata": body.get("metadata").cloned().unwrap_or(json!({})),
                   "created_at": now(), "updated_at": now()});
    if let Some(p) = body["password"].as_str() {
        s.passwords.insert(id.clone(), p.to_owned());
    }
    s.users.insert(id, u.clone());
    HttpResponse::Created().json(u)
}

async fn list_users(
    req: HttpRequest,
    st: Fake,
    q: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    let s = guard!(req, st, "list_users");
    let email = q.get("email").map(|e| e.to_lowercase());
    let data: Vec<Value> = s
        .users
        .values()
        .filter(|u| {
            email
                .as_deref()
                .is_none_or(|e| u["email"].as_str() == Some(e))
        })
        .cloned()
        .collect();
    HttpResponse::Ok().json(
        json!({"object": "list", "data": data, "list_metadata": {"before": null, "after": null}}),
    )
}

async fn get_user(req: HttpRequest, st: Fake, id: web::Path<String>) -> HttpResponse {
    let s = guard!(req, st, "get_user");
    match s.users.get(id.as_str()) {
        Some(u) => HttpResponse::Ok().json(u),
        None => error(404, "entity_not_found", "not found"),
    }
}

async fn update_user(
    req: HttpRequest,
    st: Fake,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut s = guard!(req, st, "update_user");
    if let Some(p) = body["password"].as_str() {
        s.passwords.insert(id.to_string(), p.to_owned());
    }
    let Some(u) = s.users.get_mut(id.as_str()) else {
        return error(404, "entity_not_found", "not found");
    };
    for k in ["email", "first_name", "last_name"] {
        if let Some(v) = body.get(k) {
            u[k] = v.clone();
        }
    }
    // Metadata keys are merged; a null value removes one.
    if let Some(meta) = body.get("metadata").and_then(Value::as_object) {
        if !u["metadata"].is_object() {
            u["metadata"] = json!({});
        }
        for (k, v) in meta {
            if v.is_null() {
                u["metadata"].as_object_mut().unwrap().remove(k);
            } else {
                u["metadata"][k] = v.clone();
            }
        }
    }
    u["updated_at"] = json!(now());
    HttpResponse::Ok().json(u.clone())
}

async fn delete_user(req: HttpRequest, st: Fake, id: web::Path<String>) -> HttpResponse {
    let mut s = guard!(req, st, "delete_user");
    if s.users.remove(id.as_str()).is_none() {
        return error(404, "entity_not_found", "not found");
    }
    let id = id.into_inner();
    s.memberships
        .retain(|_, m| m["user_id"].as_str() != Some(&id));
    HttpResponse::Accepted().finish()
}

async fn create_membership(req: HttpRequest, st: Fake, body: web::Json<Value>) -> HttpResponse {
    let mut s = guard!(req, st, "create_membership");
    let user = body["user_id"].as_str().unwrap_or_default().to_owned();
    if !s.users.contains_key(&user) {
        return error(404, "entity_not_found", "user not found");
    }
    s.seq += 1;
    let id = format!("om_{:026}", s.seq);
    let m = json!({"object": "organization_membership", "id": id, "user_id": user,
                   "organization_id": body["organization_id"], "role": {"slug": body["role_slug"]},
                   "status": "active", "created_at": now(), "updated_at": now()});
    s.memberships.insert(id, m.clone());
    HttpResponse::Created().json(m)
}

/// `PUT /user_management/organization_memberships/{id}` with `role_slug`.
async fn update_membership(
    req: HttpRequest,
    st: Fake,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut s = guard!(req, st, "update_membership");
    let Some(m) = s.memberships.get_mut(id.as_str()) else {
        return error(404, "entity_not_found", "not found");
    };
    if let Some(slug) = body["role_slug"].as_str() {
        m["role"] = json!({"slug": slug});
    }
    m["updated_at"] = json!(now());
    HttpResponse::Ok().json(m.clone())
}

async fn membership_state(
    req: HttpRequest,
    st: Fake,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let mut s = guard!(req, st, "membership_state");
    let (id, verb) = path.into_inner();
    let Some(m) = s.memberships.get_mut(&id) else {
        return error(404, "entity_not_found", "not found");
    };
    m["status"] = json!(if verb == "deactivate" {
        "inactive"
    } else {
        "active"
    });
    m["updated_at"] = json!(now());
    HttpResponse::Ok().json(m.clone())
}

async fn authenticate(st: Fake, body: web::Json<Value>) -> HttpResponse {
    let mut s = st.lock().unwrap();
    s.sign_in_addresses
        .push(body["ip_address"].as_str().map(str::to_owned));
    if body["client_secret"].as_str() != Some(API_KEY)
        || body["client_id"].as_str() != Some(CLIENT_ID)
    {
        return error(401, "invalid_client", "bad client");
    }
    let email = body["email"].as_str().unwrap_or_default().to_lowercase();
    let Some(u) = s
        .users
        .values()
        .find(|u| u["email"].as_str() == Some(&email))
    else {
        return error(400, "invalid_credentials", "Invalid credentials");
    };
    let id = u["id"].as_str().unwrap().to_owned();
    if s.passwords.get(&id).map(String::as_str) != body["password"].as_str() {
        return error(400, "invalid_credentials", "Invalid credentials");
    }
    HttpResponse::Ok().json(json!({"user": u, "access_token": "fake", "refresh_token": "fake"}))
}

async fn events(req: HttpRequest, st: Fake, q: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let s = guard!(req, st, "events");
    let after = q.iter().find(|(k, _)| k == "after").map(|(_, v)| v.clone());
    let start = match &after {
        Some(a) => s
            .events
            .iter()
            .position(|e| e["id"].as_str() == Some(a))
            .map(|i| i + 1)
            .unwrap_or(0),
        None => 0,
    };
    let data: Vec<Value> = s.events.iter().skip(start).take(100).cloned().collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data, "list_metadata": {"after": data.last().map(|e| e["id"].clone())}}))
}

pub async fn start() -> FakeWorkOs {
    let state = Arc::new(Mutex::new(FakeState::default()));
    let data = web::Data::new(state.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/user_management/users", web::post().to(create_user))
            .route("/user_management/users", web::get().to(list_users))
            .route("/user_management/users/{id}", web::get().to(get_user))
            .route("/user_management/users/{id}", web::put().to(update_user))
            .route("/user_management/users/{id}", web::delete().to(delete_user))
            .route(
                "/user_management/organization_memberships",
                web::post().to(create_membership),
            )
            .route(
                "/user_management/organization_memberships/{id}",
                web::put().to(update_membership),
            )
            .route(
                "/user_management/organization_memberships/{id}/{verb}",
                web::put().to(membership_state),
            )
            .route(
                "/user_management/authenticate",
                web::post().to(authenticate),
            )
            .route("/events", web::get().to(events))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    FakeWorkOs {
        url: format!("http://127.0.0.1:{port}"),
        state,
    }
}
