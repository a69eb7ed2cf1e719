//! Changing stored points in place: `feed/scalerange` (PHPFina only in emoncms) and
//! `feed/deletedatapoint` (MySQL engine only in emoncms). Both need write access to the
//! caller's own feed (feed_controller.php's write section); anyone else gets the unknown route.

use serde_json::{Value, json};
use ynni_core::catalog::FeedRow;
use ynni_ingest::decode::numbers::php_float_cast;
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp};
use ynni_storage::Engine;
use ynni_storage::query::{DataRequest, Interval};

use super::{Call, changeable, engine, php_int, run};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// Slots read and rewritten per step: the feed reader's default point limit.
const CHUNK: i64 = 20_000;

/// Slots one `feed/scalerange` may rewrite (40 MB of data and as much WAL).
const MAX_SCALE_SLOTS: i64 = 10_000_000;

/// What `value=` asks scalerange to do with each value of the range.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    /// Multiply by this factor (NaN erases, 0 zeroes: see [`scaled`]).
    By(f64),
    /// `abs(x)`.
    Abs,
}

/// emoncms's PHPFina::scalerange reading of `value`: `NAN` (any case), a number with an
/// optional `-`, `1/` or `-1/` before it (its decimal part after `.` or `,`; PHP's float cast
/// stops at the comma), or `abs(x)` (any case). Anything else is refused (`None`). PHP's `$`
/// also matches before one final newline. `1/0` is a division by zero, a fatal error in PHP 8;
/// ynni refuses it.
fn parse_scale(text: &str) -> Option<Scale> {
    let s = text.strip_suffix('\n').unwrap_or(text);
    if s.eq_ignore_ascii_case("nan") {
        return Some(Scale::By(f64::NAN));
    }
    if s.eq_ignore_ascii_case("abs(x)") {
        return Some(Scale::Abs);
    }
    let (prefix, number) = if let Some(rest) = s.strip_prefix("-1/") {
        ("-1/", rest)
    } else if let Some(rest) = s.strip_prefix("1/") {
        ("1/", rest)
    } else if let Some(rest) = s.strip_prefix('-') {
        ("-", rest)
    } else {
        ("", s)
    };
    if !number_shape(number) {
        return None;
    }
    let x = php_float_cast(number);
    match prefix {
        "1/" | "-1/" if x == 0.0 => None,
        "1/" => Some(Scale::By(1.0 / x)),
        "-1/" => Some(Scale::By(-1.0 / x)),
        "-" => Some(Scale::By(-x)),
        _ => Some(Scale::By(x)),
    }
}

/// `[0-9]+` optionally followed by `.` or `,` and `[0-9]+`.
fn number_shape(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match s.find(['.', ',']) {
        Some(i) => digits(&s[..i]) && digits(&s[i + 1..]),
        None => digits(s),
    }
}

/// One value after scaling, as emoncms computes it: a factor equal to 0 writes that factor in
/// every slot of the range (missing ones too); otherwise the stored value (NaN when missing)
/// times the factor, so a NaN factor erases the range and a missing value stays missing.
fn scaled(v: Option<f64>, scale: Scale) -> Option<f64> {
    let x = match scale {
        Scale::By(f) if f == 0.0 => f,
        Scale::By(f) => v.unwrap_or(f64::NAN) * f,
        Scale::Abs => v.unwrap_or(f64::NAN).abs(),
    };
    (!x.is_nan()).then_some(x)
}

/// `feed/scalerange?id=&start=&end=&value=` (feed_controller.php hands it to
/// PHPFina::scalerange; any other engine gets a JSON string saying it is PHPFina-only). Times
/// are unix seconds cast with PHP's (int), floored to the feed's interval; the range starts
/// at `start` (no earlier than the feed's first slot) and stops before `end` (which is no later
/// than the feed's last slot, so the last slot is never changed). The answer is the number of
/// bytes written (4 per slot), or `false` for a refused value, a start after the end or an
/// empty range.
///
/// Durability: the range is read from the shard, and the new values are written back as a
/// `FeedOp::Insert` of (slot time, value) points, the path `feed/insert` uses: each step is
/// logged in the shard's WAL and synced before it is applied, and replayed after a crash, so a
/// scale that was answered survives kill -9. Every slot of the range already exists, so the
/// write only overwrites slots; a missing result is written as a missing value (NaN).
pub(super) async fn scalerange(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    if engine(&row) != Some(Engine::Fixed) {
        return Ok(reply::json(json!(
            "scalerange only supported by phpfina engine"
        )));
    }
    let p = call.params;
    let Some(scale) = p.get("value").and_then(parse_scale) else {
        return Err(ApiError::False);
    };
    let meta = match run(call, &row, FeedOp::Meta { id: row.id as u32 }).await? {
        FeedAnswer::Meta(FeedMeta::Fixed(m)) => m,
        _ => return Err(ApiError::False),
    };
    if meta.npoints == 0 || meta.interval == 0 {
        return Err(ApiError::False);
    }
    let interval = i64::from(meta.interval);
    // Clamped first so that flooring cannot overflow; no slot lies outside a u32 anyway.
    let floor = |t: i64| t.clamp(-(1 << 40), 1 << 40).div_euclid(interval) * interval;
    let start = floor(php_int(p.get("start").unwrap_or("")));
    let end = floor(php_int(p.get("end").unwrap_or("")));
    if start > end {
        return Err(ApiError::False);
    }
    let first = i64::from(meta.start_time);
    let last = i64::try_from(meta.end_time()).unwrap_or(i64::MAX);
    let start = start.max(first);
    let end = end.min(last);
    // Slots [start, end): emoncms writes (end - start) / interval values from `start`.
    let slots = (end - start).div_euclid(interval);
    if slots <= 0 {
        // emoncms writes nothing and answers false (or, for a non-zero factor, fails reading
        // zero bytes, a fatal error in PHP 8).
        return Err(ApiError::False);
    }
    // Every slot is read, written through the WAL and flushed: one request may not rewrite
    // more than a bounded range (emoncms has no limit; a feed can hold 429 M slots).
    if slots > MAX_SCALE_SLOTS {
        return Err(ApiError::fail(format!(
            "Range too long: at most {MAX_SCALE_SLOTS} slots per request"
        )));
    }
    let mut from = start;
    let stop = start + slots * interval;
    while from < stop {
        let to = (from + CHUNK * interval).min(stop);
        let points = read_slots(call, &row, from, to - interval, interval).await?;
        let points: Vec<(i64, Option<f64>)> = points
            .into_iter()
            .filter(|&(t, _)| from <= t && t < to)
            .map(|(t, v)| (t, scaled(v, scale)))
            .collect();
        if !points.is_empty() {
            super::store_many(call, &row, points, true).await?;
        }
        from = to;
    }
    Ok(reply::json(json!(slots * 4)))
}

