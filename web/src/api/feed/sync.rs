//! `feed/sync`: the upload half of emoncms's sync module, which keeps a remote copy of a
//! local installation's feeds by posting the data the remote lacks (feed_model.php's
//! `sync`, the engines' segment readers, and the sync module's segment writers).
//!
//! The body is a run of segments followed by a little-endian u32 CRC-32 (zlib's, as PHP's
//! `crc32`) of everything before it:
//!
//! ```text
//! fixed interval (PHPFina):   u32 segment length (header included) | u32 feed id |
//!                             u32 start_time | u32 interval | u32 data_start | f32 values…
//! variable (PHPTimeSeries):   u32 segment length (header included) | u32 feed id |
//!                             u32 data_start | 9-byte records (u8 flag, u32 time, f32 value)…
//! ```
//!
//! `data_start` is the byte offset in the feed's data file where the segment's data goes: it
//! must be where the local file ends, so a segment can only append, and a repeated upload is
//! refused rather than applied twice. A segment for an empty fixed feed sets its start time.
//! Each segment is written through the shard's WAL like `feed/insert` and is durable before the
//! next is read; a segment that fails stops the upload with its message, keeping the segments
//! before it, as emoncms does; so does the 1,001st segment of one request. The reply lists every written feed's meta data so the client
//! can see where each copy now ends.

use serde_json::{Value, json};
use ynni_ingest::shard::{FeedAnswer, FeedMeta, FeedOp};
use ynni_storage::{Engine, Storage};

use super::{Call, engine, meta, run, store_many, store_slots};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// A fixed-interval segment's header: length, feed id, start time, interval, data start.
const FIXED_HEADER: usize = 20;
/// A variable-interval segment's header: length, feed id, data start.
const VARIABLE_HEADER: usize = 12;
/// A PHPTimeSeries record: flag byte, u32 time, f32 value.
const RECORD: usize = 9;

/// A segment's place in the body and the feed it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: usize,
    len: usize,
    feed: u32,
}

