//! The feed API: `create`, `value`, `timevalue`, `fetch`, `getmeta`, sizes, `delete` and
//! `clear` here; listing (`describe`), reading (`data`), writing (`insert`), changing points in
//! place (`edit`: `scalerange`, `deletedatapoint`), bulk transfer
//! (`transfer`), `set` (`fields`) and virtual feeds' process lists (`process_list`) in their
//! modules. Feed operations run on the shard worker that owns the feed's user.

use axum::response::IntoResponse;
use serde_json::{Value, json};
use ynni_core::catalog::FeedRow;
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp};
use ynni_storage::Engine;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;
use ynni_ingest::decode::numbers::php_int_cast as php_int;

mod data;
mod describe;
pub(super) use describe::hashes as feed_hashes;
mod edit;
mod fields;
mod insert;
mod process_list;
mod split;
mod sync;
mod transfer;

/// The feed's engine; `None` for an id ynni does not support (a catalog imported from emoncms
/// may hold one).
fn engine(row: &FeedRow) -> Option<Engine> {
    Engine::from_id(row.engine)
}

/// A virtual feed has no data of its own: its values are computed from its process list.
fn is_virtual(row: &FeedRow) -> bool {
    engine(row) == Some(Engine::Virtual)
}

/// Characters emoncms accepts in a new feed's name and tag: letters, digits, `_`, `-`, `:` and
/// white space.
fn create_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-' | ':')
}

pub async fn handle(call: &Call<'_>) -> ApiResult {
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
        "set" => fields::set(call).await,
        "delete" => delete(call).await,
        "clear" => clear(call).await,
        "insert" | "post" | "update" => insert::insert(call).await,
        "getfeedsize" => getfeedsize(call).await,
        "set-multiple" => fields::set_multiple(call).await,
        "trim" => transfer::trim(call).await,
        "scalerange" => edit::scalerange(call).await,
        "deletedatapoint" => edit::deletedatapoint(call).await,
        "export" => transfer::export(call).await,
        "upload" => transfer::upload(call).await,
        "sha256sum" => transfer::sha256sum(call).await,
        "sync" => sync::sync(call).await,
        "updatesize" => updatesize(call).await,
        "buffersize" => buffersize(call),
        "process" => process_list::process(call).await,
        "" => Err(ApiError::RouteNotFound { json: true }),
        other => Err(ApiError::not_implemented(format!("feed/{other}"))),
    }
}

/// Feeds one account may have, with or without a hosted plan.
pub const MAX_FEEDS: i64 = 10_000;

