//! Input management (write access): `input/set`, `set-descriptions`, `delete`, `clean`,
//! `enable`, `disable`, `isdisabled` and `process/reset`. Every change reloads the user on its
//! shard worker, so the next post sees it.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use ynni_core::catalog::InputRow;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// The caller's id when they have write access; emoncms answers `false` to anyone else.
fn writer(call: &Call<'_>) -> Result<i64, ApiError> {
    call.caller
        .filter(|c| c.write)
        .map(|c| c.user.id)
        .ok_or(ApiError::False)
}

async fn inputs(call: &Call<'_>, userid: i64) -> Result<Vec<InputRow>, ApiError> {
    Ok(call.state.catalog.inputs_for_user(userid).await?)
}

/// The user's input named by the `inputid` parameter.
async fn input_named(call: &Call<'_>, userid: i64) -> Result<Option<InputRow>, ApiError> {
    let id = call
        .params
        .get("inputid")
        .and_then(|i| i.trim().parse::<i64>().ok());
    let rows = inputs(call, userid).await?;
    Ok(id.and_then(|id| rows.into_iter().find(|r| r.id == id)))
}

async fn reload(call: &Call<'_>, userid: i64) {
    if let Err(e) = call.state.router.reload_user(userid).await {
        tracing::error!(error = %e, "could not reload the user's inputs");
    }
}

/// Letters, digits, `_`, `-` and white space: what emoncms accepts in a new input name.
fn name_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-')
}

/// Descriptions may also hold a period.
fn description_char(c: char) -> bool {
    name_char(c) || c == '.'
}

fn text_field(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields.get(key).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `input/set?inputid=&fields={"name":…,"description":…}`.
pub async fn set(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let row = input_named(call, userid)
        .await?
        .ok_or_else(|| ApiError::fail("Input does not exist"))?;
    let fields = call.params.json_object("fields").filter(|f| {
        !f.is_empty()
            && f.keys()
                .all(|k| k.as_str() == "name" || k.as_str() == "description")
    });
    let Some(fields) = fields else {
        return Err(ApiError::fail("Field could not be updated"));
    };
    let name = text_field(&fields, "name");
    if name.as_deref().is_some_and(|n| !n.chars().all(name_char)) {
        return Err(ApiError::fail("invalid characters in input name"));
    }
    let description = text_field(&fields, "description");
    if description
        .as_deref()
        .is_some_and(|d| !d.chars().all(description_char))
    {
        return Err(ApiError::fail("invalid characters in input description"));
    }
    let updated = call
        .state
        .catalog
        .set_input_fields(row.id, name.as_deref(), description.as_deref())
        .await?;
    if !updated {
        return Err(ApiError::fail("Field could not be updated"));
    }
    if name.is_some() {
        reload(call, userid).await;
    }
    Ok(reply::json(json!({
        "success": true,
        "message": "Field updated",
        "inputid": row.id,
        "fields": Value::Object(fields),
    })))
}

/// `input/set-descriptions` with POST `inputs=[{"id":1,"description":"…"},…]`.
pub async fn set_descriptions(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let Some(items) = call
        .params
        .post_or_get("inputs")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.as_array().cloned())
    else {
        return Err(ApiError::fail("Invalid inputs parameter"));
    };
    let rows = inputs(call, userid).await?;
    let mut results = Map::new();
    let mut any = false;
    for item in &items {
        let id = item.get("id").and_then(|i| {
            i.as_i64()
                .or_else(|| i.as_str().and_then(|s| s.trim().parse().ok()))
        });
        let key = id.map_or_else(
            || item.get("id").map_or("".into(), |v| v.to_string()),
            |i| i.to_string(),
        );
        let outcome = match id {
            None => (false, "Invalid input id"),
            Some(id) if !rows.iter().any(|r| r.id == id) => (false, "Access denied"),
            Some(id) => {
                let d = item
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !d.chars().all(description_char) {
                    (false, "Invalid characters in description")
                } else {
                    let catalog = &call.state.catalog;
                    if catalog.set_input_fields(id, None, Some(d)).await? {
                        (true, "Description updated")
                    } else {
                        (false, "Update failed")
                    }
                }
            }
        };
        any |= outcome.0;
        results.insert(key, json!({"success": outcome.0, "message": outcome.1}));
    }
    Ok(reply::json(
        json!({"success": any, "results": Value::Object(results)}),
    ))
}

