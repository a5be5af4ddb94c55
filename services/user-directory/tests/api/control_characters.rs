//! NUL bytes and other control characters in organization and user
//! fields, queries and imported files: 400 problem+json naming the rule,
//! never a 500 (PostgreSQL refuses NUL in text), and nothing is stored.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn assert_refused(r: reqwest::Response, place: &str) -> Value {
    let p = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["rule"], "no_control_characters", "{p}");
    assert_eq!(p["in"], place, "{p}");
    p
}

#[tokio::test]
async fn a_nul_byte_in_a_json_field_query_or_csv_is_400_and_stores_nothing() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org().await;
    let users = app.count("users");

    let name = unique("nulorg");
    app.add_config_org(&name, None);
    let r = app
        .create_org(
            &format!("{name}\u{0}"),
            &format!("admin@{name}.example"),
            PASSWORD,
        )
        .await;
    assert_refused(r, "body").await;
    let r = app.login(&format!("{}\u{0}", org.email), PASSWORD).await;
    assert_refused(r, "body").await;
    for (field, value) in [("first_name", "Ada\u{0}"), ("last_name", "Love\u{1b}lace")] {
        let mut body = json!({"email": format!("ada@{}.example", org.name), "first_name": "Ada",
            "last_name": "Lovelace", "organization": org.name, "role": "member"});
        body[field] = json!(value);
        let r = app
            .call(Method::POST, "/v1/users", Some(&org.token), Some(body))
            .await;
        assert_refused(r, "body").await;
    }
    let r = app
        .call(Method::GET, "/v1/users?email=%00", Some(&org.token), None)
        .await;
    assert_refused(r, "query").await;
    let r = app
        .call(
            Method::GET,
            "/v1/users?role=member%0A",
            Some(&org.token),
            None,
        )
        .await;
    assert_refused(r, "query").await;
    let domain = format!("{}.example", org.name);
    let csv = format!(
        "email,first_name,last_name,organization,role\n\
         grace@{d},Grace\0,Hopper,{o},member\n",
        d = domain,
        o = org.name
    );
    assert_refused(app.import(&org, "text/csv", csv).await, "body").await;

    assert_eq!(app.count("users"), users);
    assert_eq!(app.count("organizations"), 1);
    // The organization's admin still signs in, and lists its members.
    assert_eq!(
        app.login(&org.email, PASSWORD).await.status(),
        StatusCode::OK
    );
    app.users(&org, "role=member").await;
}
