//! What the HTTP handlers share.

use platform::db::PgPool;

use crate::config::Settings;

pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
}
