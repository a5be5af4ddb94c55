//! The routes the service registers and the operations of the OpenAPI
//! document it serves are the same (see `platform::routecheck`): nothing
//! documented is missing, nothing served is undocumented.

/// The analytics service alone: no request of the check gets as far as
/// asking the safekeeper.
#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_served() {
    let db = testkit::analytics::database();
    let app = testkit::analytics::spawn(testkit::analytics::Options::new(
        testkit::shared_brokers(),
        &db,
        "http://127.0.0.1:9",
    ))
    .await;
    testkit::assert_routes_match_its_document(&app.address, env!("CARGO_MANIFEST_DIR")).await;
    app.stop().await;
}
