//! HTTP routes, all behind `read:analytics`. Each module registers its own.

mod balances;
mod dashboard;
mod earnings;
mod tasks;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    dashboard::configure(cfg);
    earnings::configure(cfg);
    balances::configure(cfg);
    tasks::configure(cfg);
}
