//! The feed API: `create`, `value`, `timevalue`, `fetch`, `getmeta`, sizes, `set`, `delete`,
//! `clear` and virtual feeds' process lists here; listing (`describe`), reading (`data`),
//! writing (`insert`) and bulk transfer (`transfer`) in their modules. Feed operations run on
//! the shard worker that owns the feed's user.

use axum::response::Response;
use serde_json::{Value, json};
use ynni_core::catalog::FeedRow;
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp, IngestError};
use ynni_storage::{ENGINE_FIXED, ENGINE_VARIABLE};

/// emoncms's engine id of virtual feeds.
const ENGINE_VIRTUAL: u8 = 7;
/// emoncms's MySQL engine (hidden in its UI, still accepted by its API): ynni keeps such a
/// feed's (time, value) rows in a variable-interval file, which holds the same data.
const ENGINE_MYSQL: u8 = 0;

/// The file format that stores a feed of emoncms engine `engine`.
fn storage_engine(engine: u8) -> u8 {
    if engine == ENGINE_MYSQL {
        ENGINE_VARIABLE
    } else {
        engine
    }
}

/// Characters emoncms accepts in a new feed's name and tag: letters, digits, `_`, `-`, `:` and
/// white space.
fn create_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-' | ':')
}

use super::Call;
use crate::reply;

mod data;
mod describe;
mod insert;
mod transfer;

pub async fn handle(call: &Call<'_>) -> Response {
    match call.route.action.as_str() {
        "create" => create(call).await,
        "list" => describe::list(call, false).await,
        "listwithmeta" => describe::list(call, true).await,
        "get" => describe::get(call).await,
        "aget" => describe::aget(call).await,
        "getid" => describe::getid(call).await,
        "data" => data::data(call, data::Forced::default()).await,
        "average" => {
            let forced = data::Forced {
                average: true,
                ..Default::default()
            };
            data::data(call, forced).await
        }
        "csvexport" => {
            let forced = data::Forced {
                csv: true,
                ..Default::default()
            };
            data::data(call, forced).await
        }
        "value" => value(call).await,
        "timevalue" => timevalue(call).await,
        "fetch" => fetch(call).await,
        "getmeta" => getmeta(call).await,
        "set" => set(call).await,
        "delete" => delete(call).await,
        "clear" => clear(call).await,
        "insert" | "post" | "update" => insert::insert(call).await,
        "getfeedsize" => getfeedsize(call).await,
        "set-multiple" => set_multiple(call).await,
        "trim" => transfer::trim(call).await,
        "export" => transfer::export(call).await,
        "upload" => transfer::upload(call).await,
        "sha256sum" => transfer::sha256sum(call).await,
        "updatesize" => updatesize(call).await,
        "buffersize" => buffersize(call),
        "process" => match call.route.subaction.as_str() {
            "get" => process_get(call).await,
            "set" => process_set(call).await,
            _ => reply::json_false(),
        },
        "" => reply::route_not_found(true),
        other => reply::not_implemented(&format!("feed/{other}")),
    }
}

fn ingest_failure(e: &IngestError) -> Response {
    match e {
        IngestError::Query(q) => reply::fail(q),
        e => reply::ingest_error(e),
    }
}

/// Feed names and tags keep letters, digits, `_ - : .` and spaces (emoncms's filter).
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-' | ':' | '.'))
        .collect()
}

