//! HTTP routes. Each module registers its own.

mod accounts;
mod closes;
mod dashboard;
mod earnings;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    dashboard::configure(cfg);
    accounts::configure(cfg);
    earnings::configure(cfg);
    closes::configure(cfg);
}
