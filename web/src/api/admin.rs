//! `admin/status.json`: what an administrator's page shows: users, disk use, version and the
//! shard workers. Administrators only, through a login session (as in emoncms, an apikey never
//! carries admin rights).

use std::path::Path;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;

pub async fn handle(call: &Call<'_>) -> ApiResult {
    if !call.caller.is_some_and(|c| c.user.admin && !c.via_apikey) {
        return Err(ApiError::Text(
            StatusCode::FORBIDDEN,
            "Admin only: log in as an administrator".into(),
        ));
    }
    match call.route.action.as_str() {
        "status" => status(call).await,
        _ => Err(ApiError::RouteNotFound { json: true }),
    }
}

async fn status(call: &Call<'_>) -> ApiResult {
    let catalog = &call.state.catalog;
    let users = catalog.list_users().await?;
    let mut rows = Vec::with_capacity(users.len());
    for u in users {
        let feeds = catalog.feeds_for_user(u.id).await?.len();
        let inputs = catalog.inputs_for_user(u.id).await?.len();
        rows.push(json!({
            "id": u.id, "username": u.username, "email": u.email, "admin": u.admin,
            "feeds": feeds, "inputs": inputs, "created": u.created, "lastlogin": u.lastlogin,
        }));
    }
    let root = call.state.settings.data_dir.clone();
    let disk = tokio::task::spawn_blocking(move || disk_use(&root))
        .await
        .unwrap_or(Value::Null);
    let shards = shard_status(call.state).await;
    let mut body = json!({
        "version": call.state.version,
        "emoncms_api": super::system::EMONCMS_API_VERSION,
        "users": rows,
        "disk": disk,
        "shards": shards,
    });
    for (name, report) in &call.state.ops.reports {
        body[*name] = report();
    }
    // Cluster mode: every node's shards, this node's first.
    if let Some(f) = &call.state.forwarder {
        let mut nodes = vec![json!({"node": f.node_id(), "shards": body["shards"].clone()})];
        for addr in f.other_nodes() {
            nodes.push(match f.node_status(&addr).await {
                Ok(v) => v,
                Err(e) => json!({"address": addr, "error": e}),
            });
        }
        body["nodes"] = Value::Array(nodes);
    }
    Ok(reply::json(body))
}

/// This node's shard workers (cluster mode: one per vshard it serves).
async fn shard_status(state: &crate::state::AppState) -> Vec<Value> {
    state
        .router
        .status()
        .await
        .into_iter()
        .enumerate()
        .map(|(n, s)| match s {
            Ok(s) => json!({"shard": s.shard, "state": "running", "users_loaded": s.users_loaded,
                "submissions": s.submissions, "replayed_at_start": s.replayed_at_start}),
            Err(e) => json!({"shard": n, "state": e.to_string()}),
        })
        .collect()
}

/// `ynni/nodestatus.json`, for another node of the cluster only: this node's id and shards.
pub async fn node_status(state: &crate::state::AppState) -> axum::response::Response {
    let node = state.forwarder.as_ref().map(|f| f.node_id().to_string());
    reply::json(json!({"node": node, "shards": shard_status(state).await}))
}

/// Bytes under each top-level entry of the data directory, and the total.
fn disk_use(root: &Path) -> Value {
    let mut parts = serde_json::Map::new();
    let mut total = 0u64;
    if let Ok(read) = std::fs::read_dir(root) {
        let mut entries: Vec<_> = read.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let n = tree_size(&e.path());
            total += n;
            parts.insert(e.file_name().to_string_lossy().into_owned(), json!(n));
        }
    }
    json!({"data_dir": root.display().to_string(), "total_bytes": total, "parts": parts})
}

fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|read| read.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_sums_each_part() {
        let dir = std::env::temp_dir().join(format!("ynni-disk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("phpfina")).expect("mkdir");
        std::fs::write(dir.join("phpfina/1.dat"), [0u8; 400]).expect("write");
        std::fs::write(dir.join("catalog.db"), [0u8; 100]).expect("write");
        let v = disk_use(&dir);
        assert_eq!(v["total_bytes"], 500);
        assert_eq!(v["parts"]["phpfina"], 400);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
