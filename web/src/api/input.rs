//! `input/post`, `input/bulk`, the read endpoints (`list`, `get`, `getinputs`) and process
//! lists; management actions are in `input_manage`. Posts are answered only once the shard
//! worker has made them durable; emoncms's replies are plain text even when they hold JSON.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use ynni_ingest::decode::{BulkParams, PostParams, decode_bulk, decode_post};
use ynni_ingest::shard::{LastValues, Submission};
use ynni_storage::Engine;

use super::{Call, input_manage};
use crate::error::{ApiError, ApiResult};
use crate::params::php_falsy;
use crate::reply;

pub async fn handle(call: &Call<'_>) -> ApiResult {
    match call.route.action.as_str() {
        "post" => post(call).await,
        "bulk" => bulk(call).await,
        "list" => list(call).await,
        "get" => get_inputs(call).await,
        // input_controller.php answers both spellings with the same model call.
        "getinputs" | "get_inputs" => get_ids(call).await,
        "process" => match call.route.subaction.as_str() {
            "get" => process_get(call).await,
            "set" => process_set(call).await,
            "reset" => input_manage::process_reset(call).await,
            _ => Err(ApiError::False),
        },
        // Management.
        "set" => input_manage::set(call).await,
        "set-descriptions" => input_manage::set_descriptions(call).await,
        "delete" => input_manage::delete(call).await,
        "clean" => input_manage::clean(call).await,
        "enable" => input_manage::creation(call, false).await,
        "disable" => input_manage::creation(call, true).await,
        "isdisabled" => input_manage::isdisabled(call).await,
        "set-node-input-descriptions" => input_manage::set_node_input_descriptions(call).await,
        "cleanprocesslistfeeds" => input_manage::clean_process_list_feeds(call).await,
        // emoncms's input controller ends every action it does not know (and a route such as
        // `input/post.json/<node>`, whose action is `post.json`) with its initial result,
        // `false`: never the 406 of an unknown controller.
        _ => Err(ApiError::False),
    }
}

/// A route segment as emoncms's `if ($route->subaction)` sees it: text PHP takes for false
/// (`""`, `"0"`) counts as absent.
fn truthy(segment: &str) -> Option<&str> {
    Some(segment).filter(|s| !php_falsy(Some(*s)))
}

/// Posting needs write access (see [`reply::write_access_needed`]).
fn write_user(call: &Call<'_>) -> Result<i64, ApiError> {
    match call.caller {
        Some(c) if c.write => Ok(c.user.id),
        _ => Err(ApiError::WriteAccessNeeded),
    }
}

