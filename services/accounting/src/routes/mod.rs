//! HTTP routes. Each module registers its own.

mod accounts;
mod closes;
mod earnings;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    accounts::configure(cfg);
    earnings::configure(cfg);
    closes::configure(cfg);
}
