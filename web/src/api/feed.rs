//! The feed API subset built so far: `create`, `list`, `data`, `value`, `timevalue`, `getmeta`.
//! Feed operations run on the shard worker that owns the feed's user.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use ynni_core::catalog::FeedRow;
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp, IngestError};
use ynni_storage::query::{self, DataRequest, Interval, QueryError, TimeValue};
use ynni_storage::{ENGINE_FIXED, ENGINE_VARIABLE};

/// emoncms's engine id of virtual feeds.
const ENGINE_VIRTUAL: u8 = 7;

use super::Call;
use crate::reply;

pub async fn handle(call: &Call<'_>) -> Response {
    match call.route.action.as_str() {
        "create" => create(call).await,
        "list" => list(call).await,
        "data" => data(call).await,
        "value" => value(call).await,
        "timevalue" => timevalue(call).await,
        "fetch" => fetch(call).await,
        "getmeta" => getmeta(call).await,
        "set" => set(call).await,
        "delete" => delete(call).await,
        "clear" => clear(call).await,
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
    let engine_text = p.get("engine").unwrap_or("").trim();
    let engine = engine_text.parse::<u8>().ok();
    let Some(engine) =
        engine.filter(|e| [ENGINE_FIXED, ENGINE_VARIABLE, ENGINE_VIRTUAL].contains(e))
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
    let name = clean(p.get("name").unwrap_or(""));
    let tag = clean(p.get("tag").unwrap_or(""));
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
        .create_feed(caller.user.id, &name, &tag, i64::from(engine), &unit)
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
        engine,
        interval,
    };
    match call.state.router.feed(caller.user.id, op).await {
        Ok(_) => {
            // The worker must know the new feed before a process list may write to it.
            if let Err(e) = call.state.router.reload_user(caller.user.id).await {
                tracing::error!(error = %e, "could not reload the user's feeds");
            }
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

async fn list(call: &Call<'_>) -> Response {
    let Some(caller) = call.caller else {
        return reply::json_false();
    };
    let rows = match call.state.catalog.feeds_for_user(caller.user.id).await {
        Ok(r) => r,
        Err(e) => return reply::internal(&e),
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (time, value) = match last(call, &row).await {
            Ok(Some((t, v))) => (json!(t), reply::number(v)),
            Ok(None) => (Value::Null, Value::Null),
            Err(r) => return r,
        };
        let size = match run(call, &row, FeedOp::Meta { id: row.id as u32 }).await {
            _ if row.engine == i64::from(ENGINE_VIRTUAL) => 0,
            Ok(FeedAnswer::Meta(FeedMeta::Fixed(m))) => 16 + m.npoints * 4,
            Ok(FeedAnswer::Meta(FeedMeta::Variable(m))) => m.npoints * 9,
            _ => 0,
        };
        // emoncms sends ids, engine, size and public as strings (Home Assistant keys on them).
        out.push(json!({
            "id": row.id.to_string(),
            "userid": row.userid.to_string(),
            "name": row.name,
            "tag": row.tag,
            "public": if row.public { "1" } else { "" },
            "size": size.to_string(),
            "engine": row.engine.to_string(),
            "unit": row.unit,
            "value": value,
            "time": time,
        }));
    }
    reply::json(Value::Array(out))
}

async fn data(call: &Call<'_>) -> Response {
    let p = call.params;
    let Some(start) = p.get("start") else {
        return reply::text(StatusCode::OK, "missing start parameter");
    };
    let Some(end) = p.get("end") else {
        return reply::text(StatusCode::OK, "missing end parameter");
    };
    let Some(id_text) = p.get("id").filter(|i| !i.trim().is_empty()) else {
        return reply::fail("no ids given");
    };
    let Ok(id) = id_text.trim().parse::<i64>() else {
        return reply::not_implemented("feed/data for several ids");
    };
    let row = match call.state.catalog.feed_by_id(id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return reply::json(
                json!({"success": false, "message": format!("feed {id} does not exist"), "feeds": [id]}),
            );
        }
        Err(e) => return reply::internal(&e),
    };
    // A feed the caller may not read gives an empty series in emoncms.
    if !(row.public || call.caller.is_some_and(|c| c.user.id == row.userid)) {
        return reply::json(json!([]));
    }
    let tz = p
        .get("timezone")
        .and_then(ynni_core::timezone::parse)
        .or_else(|| {
            call.caller
                .and_then(|c| ynni_core::timezone::parse(&c.user.timezone))
        })
        .unwrap_or(chrono_tz::Tz::UTC);
    let (Some(start), Some(end)) = (query::parse_time(start, tz), query::parse_time(end, tz))
    else {
        return reply::fail(QueryError::EndBeforeStart);
    };
    let interval = match Interval::parse(p.get("interval").or(p.get("mode"))) {
        Ok(i) => i,
        Err(e) => return reply::fail(e),
    };
    let flag = |k: &str| {
        p.get(k)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    };
    let mut req = DataRequest::new(start, end, interval);
    req.average = flag("average");
    req.delta = flag("delta");
    req.skipmissing = flag("skipmissing");
    req.limitinterval = flag("limitinterval");
    req.dp = p
        .get("dp")
        .and_then(|d| d.trim().parse().ok())
        .filter(|d: &i32| *d >= 0);
    req.timeformat = p.get("timeformat").unwrap_or("unixms").to_string();
    req.tz = tz;
    let op = if row.engine == i64::from(ENGINE_VIRTUAL) {
        FeedOp::Virtual {
            userid: row.userid,
            list: row.process_list.clone(),
            req: Box::new(req),
        }
    } else {
        FeedOp::Data {
            id: row.id as u32,
            req: Box::new(req),
        }
    };
    let reply_data = match run(call, &row, op).await {
        Ok(FeedAnswer::Data(d)) => d,
        Ok(_) => return reply::json(json!([])),
        Err(r) => return r,
    };
    let points: Vec<Value> = reply_data
        .points
        .into_iter()
        .map(
            |(t, v)| match query::render_time(t, reply_data.format, tz) {
                Some(TimeValue::Int(t)) => json!([t, reply::number(v)]),
                Some(TimeValue::Text(t)) => json!([t, reply::number(v)]),
                None => reply::number(v),
            },
        )
        .collect();
    reply::json(Value::Array(points))
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
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::json(Value::Bool(false));
    }
    match run(call, &row, FeedOp::Meta { id: row.id as u32 }).await {
        Ok(FeedAnswer::Meta(FeedMeta::Fixed(m))) => reply::json(json!({
            "id": row.id,
            "interval": m.interval,
            "start_time": m.start_time,
            "npoints": m.npoints,
            "end_time": m.end_time(),
        })),
        Ok(FeedAnswer::Meta(FeedMeta::Variable(m))) => {
            let interval = if m.npoints > 1 && m.end_time > m.start_time {
                reply::number(Some(
                    f64::from(m.end_time - m.start_time) / (m.npoints - 1) as f64,
                ))
            } else {
                json!(1)
            };
            let end_value = match last(call, &row).await {
                Ok(l) => l.and_then(|l| l.1),
                Err(r) => return r,
            };
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
            reply::json(meta)
        }
        Ok(_) => reply::json(Value::Bool(false)),
        Err(r) => r,
    }
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
    let fields = call
        .params
        .get("fields")
        .and_then(|f| serde_json::from_str::<Value>(f).ok())
        .and_then(|v| v.as_object().cloned());
    let Some(fields) = fields.filter(|f| !f.is_empty()) else {
        return reply::fail("Field could not be updated");
    };
    if fields
        .keys()
        .any(|k| !["name", "tag", "public", "unit"].contains(&k.as_str()))
    {
        return reply::fail("Field could not be updated");
    }
    let text = |k: &str| {
        fields
            .get(k)
            .map(|v| clean(v.as_str().unwrap_or(&v.to_string())))
    };
    let public = fields.get("public").map(|v| match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => s != "0" && !s.is_empty(),
        _ => false,
    });
    let unit = fields.get("unit").map(|v| {
        v.as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(10)
            .collect::<String>()
    });
    let (name, tag) = (text("name"), text("tag"));
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
        Ok(true) => reply::json(
            json!({"success": true, "message": "Field updated", "feedid": row.id, "fields": Value::Object(fields)}),
        ),
        Ok(false) => reply::fail("fields tag:name must be unique"),
        Err(e) => reply::internal(&e),
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
    match run(call, &row, FeedOp::Clear { id: row.id as u32 }).await {
        Ok(_) => reply::ok_message("Feed cleared successfully"),
        Err(r) => r,
    }
}
