//! Input management (write access): `input/set`, `set-descriptions`, `delete`, `clean`,
//! `enable`, `disable`, `isdisabled` and `process/reset`. Every change reloads the user on its
//! shard worker, so the next post sees it.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use ynni_core::catalog::InputRow;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;
pub(super) use ynni_ingest::decode::numbers::php_int_cast as php_int;

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

/// PHP's `(int)` of an id decoded from JSON: numbers truncate, text as [`php_int`]. Other
/// values name no input here (PHP would turn `true` or a non-empty array into 1 and delete
/// input 1, which no client can mean).
fn json_id(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => Some(php_int(s)),
        _ => None,
    }
}

/// Whether PHP takes a decoded JSON value for true (what emoncms's `$x != null` tests):
/// `null`, `false`, `0`, `""`, `"0"` and `[]` are false; every object is true.
fn php_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// The user's input named by the `inputid` query parameter (emoncms reads it from `$_GET`).
async fn input_named(call: &Call<'_>, userid: i64) -> Result<Option<InputRow>, ApiError> {
    let Some(id) = call.params.get("inputid").map(php_int) else {
        return Ok(None);
    };
    // One row, not the user's every input with its process list.
    Ok(call.state.catalog.input_of(userid, id).await?)
}

/// Before a change to the user's inputs or process lists is committed: their shard
/// checkpoints what it applied of theirs, so no replay after a crash runs it under the change.
pub(super) async fn settle(call: &Call<'_>, userid: i64) -> Result<(), ApiError> {
    Ok(call.state.router.settle_user(userid).await?)
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

/// A value as PHP's string conversion writes it (`true` is `"1"`, `false` is `""`); arrays
/// and objects keep their JSON text, which no name or description check lets through.
fn php_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "1".into(),
        Value::Bool(false) | Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `input/set?inputid=&fields={"name":…,"description":…}`, as emoncms's `Input::set_fields`:
/// only `name` and `description` are read (other keys are ignored, a `null` one is absent
/// as for PHP's `isset`), and only those two are echoed.
pub async fn set(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    // The controller reaches `set_fields` only for an `inputid` of the caller's; anything
    // else falls through to its final `false`.
    let row = input_named(call, userid).await?.ok_or(ApiError::False)?;
    // Text that is not a JSON object decodes to nothing PHP can read a field from.
    let fields = call.params.json_object("fields").unwrap_or_default();
    let field = |key: &str| fields.get(key).filter(|v| !v.is_null());
    let (name_value, description_value) = (field("name"), field("description"));
    let name = name_value.map(php_string);
    if name.as_deref().is_some_and(|n| !n.chars().all(name_char)) {
        return Err(ApiError::fail("invalid characters in input name"));
    }
    let description = description_value.map(php_string);
    let catalog = &call.state.catalog;
    if description
        .as_deref()
        .is_some_and(|d| !d.chars().all(description_char))
    {
        // emoncms has stored a valid name before it looks at the description, and keeps it.
        if name.is_some() {
            settle(call, userid).await?;
        }
        if let Some(name) = name.as_deref()
            && catalog.set_input_fields(row.id, Some(name), None).await?
        {
            reload(call, userid).await;
        }
        return Err(ApiError::fail("invalid characters in input description"));
    }
    if name.is_none() && description.is_none() {
        return Err(ApiError::fail("Field could not be updated"));
    }
    if name.is_some() {
        settle(call, userid).await?;
    }
    let updated = catalog
        .set_input_fields(row.id, name.as_deref(), description.as_deref())
        .await?;
    if !updated {
        return Err(ApiError::fail("Field could not be updated"));
    }
    if name.is_some() {
        reload(call, userid).await;
    }
    // Name first, then description: the order emoncms fills its reply in.
    let mut echoed = Map::new();
    if let Some(v) = name_value {
        echoed.insert("name".into(), v.clone());
    }
    if let Some(v) = description_value {
        echoed.insert("description".into(), v.clone());
    }
    Ok(reply::json(json!({
        "success": true,
        "message": "Field updated",
        "inputid": row.id,
        "fields": Value::Object(echoed),
    })))
}

/// `input/set-descriptions` with POST `inputs=[{"id":1,"description":"…"},…]`.
pub async fn set_descriptions(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    // `Input::set_descriptions_multiple` decodes to a PHP array (a JSON object's values
    // count as items too) and refuses anything else, or an empty one, with one message.
    let items: Vec<Value> = match call
        .params
        .post_or_get("inputs")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        Some(Value::Array(items)) => items,
        Some(Value::Object(items)) => items.into_values().collect(),
        _ => Vec::new(),
    };
    if items.is_empty() {
        return Err(ApiError::fail("Invalid input data"));
    }
    if items.len() > crate::api::MAX_ITEMS {
        return Err(ApiError::fail(crate::api::TOO_MANY_ITEMS));
    }
    let rows = inputs(call, userid).await?;
    let mut results = Map::new();
    let mut any = false;
    for item in &items {
        // PHP's `(int)` of the item's id; a missing one is 0, and so is any id of an item
        // that is not an object.
        let id = item.get("id").and_then(json_id).unwrap_or(0);
        let outcome = if id <= 0 {
            (false, "Invalid input id")
        } else if !rows.iter().any(|r| r.id == id) {
            (false, "Access denied")
        } else {
            let d = item.get("description").map(php_string).unwrap_or_default();
            if !d.chars().all(description_char) {
                (false, "Invalid characters in description")
            } else if call
                .state
                .catalog
                .set_input_fields(id, None, Some(d.as_str()))
                .await?
            {
                (true, "Description updated")
            } else {
                (false, "Update failed")
            }
        };
        any |= outcome.0;
        results.insert(
            id.to_string(),
            json!({"success": outcome.0, "message": outcome.1}),
        );
    }
    // Results are keyed by id in a PHP array, which encodes as a list when the keys are 0..n-1.
    Ok(reply::json(
        json!({"success": any, "results": super::input::php_array(results)}),
    ))
}