async fn create(call: &Call<'_>) -> Response {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        // emoncms's answer without write access (its create falls into the single-feed branch).
        return reply::fail("Feed does not exist");
    };
    let p = call.params;
    let name = p.get("name").unwrap_or("");
    if !name.chars().all(create_char) {
        return reply::fail("invalid characters in feed name");
    }
    let tag = p.get("tag").unwrap_or("");
    if !tag.chars().all(create_char) {
        return reply::fail("invalid characters in feed tag");
    }
    match call
        .state
        .catalog
        .feed_id_by_name(caller.user.id, name, Some(tag))
        .await
    {
        Ok(Some(_)) => return reply::fail("feed already exists"),
        Ok(None) => {}
        Err(e) => return reply::internal(&e),
    }
    let engine_text = p.get("engine").unwrap_or("").trim();
    let engine = engine_text.parse::<u8>().ok();
    let Some(engine) = engine
        .filter(|e| [ENGINE_MYSQL, ENGINE_FIXED, ENGINE_VARIABLE, ENGINE_VIRTUAL].contains(e))
    else {
        return reply::fail(format!(
            "ABORTED: Engine id {engine_text} is not supported."
        ));
    };
    let interval = p
        .get("options")
        .and_then(|o| serde_json::from_str::<Value>(o).ok())
        .and_then(|o| {
            o.get("interval")
                .and_then(|i| i.as_f64().or_else(|| i.as_str()?.parse().ok()))
        })
        .map_or(0, |i| i.clamp(0.0, f64::from(u32::MAX)) as u32);
    let unit = p
        .get("unit")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(10)
        .collect::<String>();
    let id = match call
        .state
        .catalog
        .create_feed(caller.user.id, name, tag, i64::from(engine), &unit)
        .await
    {
        Ok(id) => id,
        Err(e) => return reply::internal(&e),
    };
    if engine == ENGINE_VIRTUAL {
        // A virtual feed has no files: its values are computed when read.
        return reply::json(json!({"success": true, "feedid": id, "result": true}));
    }
    let op = FeedOp::Create {
        id: id as u32,
        engine: storage_engine(engine),
        interval,
    };
    match call.state.router.feed(caller.user.id, op).await {
        Ok(_) => {
            // The worker must know the new feed before a process list may write to it.
            if let Err(e) = call.state.router.reload_user(caller.user.id).await {
                tracing::error!(error = %e, "could not reload the user's feeds");
            }
            call.state.announce(caller.user.id);
            reply::json(json!({"success": true, "feedid": id, "result": true}))
        }
        Err(e) => {
            let _ = call.state.catalog.delete_feed_row(id).await;
            ingest_failure(&e)
        }
    }
}

/// The feed with `id`, whoever owns it, or emoncms's `Feed does not exist`.
async fn existing(call: &Call<'_>, id: Option<&str>) -> Result<FeedRow, Response> {
    let row = match id.and_then(|i| i.trim().parse::<i64>().ok()) {
        Some(id) => call
            .state
            .catalog
            .feed_by_id(id)
            .await
            .map_err(|e| reply::internal(&e))?,
        None => None,
    };
    row.ok_or_else(|| reply::fail("Feed does not exist"))
}

/// The feed with `id` if the caller may read it (theirs, or public).
async fn readable(call: &Call<'_>, id: Option<&str>) -> Result<FeedRow, Response> {
    let row = existing(call, id).await?;
    let mine = call.caller.is_some_and(|c| c.user.id == row.userid);
    if mine || row.public {
        Ok(row)
    } else {
        // emoncms answers a feed the caller may not read as an unknown route.
        Err(reply::route_not_found(true))
    }
}

async fn run(call: &Call<'_>, row: &FeedRow, op: FeedOp) -> Result<FeedAnswer, Response> {
    call.state
        .router
        .feed(row.userid, op)
        .await
        .map_err(|e| ingest_failure(&e))
}

async fn last(call: &Call<'_>, row: &FeedRow) -> Result<Option<(i64, Option<f64>)>, Response> {
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return Ok(None);
    }
    match run(call, row, FeedOp::Last { id: row.id as u32 }).await? {
        FeedAnswer::Last(l) => Ok(l),
        _ => Ok(None),
    }
}

async fn value(call: &Call<'_>) -> Response {
    let row = match readable(call, call.params.get("id")).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let time = call
        .params
        .get("time")
        .and_then(|t| t.trim().parse::<f64>().ok());
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::not_implemented("feed/value of a virtual feed (use feed/data)");
    }
    let v = match time {
        Some(t) => match run(
            call,
            &row,
            FeedOp::ValueAt {
                id: row.id as u32,
                time: t as i64,
            },
        )
        .await
        {
            Ok(FeedAnswer::Value(v)) => v,
            Ok(_) => None,
            Err(r) => return r,
        },
        None => match last(call, &row).await {
            Ok(l) => l.and_then(|l| l.1),
            Err(r) => return r,
        },
    };
    reply::json(reply::number(v))
}

