//! What a feed is: `feed/list`, `listwithmeta`, `get`, `aget` and `getid`, in emoncms's shapes
//! (ids, engine, size and public as strings; time and value as numbers or null).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use ynni_core::catalog::FeedRow;

use super::{Call, last, lasts, meta_json, metas, readable};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// `feed/list`: the caller's feeds, or with `userid=N` the public feeds of user N. `meta=1`
/// (and `listwithmeta`) adds each feed's engine meta data.
pub(super) async fn list(call: &Call<'_>, with_meta: bool) -> ApiResult {
    let with_meta = with_meta || call.params.get("meta").is_some_and(|m| m.trim() == "1");
    let public_of = call
        .params
        .get("userid")
        .and_then(|u| u.trim().parse::<i64>().ok());
    let rows = match (public_of, call.caller) {
        (Some(userid), _) => call.state.catalog.public_feeds(userid).await,
        (None, Some(caller)) => call.state.catalog.feeds_for_user(caller.user.id).await,
        (None, None) => return Err(ApiError::False),
    }?;
    let lasts = lasts(call, &rows).await?;
    // Anybody may list a user's public feeds: the metas too are asked in one operation per
    // thousand feeds, not one per feed, and a feed that cannot be read only lacks its meta.
    let metas = if with_meta {
        metas(call, &rows).await?
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(rows.len());
    for (i, (row, last)) in rows.iter().zip(lasts).enumerate() {
        let mut feed = hash_of(row, last);
        if let Some(Some(m)) = metas.get(i)
            && let Value::Object(m) = meta_json(row, m, last.and_then(|l| l.1))
        {
            for key in ["start_time", "end_time", "interval", "npoints"] {
                if let Some(v) = m.get(key) {
                    feed.insert(key.to_string(), v.clone());
                }
            }
        }
        out.push(Value::Object(feed));
    }
    Ok(reply::json(Value::Array(out)))
}

/// emoncms's feed hash plus its last update.
pub(in crate::api) async fn hash(
    call: &Call<'_>,
    row: &FeedRow,
) -> Result<Map<String, Value>, ApiError> {
    Ok(hash_of(row, last(call, row).await?))
}

/// The hashes of `rows` (one user's feeds), their last updates asked together.
pub(in crate::api) async fn hashes(
    call: &Call<'_>,
    rows: &[FeedRow],
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let lasts = lasts(call, rows).await?;
    Ok(rows.iter().zip(lasts).map(|(r, l)| hash_of(r, l)).collect())
}

/// emoncms's feed hash with `last`, its last update.
fn hash_of(row: &FeedRow, last: Option<(i64, Option<f64>)>) -> Map<String, Value> {
    let (time, value) = match last {
        Some((t, v)) => (json!(t), reply::number(v)),
        None => (Value::Null, Value::Null),
    };
    let feed = json!({
        "id": row.id.to_string(),
        "userid": row.userid.to_string(),
        "name": row.name,
        "tag": row.tag,
        "public": if row.public { "1" } else { "" },
        "size": row.size.to_string(),
        "engine": row.engine.to_string(),
        "unit": row.unit,
        "value": value,
        "time": time,
    });
    match feed {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `feed/aget`: one feed's hash.
pub(super) async fn aget(call: &Call<'_>) -> ApiResult {
    let row = readable(call, call.params.get("id")).await?;
    Ok(reply::json(Value::Object(hash(call, &row).await?)))
}

/// `feed/get&field=`: one field of the hash; `false` for a field it does not have.
pub(super) async fn get(call: &Call<'_>) -> ApiResult {
    let row = readable(call, call.params.get("id")).await?;
    let Some(field) = call.params.get("field") else {
        return Err(ApiError::fail("Missing field parameter"));
    };
    let h = hash(call, &row).await?;
    Ok(reply::json(
        h.get(field.trim()).cloned().unwrap_or(Value::Bool(false)),
    ))
}

/// `feed/getid&name=[&tag=]`: the id as plain text, empty when there is no such feed.
pub(super) async fn getid(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller else {
        return Err(ApiError::False);
    };
    let name = call.params.get("name").unwrap_or("");
    let tag = call.params.get("tag");
    let id = call
        .state
        .catalog
        .feed_id_by_name(caller.user.id, name, tag)
        .await?;
    Ok(reply::text(
        StatusCode::OK,
        id.map(|i| i.to_string()).unwrap_or_default(),
    ))
}
