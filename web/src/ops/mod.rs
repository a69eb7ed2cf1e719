//! What an operator's tools read: `GET /health` (the process answers), `GET /ready` (it can
//! serve: catalog, shards, broker and, in a cluster, leases) and `GET /metrics` (Prometheus).

pub mod health;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// One readiness check the server adds beside the web crate's own (the broker's, which this
/// crate does not depend on): `Ok` with a detail for administrators, or why it fails.
pub type Check = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Work run just before each scrape (gauges read from parts this crate does not own).
pub type ScrapeHook = Arc<dyn Fn() + Send + Sync>;

/// A part of the administrators' status page (`admin/status.json`) that this crate does not
/// own (scheduled backups).
pub type Report = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The checks, hooks and metrics recorder of this server.
#[derive(Clone, Default)]
pub struct Ops {
    pub(crate) checks: Vec<(&'static str, Check)>,
    pub(crate) scrape_hooks: Vec<ScrapeHook>,
    pub(crate) reports: Vec<(&'static str, Report)>,
    pub(crate) metrics: Option<::metrics_exporter_prometheus::PrometheusHandle>,
}

impl Ops {
    /// Adds a readiness check named `name`.
    pub fn check(
        mut self,
        name: &'static str,
        f: impl Fn() -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(f)));
        self
    }

    /// Adds work run before each scrape of `/metrics`.
    pub fn on_scrape(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.scrape_hooks.push(Arc::new(f));
        self
    }

    /// Adds `name` to the administrators' status, as `f` reports it at each request.
    pub fn report(
        mut self,
        name: &'static str,
        f: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.reports.push((name, Arc::new(f)));
        self
    }

    /// Serves `/metrics` from `handle`'s recorder.
    pub fn with_metrics(mut self, handle: ::metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::scrape))
}

/// Whether `presented` is `expected`, compared in time independent of where they differ.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() || presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The bearer token of `headers`, if any.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Whether the request carries the metrics token.
fn has_metrics_token(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let token = state.settings.http.metrics_token.as_bytes();
    bearer(headers).is_some_and(|b| same_secret(b.as_bytes(), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal_and_set() {
        assert!(same_secret(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!same_secret(b"abcdefghijklmnoq", b"abcdefghijklmnop"));
        assert!(!same_secret(b"abc", b"abcdefghijklmnop"));
        assert!(!same_secret(b"", b""));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            axum::http::header::AUTHORIZATION,
            axum::http::HeaderValue::from_static("Bearer  s3cret "),
        );
        assert_eq!(bearer(&h), Some("s3cret"));
        h.insert(
            axum::http::header::AUTHORIZATION,
            axum::http::HeaderValue::from_static("Basic abc"),
        );
        assert_eq!(bearer(&h), None);
    }
}