async fn create(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        // emoncms's answer without write access (its create falls into the single-feed branch).
        return Err(ApiError::fail("Feed does not exist"));
    };
    let p = call.params;
    let name = p.get("name").unwrap_or("");
    if !name.chars().all(create_char) {
        return Err(ApiError::fail("invalid characters in feed name"));
    }
    let tag = p.get("tag").unwrap_or("");
    if !tag.chars().all(create_char) {
        return Err(ApiError::fail("invalid characters in feed tag"));
    }
    // emoncms (feed_model.php, Feed::create) casts the engine with PHP's (int) and checks it
    // before it looks for a feed of the same name: a name such as `PHPFINA`, an empty or a
    // missing engine is engine 0 (MySQL, which emoncms still creates), `5abc` is 5, and the
    // message quotes the cast number.
    let engine_id = php_int(p.get("engine").unwrap_or(""));
    let Some(engine) = Engine::from_id(engine_id) else {
        return Err(ApiError::fail(format!(
            "ABORTED: Engine id {engine_id} is not supported."
        )));
    };
    // From the name and count checks to the insert, this account's only creation.
    let one = call.state.creates.lock(caller.user.id).await?;
    let taken = call
        .state
        .catalog
        .feed_id_by_name(caller.user.id, name, Some(tag))
        .await?;
    if taken.is_some() {
        return Err(ApiError::fail("feed already exists"));
    }
    let feeds = call.state.catalog.feed_count(caller.user.id).await?;
    // Every feed costs a shard job in each feed list and a file pair: bounded per account
    // with or without a plan (emoncms has no limit).
    if feeds >= MAX_FEEDS {
        return Err(ApiError::fail(format!(
            "Feed limit reached: at most {MAX_FEEDS} feeds per account"
        )));
    }
    if let Some(max) = call
        .state
        .billing
        .as_ref()
        .and_then(|b| b.plan_now(caller.user.id))
        .map(|p| p.max_feeds)
        .filter(|m| *m > 0)
        && feeds >= i64::from(max)
    {
        return Err(ApiError::fail(format!(
            "Feed limit reached: this account's plan allows {max} feeds"
        )));
    }
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
    let engine_id = i64::from(engine.id());
    let Some(storage) = engine.storage() else {
        // A virtual feed has no files: its values are computed when read.
        let id = call
            .state
            .catalog
            .create_feed(caller.user.id, name, tag, engine_id, &unit)
            .await?;
        return Ok(reply::json(
            json!({"success": true, "feedid": id, "result": true}),
        ));
    };
    // The row says which files it still needs until they exist: a crash between the two steps
    // leaves a row its shard finishes when it next opens, not one whose points go nowhere.
    let id = call
        .state
        .catalog
        .create_feed_with_files(caller.user.id, name, tag, engine_id, &unit, interval)
        .await?;
    // Counted and added: the shard's work below need not hold up the account's (or, sharing
    // its stripe, other accounts') next creation.
    drop(one);
    let op = FeedOp::Create {
        id: id as u32,
        engine: storage.engine().id(),
        interval,
    };
    match call.state.router.feed(caller.user.id, op).await {
        Ok(_) => {}
        // The shard opened meanwhile (a takeover) and made this row's files itself, which it
        // says by clearing the mark. Files it did not make (left by an import that stopped
        // half way) are refused, as they were before the mark existed.
        Err(e)
            if e.is_feed_exists()
                && !call
                    .state
                    .catalog
                    .feed_files_pending(id)
                    .await
                    .unwrap_or(true) => {}
        Err(e) => {
            let _ = call.state.catalog.delete_feed_row(id).await;
            return Err(e.into());
        }
    }
    if let Err(e) = call.state.catalog.feed_files_made(id).await {
        // Harmless: the shard finds the files made when it next opens and says so then.
        tracing::warn!(error = %e, feed = id, "could not mark the feed's files made");
    }
    // The worker must know the new feed before a process list may write to it.
    if let Err(e) = call.state.router.reload_user(caller.user.id).await {
        tracing::error!(error = %e, "could not reload the user's feeds");
    }
    call.state.announce(caller.user.id);
    Ok(reply::json(
        json!({"success": true, "feedid": id, "result": true}),
    ))
}

/// The feed with `id`, whoever owns it, or emoncms's `Feed does not exist`. emoncms's
/// controller casts the id with PHP's (int) (feed_controller.php): `12abc` is feed 12, a
/// missing id or text is 0, which no feed has.
async fn existing(call: &Call<'_>, id: Option<&str>) -> Result<FeedRow, ApiError> {
    let row = match id.map(php_int) {
        Some(id) if id > 0 => call.state.catalog.feed_by_id(id).await?,
        _ => None,
    };
    row.ok_or_else(|| ApiError::fail("Feed does not exist"))
}

/// PHP's `filter_var($v, FILTER_VALIDATE_INT)`: decimal digits with an optional sign, no
/// leading zero (a lone `0` is fine), white space around allowed, within the 64-bit range.
/// Anything else (`1.5`, `007`, `0x10`, `12abc`, empty) is no integer.
fn filter_int(text: &str) -> Option<i64> {
    let s = text.trim_matches([' ', '\t', '\n', '\r', '\u{b}']);
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let plain = !unsigned.is_empty()
        && unsigned.bytes().all(|b| b.is_ascii_digit())
        && (unsigned == "0" || !unsigned.starts_with('0'));
    if plain { s.parse::<i64>().ok() } else { None }
}

