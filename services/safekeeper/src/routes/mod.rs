//! HTTP routes. Each module registers its own.

mod admin;
pub use admin::forget_cached_clients;
mod oauth;
mod pages;
mod seed;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    seed::configure(cfg);
    oauth::configure(cfg);
    admin::configure(cfg);
}
