//! HTTP routes, all behind `read:analytics`. Each module registers its own.

mod balances;
mod earnings;
mod tasks;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    earnings::configure(cfg);
    balances::configure(cfg);
    tasks::configure(cfg);
}
