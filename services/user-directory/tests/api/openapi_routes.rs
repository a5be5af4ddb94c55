//! The routes the service registers and the operations of the OpenAPI
//! document it serves are the same (see `platform::routecheck`): nothing
//! documented is missing, nothing served is undocumented.

use crate::helpers::{spawn_with_workos, Tweaks};

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_served() {
    let app = spawn_with_workos(Tweaks::default()).await;
    testkit::assert_routes_match_its_document(&app.address, env!("CARGO_MANIFEST_DIR")).await;
}
