//! HTTP routes. Each module registers its own.

mod summary;
pub mod tasks;
mod users;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    tasks::configure(cfg);
    summary::configure(cfg);
    users::configure(cfg);
}
