//! `feed/set` and `feed/set-multiple`: a feed's name, tag, public flag and unit.

use serde_json::{Map, Value, json};
use ynni_core::catalog::FeedRow;

use super::{Call, changeable, create_char};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// Feed names and tags keep letters, digits, `_ - : .` and spaces (emoncms's filter).
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-' | ':' | '.'))
        .collect()
}

/// `feed/set`: `fields={"name":…,"tag":…,"public":1,"unit":…}`.
pub(super) async fn set(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    let fields = call.params.json_object("fields").unwrap_or_default();
    if let Err(message) = update_fields(call, &row, &fields).await? {
        return Err(ApiError::fail(message));
    }
    call.state.announce(row.userid);
    Ok(reply::json(
        json!({"success": true, "message": "Field updated", "feedid": row.id, "fields": Value::Object(fields)}),
    ))
}

/// `feed/set-multiple` with POST `feeds=[{"id":1,"name":…},…]`: `feed/set` for each.
pub(super) async fn set_multiple(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        return Err(ApiError::RouteNotFound { json: true });
    };
    let Some(items) = call
        .params
        .post_or_get("feeds")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.as_array().cloned())
    else {
        return Err(ApiError::fail("Invalid feeds parameter"));
    };
    if items.len() > crate::api::MAX_ITEMS {
        return Err(ApiError::fail(crate::api::TOO_MANY_ITEMS));
    }
    let mut results = Map::new();
    let mut any = false;
    for item in &items {
        let Some(mut fields) = item.as_object().cloned() else {
            continue;
        };
        let id = fields.remove("id").and_then(|i| {
            i.as_i64()
                .or_else(|| i.as_str().and_then(|s| s.trim().parse().ok()))
        });
        let row = match id {
            Some(id) => call
                .state
                .catalog
                .feed_by_id(id)
                .await?
                .filter(|r| r.userid == caller.user.id),
            None => None,
        };
        let key = id.map_or_else(String::new, |i| i.to_string());
        let Some(row) = row else {
            results.insert(
                key,
                json!({"success": false, "message": "Feed does not exist"}),
            );
            continue;
        };
        let outcome = match update_fields(call, &row, &fields).await? {
            Ok(()) => json!({"success": true, "message": "Field updated"}),
            Err(message) => json!({"success": false, "message": message}),
        };
        any |= outcome["success"] == true;
        results.insert(key, outcome);
    }
    Ok(reply::json(
        json!({"success": any, "results": Value::Object(results)}),
    ))
}

/// Applies `fields` (name, tag, public, unit) to a feed; the inner error is emoncms's message.
async fn update_fields(
    call: &Call<'_>,
    row: &FeedRow,
    fields: &Map<String, Value>,
) -> Result<Result<(), &'static str>, ApiError> {
    if fields.is_empty()
        || fields
            .keys()
            .any(|k| !["name", "tag", "public", "unit"].contains(&k.as_str()))
    {
        return Ok(Err("Field could not be updated"));
    }
    let text = |k: &str| {
        fields
            .get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
    };
    let name = text("name").map(|n| clean(n.trim()));
    let tag = text("tag");
    if tag.as_deref().is_some_and(|t| !t.chars().all(create_char)) {
        return Ok(Err("invalid characters in feed tag"));
    }
    let unit = text("unit");
    if let Some(u) = &unit {
        if u.chars()
            .any(|c| matches!(c, '<' | '>' | '&' | '"' | '\'') || c.is_control())
        {
            return Ok(Err("invalid characters in feed unit"));
        }
        if u.chars().count() > 10 {
            return Ok(Err("feed unit too long"));
        }
    }
    let public = fields.get("public").map(|v| match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => s != "0" && !s.is_empty(),
        _ => false,
    });
    let updated = call
        .state
        .catalog
        .update_feed_fields(
            row.id,
            name.as_deref(),
            tag.as_deref(),
            public,
            unit.as_deref(),
        )
        .await?;
    Ok(if updated {
        Ok(())
    } else {
        Err("fields tag:name must be unique")
    })
}