/// `feed/fetch?ids=1,2,3`: the last value of each feed, in order; `false` for a feed that does
/// not exist or that the caller may not read, `null` for one with no value yet.
async fn fetch(call: &Call<'_>) -> Response {
    let ids = call.params.get("ids").unwrap_or("");
    // The same bound as feed/data: each id costs a catalog look-up and a feed read.
    let count = ids.bytes().filter(|&b| b == b',').count() + 1;
    if count > data::MAX_IDS {
        return reply::fail(format!(
            "too many feeds requested ({count}), at most {} per request",
            data::MAX_IDS
        ));
    }
    let mut out = Vec::new();
    for id in ids.split(',') {
        let row = match readable(call, Some(id)).await {
            Ok(row) => row,
            Err(_) => {
                out.push(Value::Bool(false));
                continue;
            }
        };
        match last(call, &row).await {
            Ok(l) => out.push(reply::number(l.and_then(|l| l.1))),
            Err(r) => return r,
        }
    }
    reply::json(Value::Array(out))
}

async fn timevalue(call: &Call<'_>) -> Response {
    let row = match readable(call, call.params.get("id")).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match last(call, &row).await {
        Ok(Some((t, v))) => reply::json(json!({"time": t, "value": reply::number(v)})),
        Ok(None) => reply::json(json!({"time": null, "value": null})),
        Err(r) => r,
    }
}

async fn getmeta(call: &Call<'_>) -> Response {
    let row = match readable(call, call.params.get("id")).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match meta(call, &row).await {
        Ok(m) => reply::json(m),
        Err(r) => r,
    }
}

/// The engine's meta data as emoncms's `getmeta` reports it (`false` for a virtual feed).
async fn meta(call: &Call<'_>, row: &FeedRow) -> Result<Value, Response> {
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return Ok(Value::Bool(false));
    }
    Ok(
        match run(call, row, FeedOp::Meta { id: row.id as u32 }).await? {
            FeedAnswer::Meta(FeedMeta::Fixed(m)) => json!({
                "id": row.id,
                "interval": m.interval,
                "start_time": m.start_time,
                "npoints": m.npoints,
                "end_time": m.end_time(),
            }),
            FeedAnswer::Meta(FeedMeta::Variable(m)) => {
                let interval = if m.npoints > 1 && m.end_time > m.start_time {
                    reply::number(Some(
                        f64::from(m.end_time - m.start_time) / (m.npoints - 1) as f64,
                    ))
                } else if row.engine == i64::from(ENGINE_MYSQL) {
                    // emoncms's MySQL engine reports 0 where PHPTimeSeries reports 1.
                    json!(0)
                } else {
                    json!(1)
                };
                let end_value = last(call, row).await?.and_then(|l| l.1);
                let mut meta = json!({
                    "id": row.id,
                    "start_time": m.start_time,
                    "end_time": m.end_time,
                    "interval": interval,
                });
                if m.npoints > 0 {
                    meta["end_value"] = reply::number(end_value);
                }
                meta["npoints"] = json!(m.npoints);
                meta
            }
            _ => Value::Bool(false),
        },
    )
}

/// The caller's own feed named by `id` (for changes).
async fn own_feed(call: &Call<'_>) -> Result<Option<FeedRow>, Response> {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        return Ok(None);
    };
    let Some(id) = call
        .params
        .get("id")
        .and_then(|i| i.trim().parse::<i64>().ok())
    else {
        return Ok(None);
    };
    match call.state.catalog.feed_by_id(id).await {
        Ok(row) => Ok(row.filter(|r| r.userid == caller.user.id)),
        Err(e) => Err(reply::internal(&e)),
    }
}