/// The feed with `id` if the caller may read it (theirs, or public).
async fn readable(call: &Call<'_>, id: Option<&str>) -> Result<FeedRow, ApiError> {
    let row = existing(call, id).await?;
    let mine = call.caller.is_some_and(|c| c.user.id == row.userid);
    if mine || row.public {
        Ok(row)
    } else {
        // emoncms answers a feed the caller may not read as an unknown route.
        Err(ApiError::RouteNotFound { json: true })
    }
}

/// The caller's feed for a change, or emoncms's answers: `Feed does not exist` for an unknown
/// id, 406 for a feed the caller may not change.
async fn changeable(call: &Call<'_>) -> Result<FeedRow, ApiError> {
    let row = existing(call, call.params.get("id")).await?;
    if call
        .caller
        .is_some_and(|c| c.write && c.user.id == row.userid)
    {
        Ok(row)
    } else {
        Err(ApiError::RouteNotFound { json: true })
    }
}

/// [`store_points`] of several points written now (an upload, a sync, a rescale): the feed's
/// last value moves only when the last point is not older than it.
async fn store_many(
    call: &Call<'_>,
    row: &FeedRow,
    points: Vec<(i64, Option<f64>)>,
    rewrite: bool,
) -> Result<(), ApiError> {
    let write = Write {
        now: chrono::Utc::now().timestamp(),
        single: false,
        rewrite,
        start: None,
    };
    store_points(call, row, points, write).await
}

/// [`store_many`] of slots of a fixed-interval feed counted from `start` (a sync's or an
/// upload's block): an empty feed starts at exactly `start`, and slot `k` is written at the
/// time that falls in it ([`slot_time`]).
async fn store_slots(
    call: &Call<'_>,
    row: &FeedRow,
    start: u32,
    interval: u32,
    values: impl Iterator<Item = (u64, Option<f64>)>,
) -> Result<(), ApiError> {
    let points = values
        .map(|(k, v)| (slot_time(start, interval, k), v))
        .collect();
    let write = Write {
        now: chrono::Utc::now().timestamp(),
        single: false,
        rewrite: false,
        start: (interval > 0 && !start.is_multiple_of(interval)).then_some(start),
    };
    store_points(call, row, points, write).await
}

/// The time a write puts in slot `k` of a feed starting at `start`: emoncms aligns a time
/// down to the interval and counts slots from the start, so with a start inside a slot (a
/// feed trimmed in emoncms) slot `k` takes the aligned time after it, not `start + k·i`.
fn slot_time(start: u32, interval: u32, k: u64) -> i64 {
    let (start, interval) = (i64::from(start), i64::from(interval.max(1)));
    let k = i64::try_from(k).unwrap_or(i64::MAX);
    if start % interval == 0 {
        start.saturating_add(k.saturating_mul(interval))
    } else {
        (start / interval * interval).saturating_add(k.saturating_add(1).saturating_mul(interval))
    }
}

/// How [`store_points`] writes: the request time, whether it is one live value, whether it
/// writes existing points again, and an empty feed's exact start.
pub(super) struct Write {
    pub now: i64,
    pub single: bool,
    pub rewrite: bool,
    pub start: Option<u32>,
}

/// Writes `points` to `row`'s feed through its shard's WAL: done (durable) when this returns.
/// `single` marks one `feed/insert` value, which the shard treats as a live reading.
async fn store_points(
    call: &Call<'_>,
    row: &FeedRow,
    points: Vec<(i64, Option<f64>)>,
    how: Write,
) -> Result<(), ApiError> {
    // New data is refused to an account past its grace period, by whichever way it comes
    // (insert, upload, sync, a rescale).
    if let Some(billing) = &call.state.billing
        && billing.refuses_writes(row.userid)
    {
        billing.count_refusal(row.userid);
        return Err(ApiError::Text(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            crate::api::input::PAYMENT_REQUIRED.into(),
        ));
    }
    let write = ynni_ingest::shard::FeedWrite {
        feed: row.id as u32,
        points,
        now: how.now,
        single: how.single,
        rewrite: how.rewrite,
        start: how.start,
    };
    let op = FeedOp::Insert {
        userid: row.userid,
        write,
    };
    run(call, row, op).await.map(|_| ())
}