/// The feed's slots from `a` to `b` (both slot times, inclusive) as stored, missing as `None`.
async fn read_slots(
    call: &Call<'_>,
    row: &FeedRow,
    a: i64,
    b: i64,
    interval: i64,
) -> Result<Vec<(i64, Option<f64>)>, ApiError> {
    // A single slot still needs end > start for the reader.
    let req = DataRequest::new(a, b.max(a + interval), Interval::Seconds(interval));
    let op = FeedOp::Data {
        id: row.id as u32,
        req: Box::new(req),
    };
    match run(call, row, op).await? {
        FeedAnswer::Data(d) => Ok(d.points),
        _ => Ok(Vec::new()),
    }
}

/// `feed/deletedatapoint?id=&feedtime=`: emoncms (feed_controller.php) supports it only for its
/// MySQL engines, where it deletes the row at exactly `(int) feedtime` and answers `null`; any
/// other engine answers a JSON string saying so.
pub(super) async fn deletedatapoint(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    if engine(&row) != Some(Engine::Mysql) {
        return Ok(reply::json(Value::String(
            "deletedatapoint only supported by mysqltimeseries engine".into(),
        )));
    }
    // emoncms's MysqlTimeSeries::delete_data_point deletes the row at `(int) feedtime` and
    // returns nothing, which the controller prints as `null`, whether a row was there or not.
    // ynni keeps such a feed's rows in a variable-interval file and rewrites it without the
    // record (after a checkpoint, so no replay of the log brings the point back).
    let time = php_int(call.params.get("feedtime").unwrap_or(""));
    if let Ok(time) = u32::try_from(time) {
        let op = FeedOp::DeletePoint {
            id: row.id as u32,
            time,
        };
        run(call, &row, op).await?;
    }
    Ok(reply::json(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_values_read_as_phpfina_scalerange_reads_them() {
        let by = |f: f64| Some(Scale::By(f));
        assert_eq!(parse_scale("2"), by(2.0));
        assert_eq!(parse_scale("2.5"), by(2.5));
        // PHP's float cast stops at the comma.
        assert_eq!(parse_scale("2,5"), by(2.0));
        assert_eq!(parse_scale("-3"), by(-3.0));
        assert_eq!(parse_scale("1/4"), by(0.25));
        assert_eq!(parse_scale("-1/4"), by(-0.25));
        assert_eq!(parse_scale("0"), by(0.0));
        assert_eq!(parse_scale("abs(x)"), Some(Scale::Abs));
        assert_eq!(parse_scale("ABS(X)"), Some(Scale::Abs));
        assert_eq!(parse_scale("7\n"), by(7.0));
        assert!(matches!(parse_scale("nan"), Some(Scale::By(f)) if f.is_nan()));
        for bad in [
            "", "x", "2.", ".5", "+2", "1e3", "2/3", "--2", "1/0", " 2", "2 ", "abs",
        ] {
            assert_eq!(parse_scale(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scaling_keeps_missing_values_missing_except_for_a_zero_factor() {
        assert_eq!(scaled(Some(3.0), Scale::By(2.0)), Some(6.0));
        assert_eq!(scaled(None, Scale::By(2.0)), None);
        assert_eq!(scaled(None, Scale::By(0.0)), Some(0.0));
        assert_eq!(scaled(Some(3.0), Scale::By(f64::NAN)), None);
        assert_eq!(scaled(Some(-3.0), Scale::Abs), Some(3.0));
        assert_eq!(scaled(None, Scale::Abs), None);
    }
}