/// `feed/process/get`: a virtual feed's stored list.
async fn process_get(call: &Call<'_>) -> Response {
    match own_feed(call).await {
        Ok(Some(row)) => reply::json(json!(row.process_list)),
        Ok(None) => reply::json_false(),
        Err(r) => r,
    }
}

/// `feed/process/set`: a virtual feed's list, validated for the virtual-feed context.
async fn process_set(call: &Call<'_>) -> Response {
    let row = match own_feed(call).await {
        Ok(Some(row)) => row,
        Ok(None) => return reply::json_false(),
        Err(r) => return r,
    };
    if row.engine != i64::from(ENGINE_VIRTUAL) {
        return reply::fail("Only virtual feeds have a process list in ynni");
    }
    let feeds = match call.state.catalog.feeds_for_user(row.userid).await {
        Ok(f) => f,
        Err(e) => return reply::internal(&e),
    };
    let owned = OwnedFeeds(
        feeds
            .iter()
            .filter(|f| f.id != row.id)
            .map(|f| f.id.to_string())
            .collect(),
    );
    let list = call.params.post("processlist").unwrap_or("");
    let encoded = match ynni_ingest::process::list::from_json(
        list,
        ynni_ingest::process::Context::VirtualFeed,
        &owned,
    ) {
        Ok(e) => e,
        Err(e) => return reply::fail(e),
    };
    if let Err(e) = call
        .state
        .catalog
        .set_feed_process_list(row.id, &encoded)
        .await
    {
        return reply::internal(&e);
    }
    reply::json(
        json!({"success": true, "message": "Feed processlist updated", "encoded_processlist": encoded}),
    )
}

/// A virtual feed may read the owner's other feeds (never itself) and no inputs.
struct OwnedFeeds(std::collections::HashSet<String>);

impl ynni_ingest::process::list::Ownership for OwnedFeeds {
    fn owns_feed(&self, id: &str) -> bool {
        self.0.contains(id.trim())
    }
    fn owns_input(&self, _id: &str) -> bool {
        false
    }
}

/// The caller's feed for a change, or emoncms's answers: `Feed does not exist` for an unknown
/// id, 406 for a feed the caller may not change.
async fn changeable(call: &Call<'_>) -> Result<FeedRow, Response> {
    let row = existing(call, call.params.get("id")).await?;
    if call
        .caller
        .is_some_and(|c| c.write && c.user.id == row.userid)
    {
        Ok(row)
    } else {
        Err(reply::route_not_found(true))
    }
}

/// `feed/set`: `fields={"name":…,"tag":…,"public":1,"unit":…}`.
async fn set(call: &Call<'_>) -> Response {
    let row = match changeable(call).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let fields = call.params.json_object("fields").unwrap_or_default();
    match update_fields(call, &row, &fields).await {
        Ok(Ok(())) => {
            call.state.announce(row.userid);
            reply::json(
                json!({"success": true, "message": "Field updated", "feedid": row.id, "fields": Value::Object(fields)}),
            )
        }
        Ok(Err(message)) => reply::fail(message),
        Err(r) => r,
    }
}

/// `feed/set-multiple` with POST `feeds=[{"id":1,"name":…},…]`: `feed/set` for each.
async fn set_multiple(call: &Call<'_>) -> Response {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        return reply::route_not_found(true);
    };
    let Some(items) = call
        .params
        .post_or_get("feeds")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.as_array().cloned())
    else {
        return reply::fail("Invalid feeds parameter");
    };
    let mut results = serde_json::Map::new();
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
            Some(id) => match call.state.catalog.feed_by_id(id).await {
                Ok(r) => r.filter(|r| r.userid == caller.user.id),
                Err(e) => return reply::internal(&e),
            },
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
        let outcome = match update_fields(call, &row, &fields).await {
            Ok(Ok(())) => json!({"success": true, "message": "Field updated"}),
            Ok(Err(message)) => json!({"success": false, "message": message}),
            Err(r) => return r,
        };
        any |= outcome["success"] == true;
        results.insert(key, outcome);
    }
    reply::json(json!({"success": any, "results": Value::Object(results)}))
}

