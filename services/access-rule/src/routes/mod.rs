//! HTTP routes. Each module registers its own.

mod admin;
mod public;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    public::configure(cfg);
    admin::configure(cfg);
}
