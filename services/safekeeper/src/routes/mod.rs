//! HTTP routes. Each module registers its own.

mod admin;
mod oauth;
mod pages;
mod seed;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    seed::configure(cfg);
    oauth::configure(cfg);
    admin::configure(cfg);
}