fn u32_at(body: &[u8], at: usize) -> Option<u32> {
    let b = body.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The body without its checksum, if the checksum holds.
fn checked(body: &[u8]) -> Option<&[u8]> {
    let split = body.len().checked_sub(4)?;
    let (data, sum) = body.split_at(split);
    (u32_at(sum, 0)? == crc32fast::hash(data)).then_some(data)
}

/// The next segment at `pos`, `Ok(None)` when fewer bytes than a fixed header remain (emoncms
/// stops there), or an error for a length that is shorter than a header or runs past the end.
fn next_segment(data: &[u8], pos: usize) -> Result<Option<Segment>, String> {
    if data.len().saturating_sub(pos) < FIXED_HEADER {
        return Ok(None);
    }
    let (Some(len), Some(feed)) = (u32_at(data, pos), u32_at(data, pos + 4)) else {
        return Ok(None);
    };
    let len = len as usize;
    // emoncms's loop would never advance past a zero length and reads short past the end.
    if len < VARIABLE_HEADER || len > data.len() - pos {
        return Err(format!(
            "Invalid segment length {len} at byte {pos} for feedid={feed}"
        ));
    }
    Ok(Some(Segment {
        start: pos,
        len,
        feed,
    }))
}

/// A fixed-interval segment's values by slot, checked against the local feed as it stands.
fn fixed_points(
    seg: &[u8],
    feed: u32,
    local: &ynni_storage::fixed::FixedMeta,
) -> Result<Vec<(u64, Option<f64>)>, String> {
    if seg.len() < FIXED_HEADER {
        return Err(format!(
            "Invalid segment length {} for feedid={feed}",
            seg.len()
        ));
    }
    let word = |k: usize| u32_at(seg, 4 * k).unwrap_or(0);
    let (start_time, interval, data_start) = (word(2), word(3), word(4));
    if local.npoints > 0 && start_time != local.start_time {
        return Err(format!(
            "Upload start_time {start_time} does not match local start_time {} for feedid={feed}",
            local.start_time
        ));
    }
    if interval != local.interval {
        return Err(format!(
            "Upload interval {interval} does not match local interval {} for feedid={feed}",
            local.interval
        ));
    }
    if u64::from(data_start) != local.npoints * 4 {
        return Err(format!(
            "Upload data_start {data_start} does not match local data_start {} for feedid={feed}",
            local.npoints * 4
        ));
    }
    let first = u64::from(data_start / 4);
    Ok(seg[FIXED_HEADER..]
        .chunks_exact(4)
        .enumerate()
        .map(|(k, b)| {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (first + k as u64, (!v.is_nan()).then_some(f64::from(v)))
        })
        .collect())
}

/// A variable-interval segment's points, checked against the local record count.
fn variable_points(
    seg: &[u8],
    feed: u32,
    local_npoints: u64,
) -> Result<Vec<(i64, Option<f64>)>, String> {
    let data_start = u32_at(seg, 8).unwrap_or(0);
    if u64::from(data_start) != local_npoints * RECORD as u64 {
        return Err(format!(
            "Upload data_start {data_start} does not match local data_start {} for feedid={feed}",
            local_npoints * RECORD as u64
        ));
    }
    Ok(seg[VARIABLE_HEADER..]
        .chunks_exact(RECORD)
        .map(|r| {
            let t = u32::from_le_bytes([r[1], r[2], r[3], r[4]]);
            let v = f32::from_le_bytes([r[5], r[6], r[7], r[8]]);
            (i64::from(t), (!v.is_nan()).then_some(f64::from(v)))
        })
        .collect())
}

/// `feed/sync`: see the module documentation.
pub(super) async fn sync(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        // Without write access emoncms's controller falls through to its single-feed branch.
        return Err(ApiError::fail("Feed does not exist"));
    };
    let userid = caller.user.id;
    let Some(data) = checked(call.body) else {
        return Err(ApiError::fail("Invalid checksum"));
    };
    let mut updated: Vec<Value> = Vec::new();
    let mut pos = 0;
    while let Some(seg) = next_segment(data, pos).map_err(ApiError::Fail)? {
        // Each segment costs a catalog read and a WAL sync: a body of tiny segments is
        // stopped at the items limit, keeping the segments before it (as a failed one does).
        if updated.len() >= crate::api::MAX_ITEMS {
            return Err(ApiError::fail(crate::api::TOO_MANY_ITEMS));
        }
        let row = match call.state.catalog.feed_by_id(i64::from(seg.feed)).await? {
            Some(row) if row.userid == userid => row,
            _ => {
                return Err(ApiError::fail(format!(
                    "Invalid feedid or access u={userid} f={}",
                    seg.feed
                )));
            }
        };
        let bytes = &data[seg.start..seg.start + seg.len];
        let storage = engine(&row).and_then(Engine::storage);
        // emoncms syncs PHPFina and PHPTimeSeries feeds and passes over the others (their
        // meta data is still reported).
        if let Some(storage) = storage.filter(|_| engine(&row) != Some(Engine::Mysql)) {
            let local = run(call, &row, FeedOp::Meta { id: seg.feed }).await?;
            match (storage, local) {
                (Storage::Fixed, FeedAnswer::Meta(FeedMeta::Fixed(m))) => {
                    let slots = fixed_points(bytes, seg.feed, &m).map_err(ApiError::Fail)?;
                    if !slots.is_empty() {
                        // An empty feed starts at the segment's start, exactly (a feed
                        // trimmed in emoncms starts inside a slot).
                        let start = u32_at(bytes, 8).unwrap_or(0);
                        store_slots(call, &row, start, m.interval, slots.into_iter()).await?;
                    }
                }
                (Storage::Variable, FeedAnswer::Meta(FeedMeta::Variable(m))) => {
                    let points =
                        variable_points(bytes, seg.feed, m.npoints).map_err(ApiError::Fail)?;
                    if !points.is_empty() {
                        store_many(call, &row, points, false).await?;
                    }
                }
                _ => {
                    return Err(ApiError::fail(format!(
                        "Feed engine mismatch for feedid={}",
                        seg.feed
                    )));
                }
            }
        }
        updated.push(meta(call, &row).await?);
        pos += seg.len;
    }
    Ok(reply::json(
        json!({"success": true, "updated_feed_meta": updated}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ynni_storage::fixed::FixedMeta;

    fn with_sum(mut data: Vec<u8>) -> Vec<u8> {
        let sum = crc32fast::hash(&data);
        data.extend_from_slice(&sum.to_le_bytes());
        data
    }

    fn fixed_segment(feed: u32, start: u32, interval: u32, data_start: u32, v: &[f32]) -> Vec<u8> {
        let mut s = Vec::new();
        for w in [
            (FIXED_HEADER + 4 * v.len()) as u32,
            feed,
            start,
            interval,
            data_start,
        ] {
            s.extend_from_slice(&w.to_le_bytes());
        }
        for x in v {
            s.extend_from_slice(&x.to_le_bytes());
        }
        s
    }

    #[test]
    fn the_checksum_covers_everything_before_it() {
        let body = with_sum(b"abc".to_vec());
        assert_eq!(checked(&body), Some(&b"abc"[..]));
        // PHP's crc32("The quick brown fox jumps over the lazy dog") is 0x414fa339.
        let fox = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(crc32fast::hash(fox), 0x414f_a339);
        let mut bad = body.clone();
        bad[0] ^= 1;
        assert_eq!(checked(&bad), None);
        assert_eq!(checked(b"abc"), None);
        assert_eq!(checked(&with_sum(Vec::new())), Some(&b""[..]));
    }

    #[test]
    fn segments_follow_their_lengths_and_bad_lengths_are_refused() {
        let a = fixed_segment(1, 100, 10, 0, &[1.0, 2.0]);
        let b = fixed_segment(2, 100, 10, 0, &[3.0]);
        let data = [a.clone(), b.clone()].concat();
        let first = next_segment(&data, 0).expect("ok").expect("segment");
        assert_eq!(
            first,
            Segment {
                start: 0,
                len: a.len(),
                feed: 1
            }
        );
        let second = next_segment(&data, a.len()).expect("ok").expect("segment");
        assert_eq!(second.feed, 2);
        assert_eq!(next_segment(&data, data.len()).expect("ok"), None);
        // Fewer than 20 bytes left: emoncms stops reading.
        assert_eq!(next_segment(&data[..19], 0).expect("ok"), None);
        // A zero length would never move on; a length past the end reads short.
        let mut zero = a.clone();
        zero[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(next_segment(&zero, 0).is_err());
        let mut long = a;
        long[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(next_segment(&long, 0).is_err());
    }

    #[test]
    fn fixed_segments_append_at_the_local_end_only() {
        let empty = FixedMeta {
            interval: 10,
            start_time: 0,
            npoints: 0,
        };
        let seg = fixed_segment(1, 1000, 10, 0, &[1.0, f32::NAN, 3.0]);
        assert_eq!(
            fixed_points(&seg, 1, &empty),
            Ok(vec![(0, Some(1.0)), (1, None), (2, Some(3.0))])
        );
        let two = FixedMeta {
            interval: 10,
            start_time: 1000,
            npoints: 2,
        };
        let seg = fixed_segment(1, 1000, 10, 8, &[5.0]);
        assert_eq!(fixed_points(&seg, 1, &two), Ok(vec![(2, Some(5.0))]));
        for (seg, what) in [
            (fixed_segment(1, 990, 10, 8, &[5.0]), "start_time"),
            (fixed_segment(1, 1000, 5, 8, &[5.0]), "interval"),
            (fixed_segment(1, 1000, 10, 4, &[5.0]), "data_start"),
        ] {
            let e = fixed_points(&seg, 1, &two).expect_err(what);
            assert!(
                e.starts_with(&format!("Upload {what} ")) && e.ends_with("for feedid=1"),
                "{e}"
            );
        }
    }

    #[test]
    fn variable_segments_append_records() {
        let mut seg = Vec::new();
        for w in [(VARIABLE_HEADER + 2 * RECORD) as u32, 4, 18] {
            seg.extend_from_slice(&w.to_le_bytes());
        }
        for (t, v) in [(500u32, 1.5f32), (600, f32::NAN)] {
            seg.push(249);
            seg.extend_from_slice(&t.to_le_bytes());
            seg.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            variable_points(&seg, 4, 2),
            Ok(vec![(500, Some(1.5)), (600, None)])
        );
        assert!(variable_points(&seg, 4, 1).is_err());
    }
}
