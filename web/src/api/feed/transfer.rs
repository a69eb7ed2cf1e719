//! Moving a feed's data in bulk: `feed/trim`, `feed/export` (the raw engine file from a byte
//! offset, which emoncms's backup and sync tools append to a local copy) and `feed/upload`
//! (raw binary points, written through the WAL like `feed/insert`).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp, FeedWrite};
use ynni_storage::ENGINE_FIXED;

use super::{Call, ENGINE_VIRTUAL, changeable, readable, run, storage_engine};
use crate::reply;

/// `feed/trim&start_time=`: drops the data before `start_time`.
pub(super) async fn trim(call: &Call<'_>) -> Response {
    let row = match changeable(call).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::fail("A virtual feed holds no data");
    }
    let Some(start_time) = call
        .params
        .get("start_time")
        .and_then(|t| t.trim().parse::<i64>().ok())
    else {
        return reply::fail("Invalid start time");
    };
    let op = FeedOp::Trim {
        id: row.id as u32,
        start_time,
    };
    match run(call, &row, op).await {
        Ok(FeedAnswer::Trimmed(Ok(bytes))) => {
            reply::json(json!({"success": true, "message": format!("{bytes} bytes written")}))
        }
        Ok(FeedAnswer::Trimmed(Err(message))) => reply::fail(message),
        Ok(_) => reply::json_false(),
        Err(r) => r,
    }
}

/// `feed/export&start=<byte offset>`: the engine's data file from that offset.
pub(super) async fn export(call: &Call<'_>) -> Response {
    let row = match readable(call, call.params.get("id")).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::fail("A virtual feed holds no data");
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
    let bytes = match run(call, &row, op).await {
        Ok(FeedAnswer::Bytes(b)) => b,
        Ok(_) => Vec::new(),
        Err(r) => return r,
    };
    let file = if storage_engine(row.engine as u8) == ENGINE_FIXED {
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
    r
}

/// `feed/upload`: a fixed-interval feed takes `start`, `interval`, `npoints` and npoints
/// little-endian float32 values; a variable-interval feed takes `npoints` records of u32 time
/// and f32 value. NaN is a missing value. Answers `true` once the points are durable.
pub(super) async fn upload(call: &Call<'_>) -> Response {
    let row = match changeable(call).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::json_false();
    }
    let p = call.params;
    let int = |k: &str| p.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let Some(npoints) = int("npoints").and_then(|n| usize::try_from(n).ok()) else {
        return reply::json_false();
    };
    let body = call.body;
    let value = |b: &[u8]| {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        (!v.is_nan()).then_some(f64::from(v))
    };
    let points: Vec<(i64, Option<f64>)> = if storage_engine(row.engine as u8) == ENGINE_FIXED {
        let (Some(start), Some(interval)) = (int("start"), int("interval")) else {
            return reply::json_false();
        };
        let feed_interval = match run(call, &row, FeedOp::Meta { id: row.id as u32 }).await {
            Ok(FeedAnswer::Meta(FeedMeta::Fixed(m))) => i64::from(m.interval),
            Ok(_) => return reply::json_false(),
            Err(r) => return r,
        };
        if interval != feed_interval || npoints.checked_mul(4) != Some(body.len()) {
            return reply::json_false();
        }
        body.chunks_exact(4)
            .enumerate()
            .map(|(k, b)| (start + k as i64 * interval, value(b)))
            .collect()
    } else {
        if npoints.checked_mul(8) != Some(body.len()) {
            return reply::json_false();
        }
        body.chunks_exact(8)
            .map(|b| {
                let t = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                (i64::from(t), value(&b[4..]))
            })
            .collect()
    };
    if points.is_empty() {
        return reply::json_false();
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
    match run(call, &row, op).await {
        Ok(_) => reply::json(Value::Bool(true)),
        Err(r) => r,
    }
}

/// `feed/sha256sum&npoints=N`: the SHA-256 of the feed's data file, or of its first N points
/// (0: all), so a copy elsewhere can be checked without downloading it.
pub(super) async fn sha256sum(call: &Call<'_>) -> Response {
    use sha2::Digest;
    let row = match readable(call, call.params.get("id")).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::fail("This request is only supported by PHPFina and PHPTimeSeries");
    }
    let op = FeedOp::Export {
        id: row.id as u32,
        offset: 0,
    };
    let bytes = match run(call, &row, op).await {
        Ok(FeedAnswer::Bytes(b)) => b,
        Ok(_) => Vec::new(),
        Err(r) => return r,
    };
    let point = if storage_engine(row.engine as u8) == ENGINE_FIXED {
        4
    } else {
        9
    };
    let total = bytes.len() / point;
    let npoints = call
        .params
        .get("npoints")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(total, |n| n.min(total));
    let data = &bytes[..npoints * point];
    let digest = sha2::Sha256::digest(data);
    reply::json(json!({
        "success": true,
        "npoints": npoints,
        "size": format!("{:.1} MB", data.len() as f64 / 1_048_576.0),
        "sha256sum": hex::encode(digest),
    }))
}
