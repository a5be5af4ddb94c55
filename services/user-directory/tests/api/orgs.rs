use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn an_admin_creates_an_organization_logs_in_and_deletes_it() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let name = unique("Acme");
    let email = format!("Admin@{name}.example");
    let r = app.create_org(&name, &email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let org: Value = r.json().await.unwrap();
    assert_eq!(org["organization_name"], name);
    // Login: a platform token, verifiable by our JWKS, carrying the organization.
    let r = app.login(&email.to_lowercase(), PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");
    let token = v["access_token"].as_str().unwrap().to_owned();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("org+jwt"));
    let jwks: Value = app
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .unwrap();
    let key = jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["org"], org["id"]);
    assert_eq!(claims["org_name"], name);
    // Get needs the token (the Organization Management design leaked the admin's email to anyone).
    let path = format!("/org/get?organization_name={name}");
    assert_problem(
        app.call(Method::GET, &path, None, None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let r = app.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["email"], email);
    // Wrong password.
    assert_problem(
        app.login(&email, "Wrong-Passw0rd!").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Delete, then nothing works any more.
    let r = app
        .call(
            Method::DELETE,
            &format!("/org/delete?organization_name={name}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(
        app.call(Method::GET, &path, Some(&token), None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(app.login(&email, PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    // Its events: created, then deleted.
    let id = org["id"].as_str().unwrap();
    let events = app.events_for("directory.organization.v1", &[id], 2).await;
    let ops: Vec<_> = events
        .iter()
        .map(|e| serde_json::to_value(e.op).unwrap())
        .collect();
    assert_eq!(ops, vec![json!("c"), json!("d")]);
    // The admin's account is removed at the provider (deactivated).
    let root = app.root().await;
    let auth = app.auth.clone().unwrap();
    eventually(20, "the admin deactivated", || async {
        let v: Value = app
            .http
            .get(format!("{auth}/v1/users?limit=200"))
            .bearer_auth(&root)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let admin = v["items"]
            .as_array()?
            .iter()
            .find(|a| a["email"].as_str() == Some(&email))?
            .clone();
        (admin["is_active"] == false).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_second_organizations_admin_can_neither_delete_nor_rename_the_first() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let first = app.org().await;
    let second = app.org().await;
    let r = app
        .call(
            Method::DELETE,
            &format!("/org/delete?organization_name={}", first.name),
            Some(&second.token),
            None,
        )
        .await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = app
        .call(
            Method::PUT,
            "/org/update",
            Some(&second.token),
            Some(
                json!({"organization_name": first.name, "new_organization_name": unique("stolen")}),
            ),
        )
        .await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = app.call(Method::PUT, "/org/update", Some(&second.token),
        Some(json!({"organization_name": first.name, "email": "thief@example.com", "password": "Thief-Passw0rd!"}))).await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = app
        .call(
            Method::GET,
            &format!("/org/get?organization_name={}", first.name),
            Some(&second.token),
            None,
        )
        .await;
    assert_problem(r, StatusCode::FORBIDDEN).await;
    // The first is untouched, and its admin still logs in.
    let r = app
        .call(
            Method::GET,
            &format!("/org/get?organization_name={}", first.name),
            Some(&first.token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["email"], first.email);
    app.token(&first.email, PASSWORD).await;
    // Tenant data is the caller's own only: there is no way to name another's.
    let r = app
        .call(
            Method::PUT,
            "/org/data/plan",
            Some(&first.token),
            Some(json!({"tier": "gold"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let theirs: Value = app
        .call(Method::GET, "/org/data", Some(&second.token), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs["data"].get("plan").is_none());
}

#[tokio::test]
async fn names_and_admin_emails_are_unique_regardless_of_case() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let r = app
        .create_org(&org.name.to_uppercase(), "other@example.com", PASSWORD)
        .await;
    let p = assert_problem(r, StatusCode::CONFLICT).await;
    assert_eq!(p["field"], "organization_name");
    let r = app
        .create_org(&unique("other"), &org.email.to_uppercase(), PASSWORD)
        .await;
    let p = assert_problem(r, StatusCode::CONFLICT).await;
    assert_eq!(p["field"], "email");
}

#[tokio::test]
async fn weak_or_overlong_passwords_and_bad_names_are_refused_and_nothing_is_kept() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let name = unique("org");
    let email = format!("a@{name}.example");
    for (password, rule) in [
        ("short1!", "min_length"),
        ("alllowercase", "character_classes"),
        (&*format!("Aa1!{}", "x".repeat(69)), "max_bytes"),
        ("Password1", "common_password"), // the authenticator's own rule
    ] {
        let p = assert_problem(
            app.create_org(&name, &email, password).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["field"], "password", "{p}");
        assert_eq!(p["rule"], rule, "{p}");
    }
    for bad in ["a", "has space", "émigré", &"x".repeat(65)] {
        let p = assert_problem(
            app.create_org(bad, &email, PASSWORD).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["field"], "organization_name");
    }
    assert_eq!(app.count("organizations"), 0);
    // The name and email are free.
    assert_eq!(
        app.create_org(&name, &email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_rename_is_atomic_and_the_tenant_data_follows() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let r = app
        .call(
            Method::PUT,
            "/org/data/settings",
            Some(&org.token),
            Some(json!({"theme": "dark"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_name = unique("renamed");
    let r = app
        .call(
            Method::PUT,
            "/org/update",
            Some(&org.token),
            Some(json!({"organization_name": org.name, "new_organization_name": new_name})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["organization_name"],
        new_name
    );
    // The same token still works (it names the organization by id).
    let data: Value = app
        .call(Method::GET, "/org/data", Some(&org.token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(data["organization_name"], new_name);
    assert_eq!(data["data"]["settings"]["theme"], "dark");
    let r = app
        .call(
            Method::GET,
            &format!("/org/get?organization_name={new_name}"),
            Some(&org.token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The old name is free again.
    assert_eq!(
        app.create_org(&org.name, &format!("b@{}.example", org.name), PASSWORD)
            .await
            .status(),
        StatusCode::CREATED
    );
    let events = app
        .events_for("directory.organization.v1", &[&org.id], 2)
        .await;
    assert_eq!(
        events[1].after.as_ref().unwrap()["organization_name"],
        new_name
    );
}

#[tokio::test]
async fn the_admin_changes_email_and_password_through_the_provider() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let new_email = format!("new@{}.example", org.name);
    let r = app.call(Method::PUT, "/org/update", Some(&org.token),
        Some(json!({"organization_name": org.name, "email": new_email, "password": "Newer-Passw0rd!"}))).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_problem(
        app.login(&org.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        app.login(&new_email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let fresh = app.token(&new_email, "Newer-Passw0rd!").await;
    // A password change ends the admin's sessions, this token's too.
    let get = format!("/org/get?organization_name={}", org.name);
    eventually(60, "the old token refused", || async {
        let r = app.call(Method::GET, &get, Some(&org.token), None).await;
        (r.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    let r = app.call(Method::GET, &get, Some(&fresh), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The authenticator holds the new email.
    let v = app.authenticator_get("/v1/users?limit=200").await;
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["email"] == new_email));
    // A weak new password is refused before anything changes.
    let r = app
        .call(
            Method::PUT,
            "/org/update",
            Some(&fresh),
            Some(json!({"organization_name": org.name, "password": "weak"})),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_provider_outage_leaves_no_organization_behind() {
    let app = spawn_with_authenticator(Tweaks {
        tweak: Box::new(|o| {
            if let user_directory::config::ProviderSettings::Authenticator {
                authenticator_url,
                ..
            } = &mut o.provider
            {
                *authenticator_url = format!("http://127.0.0.1:{}", testkit::free_port());
            }
            o.saga_lease = std::time::Duration::from_millis(300);
        }),
        ..Tweaks::default()
    })
    .await;
    let name = unique("org");
    let r = app
        .create_org(&name, &format!("a@{name}.example"), PASSWORD)
        .await;
    let p = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        p["type"],
        "https://errors.platform.example/provider-unavailable"
    );
    // The reservation is dropped by the reconciler once its lease passed.
    eventually(20, "the reservation dropped", || async {
        (app.count("organizations") == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stranger_cannot_claim_an_organization_named_in_the_configuration() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let name = unique("reserved");
    app.add_config_org(&name, None);
    let body = |name: &str| {
        serde_json::json!({"organization_name": name, "email": format!("{name}@example.com"),
                           "password": crate::helpers::PASSWORD})
    };
    let create = |token: Option<String>, name: String| {
        let app = &app;
        async move {
            app.call(
                reqwest::Method::POST,
                "/org/create",
                token.as_deref(),
                Some(body(&name)),
            )
            .await
        }
    };
    // Without a token, with a made-up one, and with an ordinary user's session.
    let r = create(None, name.clone()).await;
    crate::helpers::assert_problem(r, reqwest::StatusCode::UNAUTHORIZED).await;
    let r = create(Some("guess".into()), name.clone()).await;
    crate::helpers::assert_problem(r, reqwest::StatusCode::FORBIDDEN).await;
    let auth = app.auth.clone().unwrap();
    let stranger = crate::helpers::new_account_session(&app.http, &auth).await;
    let r = create(Some(stranger), name.clone()).await;
    crate::helpers::assert_problem(r, reqwest::StatusCode::FORBIDDEN).await;
    // The one-time bootstrap token creates one; then it is spent.
    let r = create(
        Some(testkit::user_directory::BOOTSTRAP_TOKEN.into()),
        name.clone(),
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let second = unique("reserved");
    app.add_config_org(&second, None);
    let r = create(
        Some(testkit::user_directory::BOOTSTRAP_TOKEN.into()),
        second.clone(),
    )
    .await;
    crate::helpers::assert_problem(r, reqwest::StatusCode::FORBIDDEN).await;
    // An operator (a superuser's session) creates the next.
    let r = app
        .create_org(
            &second,
            &format!("{second}@example.com"),
            crate::helpers::PASSWORD,
        )
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    // An organization nobody configured stays open to anyone (the design's rule).
    let r = create(None, unique("free")).await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
}