/// `input/post` and `input/bulk` of an account past its grace period with nothing left.
pub const PAYMENT_REQUIRED: &str = "Payment required: this account's prepaid balance is used up \
     and its grace period has ended. Top up to resume posting; reading and exporting data keep \
     working, and nothing is deleted.";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn submit(
    call: &Call<'_>,
    userid: i64,
    mut batches: Vec<ynni_ingest::Decoded>,
) -> Result<(), ApiError> {
    // A device key posts its own node only. emoncms checks frame by frame and stops at the
    // first other node: the frames before it are stored, then the error is answered.
    let mut foreign = None;
    if let Some(node) = call.caller.and_then(|c| c.device_node.as_deref())
        && let Some(k) = batches.iter().position(|b| b.node != node)
    {
        foreign = Some(ApiError::PostFailure(format!(
            "Error: Node '{}' does not belong to device.",
            batches[k].node
        )));
        batches.truncate(k);
    }
    if batches.is_empty() {
        return foreign.map_or(Ok(()), Err);
    }
    if let Some(billing) = &call.state.billing
        && billing.refuses_writes(userid)
    {
        billing.count_refusal(userid);
        return Err(ApiError::Text(
            StatusCode::PAYMENT_REQUIRED,
            PAYMENT_REQUIRED.into(),
        ));
    }
    let mut admission = None;
    if let Some(billing) = &call.state.billing {
        let mut nodes: Vec<&str> = batches.iter().map(|b| b.node.as_str()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let values = batches.iter().map(|b| b.values.len()).sum();
        match billing.admit(userid, &nodes, values) {
            Ok(a) => admission = Some(a),
            Err(wait) => return Err(over_plan_rate(wait)),
        }
    }
    let submission = Submission {
        userid,
        batches,
        http: true,
    };
    let submitted = call.state.router.submit(submission).await;
    if submitted.as_ref().is_err_and(|e| !e.is_limit())
        && let (Some(billing), Some(admission)) = (&call.state.billing, admission)
    {
        // Not stored for now (a busy shard): the client's retry must find its allowance as
        // it was. A limit refuses the retry as well, so it is charged like a stored post.
        billing.give_back(userid, admission);
    }
    match submitted {
        Ok(()) => foreign.map_or(Ok(()), Err),
        // emoncms answers its node limit with a message and status 200; the other limits
        // follow it.
        Err(e) if e.is_limit() => Err(ApiError::PostFailure(e.to_string())),
        Err(e) => Err(ApiError::Ingest(e)),
    }
}

/// The answer to a write past the account's plan's rate: 429, and when to try again.
pub(crate) fn over_plan_rate(wait: u64) -> ApiError {
    ApiError::TooMany {
        retry_after: wait,
        message: format!(
            "Too many values: this account's plan limits how often it may post; retry in {wait} s"
        ),
    }
}

fn success(fulljson: bool) -> Response {
    reply::text(
        StatusCode::OK,
        if fulljson {
            "{\"success\": true}"
        } else {
            "ok"
        },
    )
}

async fn post(call: &Call<'_>) -> ApiResult {
    let userid = write_user(call)?;
    let p = call.params;
    let params = PostParams {
        // emoncms takes the route's subaction when it is truthy in PHP, so `input/post/0`
        // falls back to the `node` parameter (and then to node 0).
        path_node: truthy(call.route.subaction.as_str()),
        node: p.post_or_get("node"),
        time: p.post_or_get("time"),
        json: p.post_or_get("json"),
        fulljson: p.post_or_get("fulljson"),
        csv: p.post_or_get("csv"),
        data: p.post_or_get("data"),
    };
    let fulljson = params.fulljson.is_some();
    let decoded = decode_post(&params, now()).map_err(|e| ApiError::PostFailure(e.to_string()))?;
    submit(call, userid, vec![decoded]).await?;
    Ok(success(fulljson))
}

async fn bulk(call: &Call<'_>) -> ApiResult {
    let userid = write_user(call)?;
    let p = call.params;
    // emoncms's `Param::exists` is `isset`: `c=0` and `cb=` switch the mode on as well.
    let flag = |k: &str| p.post_or_get(k).is_some();
    let params = BulkParams {
        data: p.post_or_get("data"),
        hex_zlib: flag("c"),
        body_zlib: flag("cb").then_some(call.body),
        sentat: p.post_or_get("sentat"),
        offset: p.post_or_get("offset"),
        time: p.post_or_get("time"),
    };
    let result = decode_bulk(&params, now()).map_err(|e| ApiError::PostFailure(e.to_string()))?;
    // Rows before a bad one are stored, as in emoncms; then the error is reported.
    submit(call, userid, result.batches).await?;
    match result.error {
        Some(e) => Err(ApiError::PostFailure(e.to_string())),
        None => Ok(success(p.post_or_get("fulljson").is_some())),
    }
}

/// The user's inputs and the last time and value of each, as the shard worker holds them.
async fn inputs_and_last(
    call: &Call<'_>,
    userid: i64,
) -> Result<(Vec<ynni_core::catalog::InputRow>, LastValues), ApiError> {
    let rows = call.state.catalog.inputs_for_user(userid).await?;
    let last = call
        .state
        .router
        .input_last(userid)
        .await
        .map_err(ApiError::Ingest)?;
    Ok((rows, last))
}

/// `input/list`: every input of the caller with its last time and value (ids as strings, as
/// emoncms sends them).
async fn list(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller else {
        return Err(ApiError::False);
    };
    let (rows, last) = inputs_and_last(call, caller.user.id).await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let (time, value) = match last.get(&r.id) {
                Some(&(t, v)) => (json!(t), reply::number(v)),
                None => (Value::Null, Value::Null),
            };
            json!({
                "id": r.id.to_string(),
                "nodeid": r.nodeid,
                "name": r.name,
                "description": r.description,
                "processList": r.process_list,
                "time": time,
                "value": value,
            })
        })
        .collect();
    Ok(reply::json(Value::Array(items)))
}

/// The caller's input with the `inputid` parameter, if they own it.
async fn own_input(
    call: &Call<'_>,
) -> Result<Option<(i64, ynni_core::catalog::InputRow)>, ApiError> {
    let Some(caller) = call.caller else {
        return Ok(None);
    };
    let Some(id) = call.params.get("inputid").map(input_manage::php_int) else {
        return Ok(None);
    };
    let rows = call.state.catalog.inputs_for_user(caller.user.id).await?;
    Ok(rows
        .into_iter()
        .find(|r| r.id == id)
        .map(|r| (caller.user.id, r)))
}

/// `input/process/get`: the stored list as a JSON string, `false` for an unknown input.
async fn process_get(call: &Call<'_>) -> ApiResult {
    match own_input(call).await? {
        Some((_, row)) if call.caller.is_some_and(|c| c.write) => {
            Ok(reply::json(json!(row.process_list)))
        }
        _ => Err(ApiError::False),
    }
}

struct Owned {
    feeds: std::collections::HashSet<String>,
    inputs: std::collections::HashSet<String>,
}

impl ynni_ingest::process::list::Ownership for Owned {
    fn owns_feed(&self, id: &str) -> bool {
        self.feeds.contains(id.trim())
    }
    fn owns_input(&self, id: &str) -> bool {
        self.inputs.contains(id.trim())
    }
}

