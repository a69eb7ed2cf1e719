//! `GET /metrics`: every metric of the process in Prometheus's text format, for a scraper
//! presenting `Authorization: Bearer <[http] metrics_token>`.
//!
//! Crates record through the `metrics` facade; the recorder that collects them is installed
//! by [`install`] only when a token is set, so with metrics off recording costs nothing. The
//! HTTP layer here adds requests by route group and status, and their latency. A route
//! group is the first segment of the path (`input`, `feed`, `user`, ...), one of a fixed
//! list, so no client can make a new time series by asking for a new path.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

pub const HTTP_REQUESTS: &str = "ynni_http_requests_total";
pub const HTTP_SECONDS: &str = "ynni_http_request_duration_seconds";
pub const RATE_LIMITED: &str = "ynni_http_rate_limited_total";
pub const BUILD_INFO: &str = "ynni_build_info";

/// Latency buckets (seconds) of every `_seconds` histogram: from a WAL sync on a fast disk to
/// a flush on an SD card.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes: the
/// recorder keeps raw samples until then, so this bounds their memory.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Route groups that are counted by name; any other path is `other`.
const GROUPS: &[&str] = &[
    "input",
    "feed",
    "user",
    "process",
    "device",
    "dashboard",
    "app",
    "share",
    "admin",
    "billing",
    "usage",
    "myip",
    "version",
    "describe",
    "ynni",
    "ui",
    "health",
    "ready",
    "metrics",
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's metrics recorder (the first call; later calls return the same
/// handle) and records the build information. `None` if another recorder was installed.
pub fn install(version: &'static str) -> Option<PrometheusHandle> {
    let handle = RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone();
    metrics::gauge!(BUILD_INFO, "version" => version).set(1.0);
    handle
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route group and status"
    );
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request (to its headers, for streamed replies), by route group"
    );
    describe_counter!(
        RATE_LIMITED,
        "HTTP requests refused with 429 by a rate limit (logins, registrations)"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label says which build runs"
    );
}

/// Records each request's group, status and time.
pub async fn record(request: Request, next: Next) -> Response {
    let group = group_of(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "group" => group, "status" => status).increment(1);
    metrics::histogram!(HTTP_SECONDS, "group" => group).record(started.elapsed());
    response
}

/// The route group of `path`: its first segment (after emoncms's optional `/emoncms`
/// prefix, without a format suffix) if that is a known group, else `other`.
fn group_of(path: &str) -> &'static str {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let mut first = segments.next().unwrap_or("");
    if first == "emoncms" {
        first = segments.next().unwrap_or("");
    }
    let first = first.split('.').next().unwrap_or("");
    GROUPS
        .iter()
        .find(|g| **g == first)
        .copied()
        .unwrap_or("other")
}

pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(handle) = &state.ops.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "Metrics are off: set [http] metrics_token to turn them on",
        )
            .into_response();
    };
    if !super::has_metrics_token(&state, &headers) {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            "Metrics need the header Authorization: Bearer <[http] metrics_token>",
        )
            .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    for hook in &state.ops.scrape_hooks {
        hook();
    }
    let body = handle.render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_fixed_set_of_groups() {
        assert_eq!(group_of("/input/post.json"), "input");
        assert_eq!(group_of("/emoncms/feed/data.json"), "feed");
        assert_eq!(group_of("/input/post"), "input");
        assert_eq!(group_of("/"), "other");
        assert_eq!(group_of("/emoncms"), "other");
        assert_eq!(group_of("/anything-a-client-invents"), "other");
        assert_eq!(group_of("/ui/app.js"), "ui");
        assert_eq!(group_of("/metrics"), "metrics");
    }
}