/// `input/delete?inputid=N` or `?inputids=[N,…]`, both read from the query string only, as
/// emoncms's controller reads `$_GET`.
pub async fn delete(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let p = call.params;
    let rows = inputs(call, userid).await?;
    // A set: a request may name thousands of ids, and a user may have 32,000 inputs.
    let mine: std::collections::HashSet<i64> = rows.iter().map(|r| r.id).collect();
    let owned = |id: &i64| mine.contains(id);
    // An `inputid` of the caller's wins, even next to `inputids`; a foreign or unknown one
    // leaves the `inputids` branch to answer.
    if let Some(id) = p.get("inputid").map(php_int).filter(owned) {
        settle(call, userid).await?;
        call.state.catalog.delete_inputs(userid, &[id]).await?;
        reload(call, userid).await;
        return Ok(reply::json(
            json!({"success": true, "message": "Input deleted", "userid": userid, "inputid": id}),
        ));
    }
    // The controller deletes only when `json_decode` gives something PHP takes for true:
    // text that is not JSON, `[]`, `0`, `""` and `null` all end in its final `false`.
    let Some(decoded) = p
        .get("inputids")
        .and_then(|list| serde_json::from_str::<Value>(list).ok())
        .filter(php_truthy)
    else {
        return Err(ApiError::False);
    };
    // `delete_multiple` walks an array's items or an object's values; a bare number or text
    // deletes nothing (PHP warns and carries on to the success reply).
    let candidates: Vec<&Value> = match &decoded {
        Value::Array(items) => items.iter().collect(),
        Value::Object(items) => items.values().collect(),
        _ => Vec::new(),
    };
    // emoncms echoes the decoded value as sent; ynni echoes the ids it deleted, so the reply
    // says nothing about ids that belong to someone else.
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<i64> = candidates
        .into_iter()
        .filter_map(json_id)
        .filter(owned)
        .filter(|id| seen.insert(*id))
        .collect();
    settle(call, userid).await?;
    call.state.catalog.delete_inputs(userid, &ids).await?;
    reload(call, userid).await;
    Ok(reply::json(
        json!({"success": true, "message": "Inputs deleted", "userid": userid, "inputids": ids}),
    ))
}