/// Runs `op` on the worker owning the feed; a query the engine refuses is answered with its
/// message (see `From<IngestError> for ApiError`).
async fn run(call: &Call<'_>, row: &FeedRow, op: FeedOp) -> Result<FeedAnswer, ApiError> {
    match call.state.router.feed(row.userid, op).await {
        // Another account's feed (public, or a dashboard's) whose vshard another node
        // serves: the dispatcher sends the whole request there.
        Err(ynni_ingest::shard::IngestError::NotServed) if call.state.forwarder.is_some() => {
            Err(ApiError::ServedElsewhere { userid: row.userid })
        }
        answer => Ok(answer?),
    }
}

/// Feeds' last updates asked of their shard in one operation, at most: a long list is asked
/// in pieces so that one list does not hold a shard for long.
const LASTS_PER_OPERATION: usize = 1_000;

/// The last updates of `rows` (one user's feeds), in their order: an operation per
/// [`LASTS_PER_OPERATION`] feeds instead of one per feed.
async fn lasts(
    call: &Call<'_>,
    rows: &[FeedRow],
) -> Result<Vec<Option<(i64, Option<f64>)>>, ApiError> {
    per_operation(
        call,
        rows,
        |ids| FeedOp::Lasts { ids },
        |answer| match answer {
            FeedAnswer::Lasts(l) => Some(l),
            _ => None,
        },
    )
    .await
}

/// The engine metas of `rows` (one user's feeds), in their order, batched as [`lasts`].
async fn metas(call: &Call<'_>, rows: &[FeedRow]) -> Result<Vec<Option<FeedMeta>>, ApiError> {
    per_operation(
        call,
        rows,
        |ids| FeedOp::Metas { ids },
        |answer| match answer {
            FeedAnswer::Metas(m) => Some(m),
            _ => None,
        },
    )
    .await
}

/// Asks the shard of `rows` (one user's stored feeds; virtual ones get `None`) one thing per
/// feed in operations of [`LASTS_PER_OPERATION`] feeds; an answer of the wrong length or
/// kind counts as nothing found.
async fn per_operation<T>(
    call: &Call<'_>,
    rows: &[FeedRow],
    op: impl Fn(Vec<u32>) -> FeedOp,
    unpack: impl Fn(FeedAnswer) -> Option<Vec<Option<T>>>,
) -> Result<Vec<Option<T>>, ApiError> {
    let stored: Vec<&FeedRow> = rows.iter().filter(|r| !is_virtual(r)).collect();
    let mut found = Vec::with_capacity(stored.len());
    for piece in stored.chunks(LASTS_PER_OPERATION) {
        let ids = piece.iter().map(|r| r.id as u32).collect();
        match unpack(run(call, piece[0], op(ids)).await?) {
            Some(answers) if answers.len() == piece.len() => found.extend(answers),
            _ => found.extend(std::iter::repeat_with(|| None).take(piece.len())),
        }
    }
    let mut found = found.into_iter();
    Ok(rows
        .iter()
        .map(|r| {
            if is_virtual(r) {
                None
            } else {
                found.next().flatten()
            }
        })
        .collect())
}

async fn last(call: &Call<'_>, row: &FeedRow) -> Result<Option<(i64, Option<f64>)>, ApiError> {
    if is_virtual(row) {
        return Ok(None);
    }
    match run(call, row, FeedOp::Last { id: row.id as u32 }).await? {
        FeedAnswer::Last(l) => Ok(l),
        _ => Ok(None),
    }
}