/// `input/process/set`: validates the JSON list (emoncms's messages), stores it, and has the
/// user's worker use it from the next packet on. An unchanged list is a success (DESIGN §4).
async fn process_set(call: &Call<'_>) -> ApiResult {
    let (userid, row) = match own_input(call).await? {
        Some(found) if call.caller.is_some_and(|c| c.write) => found,
        _ => return Err(ApiError::False),
    };
    let catalog = &call.state.catalog;
    let feeds = catalog.feeds_for_user(userid).await?;
    let inputs = catalog.inputs_for_user(userid).await?;
    let owned = Owned {
        // Virtual feeds are computed, never written: input lists cannot use them.
        feeds: feeds
            .iter()
            .filter(|f| Engine::from_id(f.engine) != Some(Engine::Virtual))
            .map(|f| f.id.to_string())
            .collect(),
        inputs: inputs.iter().map(|i| i.id.to_string()).collect(),
    };
    let list = call.params.post("processlist").unwrap_or("");
    let encoded =
        ynni_ingest::process::list::from_json(list, ynni_ingest::process::Context::Input, &owned)
            .map_err(ApiError::fail)?;
    super::input_manage::settle(call, userid).await?;
    catalog.set_input_process_list(row.id, &encoded).await?;
    if let Err(e) = call.state.router.reload_user(userid).await {
        tracing::error!(error = %e, "could not reload the user's inputs");
    }
    Ok(reply::json(
        json!({"success": true, "message": "Input processlist updated", "encoded_processlist": encoded}),
    ))
}

/// PHP's `json_encode` of an array whose keys are exactly 0..n-1 is a JSON list (emoncms's
/// `input/get` for a node named `0`, or MQTT CSV inputs `0,1,2`).
pub(super) fn php_array(map: serde_json::Map<String, Value>) -> Value {
    let sequential = map.keys().enumerate().all(|(i, k)| *k == i.to_string());
    if sequential && !map.is_empty() {
        Value::Array(map.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(map)
    }
}

/// The caller's inputs grouped as emoncms's `{node: {name: item}}`, `item` built per input.
async fn grouped(
    call: &Call<'_>,
    item: impl Fn(&ynni_core::catalog::InputRow, Option<(i64, Option<f64>)>) -> Value,
) -> Result<Option<serde_json::Map<String, Value>>, ApiError> {
    let Some(caller) = call.caller else {
        return Ok(None);
    };
    let (rows, last) = inputs_and_last(call, caller.user.id).await?;
    let mut nodes = serde_json::Map::new();
    for r in &rows {
        let node = nodes
            .entry(r.nodeid.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(m) = node {
            m.insert(r.name.clone(), item(r, last.get(&r.id).copied()));
        }
    }
    Ok(Some(nodes))
}

/// `input/get`, `input/get/<node>` (or `?node=`), `input/get/<node>/<name>` (or `&name=`).
async fn get_inputs(call: &Call<'_>) -> ApiResult {
    let item = |r: &ynni_core::catalog::InputRow, last: Option<(i64, Option<f64>)>| {
        let (t, v) = last.map_or((Value::Null, Value::Null), |(t, v)| {
            (json!(t), reply::number(v))
        });
        json!({"time": t, "value": v, "processList": r.process_list})
    };
    let nodes = grouped(call, item).await?.ok_or(ApiError::False)?;
    let route = call.route;
    // emoncms tests the path segments for PHP truth, so a segment `0` counts as absent:
    // `input/get/0` is the whole list (unless `?node=` is given), `input/get/<node>/0` the
    // whole node (unless `?name=` is given).
    let node = truthy(route.subaction.as_str())
        .or(call.params.get("node"))
        .map(ynni_ingest::decode::filter_name);
    let name = truthy(route.subaction2.as_str())
        .or(call.params.get("name"))
        .map(ynni_ingest::decode::filter_name);
    let Some(node) = node else {
        let out: serde_json::Map<String, Value> = nodes
            .into_iter()
            .map(|(k, v)| match v {
                Value::Object(m) => (k, php_array(m)),
                other => (k, other),
            })
            .collect();
        return Ok(reply::json(php_array(out)));
    };
    let Some(Value::Object(inputs)) = nodes.get(&node).cloned() else {
        return Ok(reply::json(json!("Node does not exist")));
    };
    Ok(match name {
        None => reply::json(php_array(inputs)),
        Some(name) => match inputs.get(&name) {
            Some(item) => reply::json(item.clone()),
            None => reply::json(json!("Node variable does not exist")),
        },
    })
}

/// `input/getinputs`: `{node: {name: {id, processList}}}` with string ids.
async fn get_ids(call: &Call<'_>) -> ApiResult {
    let item = |r: &ynni_core::catalog::InputRow, _: Option<(i64, Option<f64>)>| json!({"id": r.id.to_string(), "processList": r.process_list});
    let nodes = grouped(call, item).await?.ok_or(ApiError::False)?;
    Ok(reply::json(php_array(
        nodes
            .into_iter()
            .map(|(k, v)| match v {
                Value::Object(m) => (k, php_array(m)),
                other => (k, other),
            })
            .collect(),
    )))
}
