//! `process/list.json` (the process catalog with argument types, for editors) and
//! `process/map.json` (numeric id → key).

use axum::response::Response;
use serde_json::{Map, Value, json};
use ynni_ingest::process::catalog::{ArgType, CATALOG, ProcessDef};

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;

pub fn handle(call: &Call<'_>) -> ApiResult {
    if call.caller.is_none() {
        return Err(ApiError::False);
    }
    match call.route.action.as_str() {
        "list" => Ok(list(call.params.get("context"))),
        "map" => Ok(map()),
        _ => Err(ApiError::False),
    }
}

fn arg_json(spec: &ynni_ingest::process::catalog::ArgSpec) -> Value {
    let mut a = Map::new();
    a.insert("type".into(), json!(spec.kind as u8));
    if spec.kind == ArgType::FeedId {
        a.insert("engines".into(), json!(spec.engines));
    }
    if let Some(d) = spec.default {
        a.insert("default".into(), json!(d));
    }
    if let Some(u) = spec.unit {
        a.insert("unit".into(), json!(u));
    }
    Value::Object(a)
}

fn process_json(d: &ProcessDef) -> Value {
    let mut p = Map::new();
    p.insert("id_num".into(), json!(d.id));
    p.insert("name".into(), json!(d.name));
    p.insert("short".into(), json!(d.short));
    p.insert("function".into(), json!(d.function));
    p.insert(
        "args".into(),
        Value::Array(d.args.iter().map(arg_json).collect()),
    );
    p.insert("group".into(), json!(d.group));
    if d.nochange {
        p.insert("nochange".into(), json!(true));
    }
    p.insert("input_context".into(), json!(d.input_context));
    p.insert("virtual_feed_context".into(), json!(d.virtual_context));
    p.insert("description".into(), json!(d.description));
    if let Some(u) = d.unit {
        p.insert("unit".into(), json!(u));
    }
    Value::Object(p)
}

/// `context=0` keeps the processes usable on inputs, `context=1` those usable in virtual feeds;
/// no context lists everything but the hidden ones.
fn list(context: Option<&str>) -> Response {
    let offered = |d: &ProcessDef| !d.deleted && d.group != "Hidden";
    let keep = |d: &ProcessDef| {
        offered(d)
            && match context {
                Some("0") => d.input_context,
                Some("1") => d.virtual_context,
                _ => true,
            }
    };
    let out: Map<String, Value> = CATALOG
        .iter()
        .filter(|d| keep(d))
        .map(|d| (d.key(), process_json(d)))
        .collect();
    reply::json(Value::Object(out))
}

fn map() -> Response {
    let out: Map<String, Value> = CATALOG
        .iter()
        .filter(|d| !d.deleted)
        .filter_map(|d| d.id.map(|id| (id.to_string(), json!(d.key()))))
        .collect();
    reply::json(Value::Object(out))
}
