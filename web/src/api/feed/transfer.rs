//! Moving a feed's data in bulk: `feed/trim`, `feed/export` (the raw engine file from a byte
//! offset, which emoncms's backup and sync tools append to a local copy) and `feed/upload`
//! (raw binary points, written through the WAL like `feed/insert`).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use ynni_core::catalog::FeedRow;
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp};
use ynni_storage::store::FileSpan;
use ynni_storage::{Engine, Storage};

use super::{Call, changeable, engine, filter_int, is_virtual, php_int, readable, run};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// Whether the feed's points are in a fixed-interval (PHPFina) file; otherwise they are
/// (time, value) records.
fn fixed_interval(row: &FeedRow) -> bool {
    engine(row).and_then(Engine::storage) == Some(Storage::Fixed)
}

/// `feed/trim&start_time=`: drops the data before `start_time`.
pub(super) async fn trim(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    // feed_controller.php answers `false` unless `start_time` passes PHP's
    // FILTER_VALIDATE_INT with a truthy result, so a missing, non-integer or zero start time,
    // before the engine is asked.
    let Some(start_time) = call
        .params
        .get("start_time")
        .and_then(filter_int)
        .filter(|&t| t != 0)
    else {
        return Err(ApiError::False);
    };
    if is_virtual(&row) {
        // emoncms's VirtualFeed engine answers trim with this (engine/VirtualFeed.php).
        return Err(ApiError::fail(
            "\"Trim\" not available for this storage engine",
        ));
    }
    let op = FeedOp::Trim {
        id: row.id as u32,
        start_time,
    };
    match run(call, &row, op).await? {
        FeedAnswer::Trimmed(Ok(bytes)) => {
            let message = format!("{bytes} bytes written");
            Ok(reply::json(json!({"success": true, "message": message})))
        }
        FeedAnswer::Trimmed(Err(message)) => Err(ApiError::fail(message)),
        _ => Err(ApiError::False),
    }
}