/// `input/delete?inputid=N` or `?inputids=[N,…]`.
pub async fn delete(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let p = call.params;
    let rows = inputs(call, userid).await?;
    if let Some(list) = p.get_or_post("inputids") {
        let ids: Vec<i64> = serde_json::from_str::<Vec<Value>>(list)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
            .filter(|id| rows.iter().any(|r| r.id == *id))
            .collect();
        call.state.catalog.delete_inputs(userid, &ids).await?;
        reload(call, userid).await;
        return Ok(reply::json(
            json!({"success": true, "message": "Inputs deleted", "userid": userid, "inputids": ids}),
        ));
    }
    let id = p
        .get_or_post("inputid")
        .and_then(|i| i.trim().parse::<i64>().ok());
    let Some(id) = id.filter(|id| rows.iter().any(|r| r.id == *id)) else {
        return Err(ApiError::False);
    };
    call.state.catalog.delete_inputs(userid, &[id]).await?;
    reload(call, userid).await;
    Ok(reply::json(
        json!({"success": true, "message": "Input deleted", "userid": userid, "inputid": id}),
    ))
}

/// `input/clean`: deletes the inputs with no process list; answers in text.
pub async fn clean(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let n = call.state.catalog.delete_unprocessed_inputs(userid).await?;
    reload(call, userid).await;
    Ok(reply::text(StatusCode::OK, format!("Deleted {n} inputs")))
}

/// `input/enable` and `input/disable`: automatic creation of new inputs on or off.
pub async fn creation(call: &Call<'_>, disabled: bool) -> ApiResult {
    let userid = writer(call)?;
    let now = chrono::Utc::now().timestamp();
    call.state
        .catalog
        .set_input_creation_disabled(userid, disabled, now)
        .await?;
    reload(call, userid).await;
    let message = if disabled {
        "Input creation disabled"
    } else {
        "Input creation enabled"
    };
    Ok(reply::json(
        json!({"success": true, "userid": userid, "message": message}),
    ))
}

/// `input/isdisabled`: whether automatic input creation is off.
pub async fn isdisabled(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let disabled = call.state.catalog.input_creation_disabled(userid).await?;
    Ok(reply::json(Value::Bool(disabled)))
}

/// `input/process/reset`: an empty list. (emoncms's own reset fails with a PHP error.)
pub async fn process_reset(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let row = input_named(call, userid).await?.ok_or(ApiError::False)?;
    call.state
        .catalog
        .set_input_process_list(row.id, "")
        .await?;
    reload(call, userid).await;
    Ok(reply::json(
        json!({"success": true, "message": "Input processlist reset"}),
    ))
}

/// `input/set-node-input-descriptions?node=&names=a,b,c`: the names become the descriptions of
/// the node's inputs, in input-id order.
pub async fn set_node_input_descriptions(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let node = call.params.get("node").unwrap_or("");
    let names: Vec<&str> = call.params.get("names").unwrap_or("").split(',').collect();
    if names.iter().any(|n| !n.chars().all(description_char)) {
        return Err(ApiError::fail("Invalid characters in description"));
    }
    let mut rows: Vec<InputRow> = inputs(call, userid)
        .await?
        .into_iter()
        .filter(|r| r.nodeid == node)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::fail("Node does not exist"));
    }
    rows.sort_by_key(|r| r.id);
    for (row, name) in rows.iter().zip(&names) {
        call.state
            .catalog
            .set_input_fields(row.id, None, Some(name))
            .await?;
    }
    Ok(reply::json(json!({
        "success": true,
        "message": "input descriptions updated",
        "userid": userid,
        "nodeid": node,
        "names": names,
    })))
}

/// `input/cleanprocesslistfeeds`: removes process steps that write to or read a feed the user
/// no longer has; answers a text report of what changed.
pub async fn clean_process_list_feeds(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let catalog = &call.state.catalog;
    let rows = inputs(call, userid).await?;
    let feeds = catalog.feeds_for_user(userid).await?;
    let feeds: std::collections::HashSet<String> = feeds.iter().map(|f| f.id.to_string()).collect();
    let mut report = String::new();
    let mut removed = 0;
    for row in rows.iter().filter(|r| !r.process_list.is_empty()) {
        let (kept, dropped): (Vec<&str>, Vec<&str>) =
            row.process_list.split(',').partition(|step| {
                let Some(raw) = ynni_ingest::process::list::parse_stored(step).pop() else {
                    return true;
                };
                let feed_arg = ynni_ingest::process::catalog::lookup(&raw.key)
                    .and_then(|d| d.args.first())
                    .is_some_and(|a| a.kind == ynni_ingest::process::catalog::ArgType::FeedId);
                !feed_arg || raw.args.first().is_some_and(|f| feeds.contains(f.trim()))
            });
        if dropped.is_empty() {
            continue;
        }
        let list = kept.join(",");
        catalog.set_input_process_list(row.id, &list).await?;
        removed += dropped.len();
        report.push_str(&format!(
            "input {} {}/{}: removed {} (processList now \"{}\")\n",
            row.id,
            row.nodeid,
            row.name,
            dropped.join(","),
            list
        ));
    }
    if removed > 0 {
        reload(call, userid).await;
    }
    report.push_str(&format!("{removed} process steps removed"));
    Ok(reply::text(StatusCode::OK, report))
}