async fn value(call: &Call<'_>) -> ApiResult {
    let row = readable(call, call.params.get("id")).await?;
    // emoncms's feed model: a `time` PHP takes for false (absent, empty, `0`) asks for the
    // last value; any other is cast to an integer (`abc` is time 0).
    let time = call
        .params
        .get("time")
        .filter(|t| !crate::params::php_falsy(Some(t)))
        .map(php_int);
    if is_virtual(&row) {
        return Err(ApiError::not_implemented(
            "feed/value of a virtual feed (use feed/data)",
        ));
    }
    let v = match time {
        Some(t) => {
            let op = FeedOp::ValueAt {
                id: row.id as u32,
                time: t,
            };
            match run(call, &row, op).await? {
                FeedAnswer::Value(v) => v,
                FeedAnswer::NoData => return Ok(reply::json(json!(false))),
                _ => None,
            }
        }
        None => last(call, &row).await?.and_then(|l| l.1),
    };
    Ok(reply::json(reply::number(v)))
}

/// `feed/fetch?ids=1,2,3`: the last value of each feed, in order; `false` for a feed that does
/// not exist or that the caller may not read, `null` for one with no value yet.
async fn fetch(call: &Call<'_>) -> ApiResult {
    let ids = call.params.get("ids").unwrap_or("");
    // The same bound as feed/data: each id costs a catalog look-up and a feed read.
    let count = ids.bytes().filter(|&b| b == b',').count() + 1;
    if count > data::MAX_IDS {
        return Err(ApiError::fail(format!(
            "too many feeds requested ({count}), at most {} per request",
            data::MAX_IDS
        )));
    }
    let mut out = Vec::new();
    for id in ids.split(',') {
        let row = match readable(call, Some(id)).await {
            Ok(row) => row,
            Err(e) => {
                // Rendered only so that a catalog failure is logged as everywhere else; the
                // feed still reads as `false`.
                drop(e.into_response());
                out.push(Value::Bool(false));
                continue;
            }
        };
        out.push(reply::number(last(call, &row).await?.and_then(|l| l.1)));
    }
    Ok(reply::json(Value::Array(out)))
}

async fn timevalue(call: &Call<'_>) -> ApiResult {
    let row = readable(call, call.params.get("id")).await?;
    Ok(match last(call, &row).await? {
        Some((t, v)) => reply::json(json!({"time": t, "value": reply::number(v)})),
        None => reply::json(json!({"time": null, "value": null})),
    })
}

async fn getmeta(call: &Call<'_>) -> ApiResult {
    let row = readable(call, call.params.get("id")).await?;
    Ok(reply::json(meta(call, &row).await?))
}

/// The engine's meta data as emoncms's `getmeta` reports it (`false` for a virtual feed).
async fn meta(call: &Call<'_>, row: &FeedRow) -> Result<Value, ApiError> {
    if is_virtual(row) {
        return Ok(Value::Bool(false));
    }
    let FeedAnswer::Meta(m) = run(call, row, FeedOp::Meta { id: row.id as u32 }).await? else {
        return Ok(Value::Bool(false));
    };
    let end_value = match m {
        FeedMeta::Variable(_) => last(call, row).await?.and_then(|l| l.1),
        FeedMeta::Fixed(_) => None,
    };
    Ok(meta_json(row, &m, end_value))
}