/// `feed/export&start=<byte offset>`: the engine's data file from that offset.
pub(super) async fn export(call: &Call<'_>) -> ApiResult {
    let row = readable(call, call.params.get("id")).await?;
    if is_virtual(&row) {
        return Err(ApiError::fail("A virtual feed holds no data"));
    }
    // PHP's (int) of the parameter, as emoncms reads it: `8abc` is 8, not the whole file.
    let offset = call
        .params
        .get("start")
        .map_or(0, |s| u64::try_from(php_int(s)).unwrap_or(0));
    let op = FeedOp::Export {
        id: row.id as u32,
        offset,
        fresh: owns(call, &row),
    };
    let FeedAnswer::File(span) = run(call, &row, op).await? else {
        return Err(ApiError::False);
    };
    let body = file_body(&span).await?;
    let file = if fixed_interval(&row) {
        format!("{}.dat", row.id)
    } else {
        format!("feed_{}.MYD", row.id)
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(span.len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={file}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Whether the caller is the feed's owner: only an owner's export waits for the points in
/// memory to be written (another reader of a public feed gets the file as it is, as from
/// emoncms with its write buffer, and cannot make the shard flush).
fn owns(call: &Call<'_>, row: &FeedRow) -> bool {
    call.caller.is_some_and(|c| c.user.id == row.userid)
}

/// Checksums computed at once (`feed/sha256sum`).
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// How long a checksum request waits for its turn.
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How much of a feed's file is read at a time to be sent or hashed.
const PIECE: usize = 64 << 10;

/// The file of `span`, at its start.
async fn open_span(span: &FileSpan) -> Result<tokio::fs::File, ApiError> {
    let mut f = tokio::fs::File::open(&span.path)
        .await
        .map_err(read_failed)?;
    f.seek(std::io::SeekFrom::Start(span.from))
        .await
        .map_err(read_failed)?;
    Ok(f)
}

fn read_failed(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "reading a feed's file failed");
    ApiError::fail("Could not read the feed's data")
}

/// The bytes of `span`, read and sent a piece at a time (an export of years of data is
/// hundreds of megabytes, and many may run at once). A file cut short meanwhile (the feed
/// cleared or trimmed) ends the body early, and the client sees a short reply.
async fn file_body(span: &FileSpan) -> Result<Body, ApiError> {
    let file = open_span(span).await?.take(span.len);
    let pieces = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = bytes::BytesMut::zeroed(PIECE);
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf.freeze()), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(Body::from_stream(pieces))
}

/// `feed/upload`, as emoncms's controller and model route it (feed_controller.php,
/// Feed::upload_fixed_interval and Feed::upload_variable_interval): `start`, `interval` and
/// `npoints` send npoints little-endian float32 values, one per slot from `start`; `npoints`
/// alone sends npoints records of u32 time and f32 value, each written to its slot. Only a
/// fixed-interval (PHPFina) feed takes either. NaN is a missing value. Answers `true` once
/// the points are durable.
pub(super) async fn upload(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    let p = call.params;
    // Without `npoints` neither of emoncms's upload branches runs and the controller returns
    // nothing, which is its 406.
    let Some(npoints_text) = p.get("npoints") else {
        return Err(ApiError::RouteNotFound { json: true });
    };
    let block = p.get("start").is_some() && p.get("interval").is_some();
    if !fixed_interval(&row) {
        // emoncms's model refuses every other engine, virtual feeds included.
        return Err(ApiError::fail("Feed upload not supported for this engine"));
    }
    // emoncms casts the numbers with PHP's (int).
    let int = |k: &str| p.get(k).map_or(0, php_int);
    let Ok(npoints) = usize::try_from(php_int(npoints_text)) else {
        return Err(ApiError::False);
    };
    let body = call.body;
    let value = |b: &[u8]| {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        (!v.is_nan()).then_some(f64::from(v))
    };
    let points: Vec<(i64, Option<f64>)> = if block {
        let (start, interval) = (int("start"), int("interval"));
        let local = match run(call, &row, FeedOp::Meta { id: row.id as u32 }).await? {
            FeedAnswer::Meta(FeedMeta::Fixed(m)) => m,
            _ => return Err(ApiError::False),
        };
        if interval != i64::from(local.interval) || npoints.checked_mul(4) != Some(body.len()) {
            return Err(ApiError::False);
        }
        // A start inside a slot (an emoncms feed trimmed there), given for an empty feed or
        // the feed's own: written slot by slot from it, as emoncms writes the block at
        // `floor((start - start_time) / interval)`.
        let base = if local.npoints == 0 {
            u32::try_from(start).ok()
        } else {
            Some(local.start_time)
        }
        .filter(|b| *b > 0 && b % local.interval != 0);
        if let Some(base) = base {
            let first = (start - i64::from(base)).div_euclid(interval);
            let slots = body.chunks_exact(4).enumerate().filter_map(|(k, b)| {
                u64::try_from(first + k as i64)
                    .ok()
                    .map(|slot| (slot, value(b)))
            });
            super::store_slots(call, &row, base, local.interval, slots).await?;
            return Ok(reply::json(Value::Bool(true)));
        }
        body.chunks_exact(4)
            .enumerate()
            // `start` is PHP's cast of any text, so it may be near the end of the range.
            .map(|(k, b)| (start.saturating_add(k as i64 * interval), value(b)))
            .collect()
    } else {
        if npoints.checked_mul(8) != Some(body.len()) {
            return Err(ApiError::False);
        }
        body.chunks_exact(8)
            .map(|b| {
                let t = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                (i64::from(t), value(&b[4..]))
            })
            .collect()
    };
    if points.is_empty() {
        return Err(ApiError::False);
    }
    super::store_many(call, &row, points, false).await?;
    Ok(reply::json(Value::Bool(true)))
}

/// `feed/sha256sum&npoints=N`: the SHA-256 of the feed's data file, or of its first N points
/// (0: all), so a copy elsewhere can be checked without downloading it.
pub(super) async fn sha256sum(call: &Call<'_>) -> ApiResult {
    use sha2::Digest;
    let row = readable(call, call.params.get("id")).await?;
    if is_virtual(&row) {
        return Err(ApiError::fail(
            "This request is only supported by PHPFina and PHPTimeSeries",
        ));
    }
    let op = FeedOp::Export {
        id: row.id as u32,
        offset: 0,
        fresh: owns(call, &row),
    };
    let FeedAnswer::File(span) = run(call, &row, op).await? else {
        return Err(ApiError::False);
    };
    let point = if fixed_interval(&row) { 4 } else { 9 };
    let total = span.len / point;
    let npoints = call
        .params
        .get("npoints")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .map_or(total, |n| n.min(total));
    let bytes = npoints * point;
    // One hash at a time in the whole server: a public feed's checksum may be asked for by
    // anyone, and each costs seconds of a core for a large feed.
    // Waiting at most a while: a queue of requests behind a long hash gets 429 instead.
    let _turn = match tokio::time::timeout(HASH_WAIT, HASHING.acquire()).await {
        Ok(Ok(turn)) => turn,
        _ => {
            return Err(ApiError::TooMany {
                retry_after: HASH_WAIT.as_secs(),
                message: "Checksums are being computed; try again later".into(),
            });
        }
    };
    let mut file = open_span(&span).await?.take(bytes);
    // Read a piece at a time: a feed's file may be hundreds of megabytes.
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = file.read(&mut buf).await.map_err(read_failed)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(reply::json(json!({
        "success": true,
        "npoints": npoints,
        "size": format!("{:.1} MB", bytes as f64 / 1_048_576.0),
        "sha256sum": hex::encode(hash.finalize()),
    })))
}
