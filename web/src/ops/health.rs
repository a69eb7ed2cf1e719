//! `GET /health` and `GET /ready`.
//!
//! `/health` says the process answers HTTP; a supervisor restarts the server when it stops
//! answering. `/ready` says it can do its work: the catalog answers, every shard worker is
//! open and writing, the broker runs and, in a cluster, this node holds leases. Load
//! balancers send traffic only to ready nodes. Anyone gets the verdict (200 or 503); an
//! administrator's session or the metrics token also gets each check's detail.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::{self, Auth};
use crate::params::Params;
use crate::state::AppState;

/// A check that has not answered after this long fails: a probe must answer in time even when
/// the thing it asks about hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health(State(state): State<AppState>) -> Response {
    axum::Json(json!({"status": "ok", "version": state.version})).into_response()
}

pub async fn ready(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let mut checks = vec![
        ("catalog", catalog(&state).await),
        ("shards", shards(&state).await),
    ];
    for (name, check) in &state.ops.checks {
        checks.push((name, check()));
    }
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let mut body = json!({"status": if ready { "ready" } else { "not ready" }});
    if may_see_detail(&state, &uri, &headers).await {
        let detail: Map<String, Value> = checks
            .into_iter()
            .map(|(name, r)| {
                let v = match r {
                    Ok(d) => json!({"ok": true, "detail": d}),
                    Err(e) => json!({"ok": false, "detail": e}),
                };
                (name.to_string(), v)
            })
            .collect();
        body["checks"] = Value::Object(detail);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn catalog(state: &AppState) -> Result<String, String> {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, state.catalog.ping()).await {
        Ok(Ok(())) => Ok(format!(
            "answered in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {} s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn shards(state: &AppState) -> Result<String, String> {
    let Ok(statuses) = tokio::time::timeout(CHECK_TIMEOUT, state.router.status()).await else {
        return Err(format!(
            "shard workers did not answer in {} s",
            CHECK_TIMEOUT.as_secs()
        ));
    };
    let cluster = state.forwarder.is_some();
    if statuses.is_empty() {
        return Err(if cluster {
            "this node holds no vshard leases yet".into()
        } else {
            "no shard worker is open".into()
        });
    }
    let mut failed = Vec::new();
    for s in &statuses {
        match s {
            Ok(s) if s.store_failed => failed.push(format!("shard {} refuses writes", s.shard)),
            Ok(_) => {}
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        return Err(failed.join("; "));
    }
    Ok(if cluster {
        format!("{} vshards held and open", statuses.len())
    } else {
        format!("{} shard workers open", statuses.len())
    })
}

/// An administrator's session, or the metrics token.
async fn may_see_detail(state: &AppState, uri: &Uri, headers: &HeaderMap) -> bool {
    if super::has_metrics_token(state, headers) {
        return true;
    }
    let params = Params::parse(uri.query(), None, b"");
    matches!(
        auth::authenticate(state, &params, headers).await,
        Ok(Auth::Caller(c)) if c.user.admin && !c.via_apikey
    )
}
