//! Moving a feed's data in bulk: `feed/trim`, `feed/export` (the raw engine file from a byte
//! offset, which emoncms's backup and sync tools append to a local copy) and `feed/upload`
//! (raw binary points, written through the WAL like `feed/insert`).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use ynni_core::catalog::FeedRow;
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp, FeedWrite};
use ynni_storage::{Engine, Storage};

use super::{Call, changeable, engine, is_virtual, readable, run};
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
    if is_virtual(&row) {
        return Err(ApiError::fail("A virtual feed holds no data"));
    }
    let Some(start_time) = call
        .params
        .get("start_time")
        .and_then(|t| t.trim().parse::<i64>().ok())
    else {
        return Err(ApiError::fail("Invalid start time"));
    };
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
    let offset = call
        .params
        .get("start")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let op = FeedOp::Export {
        id: row.id as u32,
        offset,
    };
    let bytes = match run(call, &row, op).await? {
        FeedAnswer::Bytes(b) => b,
        _ => Vec::new(),
    };
    let file = if fixed_interval(&row) {
        format!("{}.dat", row.id)
    } else {
        format!("feed_{}.MYD", row.id)
    };
    let mut r = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={file}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// `feed/upload`: a fixed-interval feed takes `start`, `interval`, `npoints` and npoints
/// little-endian float32 values; a variable-interval feed takes `npoints` records of u32 time
/// and f32 value. NaN is a missing value. Answers `true` once the points are durable.
pub(super) async fn upload(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    if is_virtual(&row) {
        return Err(ApiError::False);
    }
    let p = call.params;
    let int = |k: &str| p.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let Some(npoints) = int("npoints").and_then(|n| usize::try_from(n).ok()) else {
        return Err(ApiError::False);
    };
    let body = call.body;
    let value = |b: &[u8]| {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        (!v.is_nan()).then_some(f64::from(v))
    };
    let points: Vec<(i64, Option<f64>)> = if fixed_interval(&row) {
        let (Some(start), Some(interval)) = (int("start"), int("interval")) else {
            return Err(ApiError::False);
        };
        let feed_interval = match run(call, &row, FeedOp::Meta { id: row.id as u32 }).await? {
            FeedAnswer::Meta(FeedMeta::Fixed(m)) => i64::from(m.interval),
            _ => return Err(ApiError::False),
        };
        if interval != feed_interval || npoints.checked_mul(4) != Some(body.len()) {
            return Err(ApiError::False);
        }
        body.chunks_exact(4)
            .enumerate()
            .map(|(k, b)| (start + k as i64 * interval, value(b)))
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
    let write = FeedWrite {
        feed: row.id as u32,
        points,
        now: chrono::Utc::now().timestamp(),
        single: false,
    };
    let op = FeedOp::Insert {
        userid: row.userid,
        write,
    };
    run(call, &row, op).await?;
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
    };
    let bytes = match run(call, &row, op).await? {
        FeedAnswer::Bytes(b) => b,
        _ => Vec::new(),
    };
    let point = if fixed_interval(&row) { 4 } else { 9 };
    let total = bytes.len() / point;
    let npoints = call
        .params
        .get("npoints")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(total, |n| n.min(total));
    let data = &bytes[..npoints * point];
    let digest = sha2::Sha256::digest(data);
    Ok(reply::json(json!({
        "success": true,
        "npoints": npoints,
        "size": format!("{:.1} MB", data.len() as f64 / 1_048_576.0),
        "sha256sum": hex::encode(digest),
    })))
}