/// `input/clean`: deletes the inputs with no process list; answers in text.
pub async fn clean(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    settle(call, userid).await?;
    let n = call.state.catalog.delete_unprocessed_inputs(userid).await?;
    reload(call, userid).await;
    Ok(reply::text(StatusCode::OK, format!("Deleted {n} inputs")))
}

/// `input/enable` and `input/disable`: automatic creation of new inputs on or off.
pub async fn creation(call: &Call<'_>, disabled: bool) -> ApiResult {
    let userid = writer(call)?;
    let now = chrono::Utc::now().timestamp();
    settle(call, userid).await?;
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
    settle(call, userid).await?;
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
/// the node's inputs, in input-id order (`Input::set_node_input_descriptions`).
pub async fn set_node_input_descriptions(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    // The controller acts only when both query parameters are there; else its `false`.
    let (Some(node), Some(names)) = (call.params.get("node"), call.params.get("names")) else {
        return Err(ApiError::False);
    };
    let names: Vec<&str> = names.split(',').collect();
    if names.iter().any(|n| !n.chars().all(description_char)) {
        return Err(ApiError::fail("invalid characters in input description"));
    }
    // The node is filtered like a posted one; a node with no inputs changes nothing and is
    // still a success.
    let node = ynni_ingest::decode::filter_name(node);
    let mut rows: Vec<InputRow> = inputs(call, userid)
        .await?
        .into_iter()
        .filter(|r| r.nodeid == node)
        .collect();
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

/// `input/cleanprocesslistfeeds`: removes process steps whose feed argument names no feed of
/// the user; answers, as text, emoncms's line per changed input (input_model.php,
/// `clean_processlist_feeds`): `processlist for input <id> changed from <old> to <new>`, and
/// nothing when no list changed. emoncms keeps a step naming any existing feed, another
/// user's included; ynni removes those too (README, compatibility table).
pub async fn clean_process_list_feeds(call: &Call<'_>) -> ApiResult {
    let userid = writer(call)?;
    let catalog = &call.state.catalog;
    let rows = inputs(call, userid).await?;
    let feeds = catalog.feeds_for_user(userid).await?;
    let feeds: std::collections::HashSet<String> = feeds.iter().map(|f| f.id.to_string()).collect();
    let mut report = String::new();
    let mut changed = false;
    for row in rows.iter().filter(|r| !r.process_list.is_empty()) {
        let kept: Vec<&str> = row
            .process_list
            .split(',')
            .filter(|step| {
                let Some(raw) = ynni_ingest::process::list::parse_stored(step).pop() else {
                    return true;
                };
                let feed_arg = ynni_ingest::process::catalog::lookup(&raw.key)
                    .and_then(|d| d.args.first())
                    .is_some_and(|a| a.kind == ynni_ingest::process::catalog::ArgType::FeedId);
                !feed_arg || raw.args.first().is_some_and(|f| feeds.contains(f.trim()))
            })
            .collect();
        let list = kept.join(",");
        if list == row.process_list {
            continue;
        }
        if !changed {
            settle(call, userid).await?;
        }
        catalog.set_input_process_list(row.id, &list).await?;
        changed = true;
        report.push_str(&format!(
            "processlist for input {} changed from {} to {list}\n",
            row.id, row.process_list
        ));
    }
    if changed {
        reload(call, userid).await;
    }
    Ok(reply::text(StatusCode::OK, report))
}
