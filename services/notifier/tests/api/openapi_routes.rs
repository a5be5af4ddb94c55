//! The routes the service registers and the operations of the OpenAPI
//! document it serves are the same (see `platform::routecheck`): nothing
//! documented is missing, nothing served is undocumented.

use crate::helpers::start;

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_served() {
    let h = start().await;
    testkit::assert_routes_match_its_document(&h.app.address, env!("CARGO_MANIFEST_DIR")).await;
    h.app.stop().await;
}