/// Applies `fields` (name, tag, public, unit) to a feed; the inner error is emoncms's message.
async fn update_fields(
    call: &Call<'_>,
    row: &FeedRow,
    fields: &serde_json::Map<String, Value>,
) -> Result<Result<(), &'static str>, Response> {
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
    match call
        .state
        .catalog
        .update_feed_fields(
            row.id,
            name.as_deref(),
            tag.as_deref(),
            public,
            unit.as_deref(),
        )
        .await
    {
        Ok(true) => Ok(Ok(())),
        Ok(false) => Ok(Err("fields tag:name must be unique")),
        Err(e) => Err(reply::internal(&e)),
    }
}

async fn delete(call: &Call<'_>) -> Response {
    let row = match changeable(call).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.engine != i64::from(ENGINE_VIRTUAL)
        && let Err(r) = run(call, &row, FeedOp::Delete { id: row.id as u32 }).await
    {
        return r;
    }
    if let Err(e) = call.state.catalog.delete_feed_row(row.id).await {
        return reply::internal(&e);
    }
    if let Err(e) = call.state.router.reload_user(row.userid).await {
        tracing::error!(error = %e, "could not reload the user's feeds");
    }
    call.state.announce(row.userid);
    reply::ok_message("Feed removed successfully.")
}

async fn clear(call: &Call<'_>) -> Response {
    let row = match changeable(call).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::fail("A virtual feed holds no data");
    }
    if let Err(r) = run(call, &row, FeedOp::Clear { id: row.id as u32 }).await {
        return r;
    }
    if let Err(r) = refresh_size(call, &row).await {
        return r;
    }
    reply::ok_message("Feed cleared successfully")
}

/// Bytes the feed's files hold: PHPFina's 16-byte meta plus 4 per slot, PHPTimeSeries's 9 per
/// point; a virtual feed has none.
async fn size_on_disk(call: &Call<'_>, row: &FeedRow) -> Result<i64, Response> {
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return Ok(0);
    }
    Ok(
        match run(call, row, FeedOp::Meta { id: row.id as u32 }).await? {
            FeedAnswer::Meta(FeedMeta::Fixed(m)) => {
                16 + i64::try_from(m.npoints).unwrap_or(i64::MAX / 8) * 4
            }
            FeedAnswer::Meta(FeedMeta::Variable(m)) => {
                i64::try_from(m.npoints).unwrap_or(i64::MAX / 16) * 9
            }
            _ => 0,
        },
    )
}

/// Stores the feed's current size (what `feed/list` reports until the next refresh).
async fn refresh_size(call: &Call<'_>, row: &FeedRow) -> Result<i64, Response> {
    let size = size_on_disk(call, row).await?;
    call.state
        .catalog
        .set_feed_size(row.id, size)
        .await
        .map_err(|e| reply::internal(&e))?;
    Ok(size)
}

/// `feed/getfeedsize`: the size now, in bytes.
async fn getfeedsize(call: &Call<'_>) -> Response {
    let row = match readable(call, call.params.get("id")).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match size_on_disk(call, &row).await {
        Ok(size) => reply::json(json!(size)),
        Err(r) => r,
    }
}

/// `feed/updatesize`: refreshes every feed's stored size; answers the total.
async fn updatesize(call: &Call<'_>) -> Response {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        return reply::route_not_found(true);
    };
    let rows = match call.state.catalog.feeds_for_user(caller.user.id).await {
        Ok(r) => r,
        Err(e) => return reply::internal(&e),
    };
    let mut total = 0;
    for row in &rows {
        match refresh_size(call, row).await {
            Ok(size) => total += size,
            Err(r) => return r,
        }
    }
    reply::json(json!(total))
}

/// `feed/buffersize`: emoncms counts points waiting in its Redis write buffer. ynni writes
/// every acknowledged point through its WAL straight to the feed, so none are waiting.
fn buffersize(call: &Call<'_>) -> Response {
    if call.caller.is_some_and(|c| c.write) {
        reply::json(json!(0))
    } else {
        reply::route_not_found(true)
    }
}