/// [`meta`]'s reply from the engine's meta and, for a variable feed, its last value.
fn meta_json(row: &FeedRow, m: &FeedMeta, end_value: Option<f64>) -> Value {
    match m {
        FeedMeta::Fixed(m) => json!({
            "id": row.id,
            "interval": m.interval,
            "start_time": m.start_time,
            "npoints": m.npoints,
            "end_time": m.end_time(),
        }),
        FeedMeta::Variable(m) => {
            let interval = if m.npoints > 1 && m.end_time > m.start_time {
                reply::number(Some(
                    f64::from(m.end_time - m.start_time) / (m.npoints - 1) as f64,
                ))
            } else if engine(row) == Some(Engine::Mysql) {
                // emoncms's MySQL engine reports 0 where PHPTimeSeries reports 1.
                json!(0)
            } else {
                json!(1)
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
            meta
        }
    }
}

async fn delete(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    if !is_virtual(&row) {
        run(call, &row, FeedOp::Delete { id: row.id as u32 }).await?;
    }
    call.state.catalog.delete_feed_row(row.id).await?;
    if let Err(e) = call.state.router.reload_user(row.userid).await {
        tracing::error!(error = %e, "could not reload the user's feeds");
    }
    call.state.announce(row.userid);
    Ok(reply::ok_message("Feed removed successfully."))
}

async fn clear(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    if is_virtual(&row) {
        // emoncms's VirtualFeed engine answers clear with this (engine/VirtualFeed.php).
        return Err(ApiError::fail(
            "\"Clear\" not available for this storage engine",
        ));
    }
    run(call, &row, FeedOp::Clear { id: row.id as u32 }).await?;
    refresh_size(call, &row).await?;
    Ok(reply::ok_message("Feed cleared successfully"))
}

/// Bytes the feed's files hold: PHPFina's 16-byte meta plus 4 per slot, PHPTimeSeries's 9 per
/// point; a virtual feed has none.
async fn size_on_disk(call: &Call<'_>, row: &FeedRow) -> Result<i64, ApiError> {
    if is_virtual(row) {
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
async fn refresh_size(call: &Call<'_>, row: &FeedRow) -> Result<i64, ApiError> {
    let size = size_on_disk(call, row).await?;
    call.state.catalog.set_feed_size(row.id, size).await?;
    Ok(size)
}

/// `feed/getfeedsize`: the size now, in bytes.
async fn getfeedsize(call: &Call<'_>) -> ApiResult {
    let row = readable(call, call.params.get("id")).await?;
    Ok(reply::json(json!(size_on_disk(call, &row).await?)))
}

/// `feed/updatesize`: refreshes every feed's stored size; answers the total.
async fn updatesize(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        return Err(ApiError::RouteNotFound { json: true });
    };
    let rows = call.state.catalog.feeds_for_user(caller.user.id).await?;
    let mut total = 0;
    for row in &rows {
        total += refresh_size(call, row).await?;
    }
    Ok(reply::json(json!(total)))
}

/// `feed/buffersize`: emoncms counts points waiting in its Redis write buffer. ynni writes
/// every acknowledged point through its WAL straight to the feed, so none are waiting.
fn buffersize(call: &Call<'_>) -> ApiResult {
    if call.caller.is_some_and(|c| c.write) {
        Ok(reply::json(json!(0)))
    } else {
        Err(ApiError::RouteNotFound { json: true })
    }
}

#[cfg(test)]
mod tests {
    /// Slot times: `start + k·i` from an aligned start; from a start inside a slot (a feed
    /// trimmed in emoncms), the aligned time that falls in slot `k` when counted from it.
    #[test]
    fn slot_times_fall_in_their_slots() {
        assert_eq!(super::slot_time(1000, 10, 0), 1000);
        assert_eq!(super::slot_time(1000, 10, 3), 1030);
        for k in 0..5u64 {
            let t = super::slot_time(1005, 10, k);
            assert_eq!(t % 10, 0);
            assert_eq!((t - 1005).div_euclid(10), k as i64, "slot {k}");
        }
    }

    use super::filter_int;

    #[test]
    fn filter_int_accepts_what_filter_validate_int_accepts() {
        for (text, want) in [
            ("1700000000", Some(1_700_000_000)),
            (" 17 ", Some(17)),
            ("+17", Some(17)),
            ("-17", Some(-17)),
            ("0", Some(0)),
            ("-0", Some(0)),
            ("007", None),
            ("+00", None),
            ("1.5", None),
            ("1e3", None),
            ("12abc", None),
            ("abc", None),
            ("", None),
            ("+", None),
            ("0x10", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(filter_int(text), want, "{text:?}");
        }
    }
}
