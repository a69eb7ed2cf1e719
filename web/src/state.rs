//! What every request handler shares.

use std::sync::Arc;

use ynni_config::Settings;
use ynni_core::Catalog;

use crate::ratelimit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub settings: Arc<Settings>,
    pub limiter: Arc<RateLimiter>,
    /// Reported by `/version`.
    pub version: &'static str,
}

impl AppState {
    pub fn new(catalog: Catalog, settings: Arc<Settings>, version: &'static str) -> Self {
        Self {
            catalog,
            settings,
            limiter: Arc::new(RateLimiter::default()),
            version,
        }
    }
}
