//! The notifier's own routes: none. It serves the platform's endpoints
//! (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) only; what it
//! sends is seen in its logs, its metrics and its `deliveries` table.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
