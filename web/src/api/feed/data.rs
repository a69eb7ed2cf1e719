//! `feed/data` (also `average` and `csvexport`): one feed (`id`) as a bare `[[time,value],…]`
//! array, several (`ids=a,b`, or a comma in `id`) as `[{"feedid":"a","data":[…]},…]`, or CSV.
//!
//! The work one request can ask for is bounded: at most [`MAX_IDS`] ids, each distinct
//! (feed, average, delta) read once however often it is listed, and at most
//! [`MAX_TOTAL_POINTS`] points across the whole reply (one feed is already held to emoncms's
//! `max_datapoints` by the query). The JSON reply is written straight into one string, not
//! built as a `serde_json::Value` tree first: the tree cost ~100 bytes per point in millions of
//! small allocations, which glibc's malloc keeps in its arenas once freed (it returns only
//! whole mappings and the free top of an arena). One large string and a few point vectors are
//! served from their own mappings or an arena's top, so they go back to the system once the
//! reply has been sent.

use std::fmt::Write as _;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use ynni_core::catalog::FeedRow;
use ynni_ingest::decode::numbers::{php_int_cast as php_int, php_numeric};
use ynni_ingest::number;
use ynni_ingest::shard::{FeedAnswer, FeedOp, IngestError};
use ynni_storage::query::{self, DataRequest, Interval, QueryError, TimeFormat, TimeValue};

use super::split::{self, Wanted};
use super::{Call, is_virtual, run};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// The most ids one request may list, repeats included (each is answered with an entry of its
/// own). A graph of more than a few dozen lines is past reading, and emoncms's pages ask for a
/// handful; the cap bounds a request's catalog look-ups and feed reads.
pub(super) const MAX_IDS: usize = 64;

/// The most points one reply may hold across all its entries: twenty feeds at emoncms's
/// per-feed limit of 20,000. That is 6.4 MB of points and 10–16 MB of JSON at most.
const MAX_TOTAL_POINTS: usize = 400_000;
/// The virtual feeds of one request may cost this much work at most, in grid points times
/// the sources and steps computed at each ([`virtual_work`]): ten times the points a reply
/// may hold, so a virtual feed of 20,000 points may have some 200 sources and steps, while
/// a request naming many long lists is refused before its shard computes any of them.
const MAX_VIRTUAL_WORK: usize = 4_000_000;
/// The most feeds one virtual feed may read, and the most source reads the virtual feeds of
/// one request may make together. A source read may scan every record of a variable feed in
/// the range (an average), so a request's reads through virtual feeds stay within a few times
/// what [`MAX_IDS`] direct ids may cost.
pub(super) const MAX_VIRTUAL_SOURCES: usize = MAX_IDS;
const MAX_VIRTUAL_SOURCE_READS: usize = 4 * MAX_IDS;

/// Bytes of JSON per point, to size the reply string once instead of doubling it: a time in
/// milliseconds and a mean with 17 digits take about 35.
const JSON_BYTES_PER_POINT: usize = 40;

/// What the action itself asks for, whatever the parameters say.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Forced {
    pub average: bool,
    pub csv: bool,
}

/// A series ready to render: the reply's time format and the points, and the records of
/// variable-interval feeds read for it.
struct Series {
    format: TimeFormat,
    points: Vec<(i64, Option<f64>)>,
    records: u64,
}

pub(super) async fn data(call: &Call<'_>, forced: Forced) -> ApiResult {
    let p = call.params;
    let Some(start) = p.get("start") else {
        return Err(missing("start"));
    };
    let Some(end) = p.get("end") else {
        return Err(missing("end"));
    };
    // feed_controller.php (the data/average/csvexport branch): `id` wins over `ids` whenever it
    // is given, and either is split on commas as it is, so an empty `ids=` is one id, the
    // empty text, which PHP casts to feed 0: "feed 0 does not exist". Only a request with
    // neither parameter has "no ids given".
    let (ids_text, singular) = match (p.get("id"), p.get("ids")) {
        (Some(id), _) => (id, true),
        (None, Some(ids)) => (ids, false),
        (None, None) => return Err(ApiError::fail("no ids given")),
    };
    // Whether a CSV download has one column per listed feed (feed_controller.php's
    // `$multi_csv`: more than one id, however given); otherwise the engine writes it.
    let listed = ids_text.contains(',');
    let ids = parse_ids(ids_text).map_err(ApiError::Fail)?;
    // emoncms's `feedid` is the listed text itself, not the number it was cast to.
    let id_texts: Vec<&str> = ids_text.split(',').collect();
    // Each distinct id is looked up once, however often it is listed.
    let mut rows: Vec<FeedRow> = Vec::new();
    let mut looked_up: Vec<(i64, Option<usize>)> = Vec::new();
    let mut row_of = Vec::with_capacity(ids.len());
    let mut unknown = Vec::new();
    for &id in &ids {
        let found = match looked_up.iter().find(|(seen, _)| *seen == id) {
            Some(&(_, found)) => found,
            None => {
                let found = call.state.catalog.feed_by_id(id).await?.map(|row| {
                    rows.push(row);
                    rows.len() - 1
                });
                looked_up.push((id, found));
                found
            }
        };
        match found {
            Some(r) => row_of.push(r),
            None => unknown.push(id),
        }
    }
    if !unknown.is_empty() {
        let message = match unknown.as_slice() {
            [one] => format!("feed {one} does not exist"),
            many => format!("{} feeds do not exist", many.len()),
        };
        return Ok(reply::json(
            json!({"success": false, "message": message, "feeds": unknown}),
        ));
    }
    let readable: Vec<bool> = rows
        .iter()
        .map(|row| row.public || call.caller.is_some_and(|c| c.user.id == row.userid))
        .collect();
    let tz = p
        .get("timezone")
        .and_then(ynni_core::timezone::parse)
        .or_else(|| {
            call.caller
                .and_then(|c| ynni_core::timezone::parse(&c.user.timezone))
        })
        .unwrap_or(chrono_tz::Tz::UTC);
    let now = chrono::Utc::now().timestamp();
    let (Some(start), Some(end)) = (
        query::parse_time(start, tz, now),
        query::parse_time(end, tz, now),
    ) else {
        return Err(ApiError::fail(QueryError::EndBeforeStart));
    };
    // feed_controller.php reads `interval`, then lets `mode` replace it.
    let interval_text = p.get("mode").or(p.get("interval"));
    if let Some(split) = p.get("split") {
        let want = Wanted::new(start, end, tz, interval_text.unwrap_or(""), split);
        let format = p.get("timeformat").unwrap_or("unixms");
        return split_reply(
            call, &want, format, &rows, &row_of, &readable, singular, &id_texts,
        )
        .await;
    }
    let interval = Interval::parse(interval_text).map_err(ApiError::fail)?;
    // As emoncms reads them: `average`, `delta` (a value per feed) and `csv` are on when PHP
    // takes the text for true (anything but empty or `0`: `yes` and `2` too); `skipmissing` and
    // `limitinterval` are cast to an integer by the engines (`true` is 0, so off).
    let flags = |k: &str| -> Vec<bool> {
        p.get(k)
            .unwrap_or("")
            .split(',')
            .take(MAX_IDS)
            .map(|v| !crate::params::php_falsy(Some(v)))
            .collect()
    };
    let flag = |k: &str| flags(k).first().copied().unwrap_or(false);
    let cast = |k: &str| p.get(k).is_some_and(|v| php_int(v) != 0);
    let (averages, deltas) = (flags("average"), flags("delta"));
    let mut base = DataRequest::new(start, end, interval);
    base.skipmissing = cast("skipmissing");
    base.limitinterval = cast("limitinterval");
    // emoncms rounds unless `$dp != -1` is false under PHP 8's comparison: a numeric text
    // compares as a number (`-1`, ` -1.0` leave values alone), any other text as text, so
    // `dp=` and `dp=abc` round to whole numbers (`(int)` of them is 0) and `dp=-2` to hundreds.
    base.dp = p
        .get("dp")
        .filter(|d| php_numeric(d) != Some(-1.0))
        .map(|d| php_int(d).clamp(-15, 15) as i32);
    base.timeformat = p.get("timeformat").unwrap_or("unixms").to_string();
    base.tz = tz;

    let csv = forced.csv || flag("csv");
    if csv && !listed {
        // One feed's CSV is written by its engine (feed_model.php passes `$csv` down), so
        // delta, dp and the datapoint limit, applied by feed_model.php to returned data only,
        // do not touch it. An unreadable feed leaves the JSON reply below.
        let single = row_of
            .first()
            .and_then(|&r| rows.get(r).filter(|_| readable.get(r) == Some(&true)));
        if let Some(row) = single.filter(|row| !is_virtual(row)) {
            let mut req = base.clone();
            req.average = forced.average || averages.first().copied().unwrap_or(false);
            let export = query::CsvExport::new(&req).map_err(IngestError::Query)?;
            let id = row.id as u32;
            // The first piece before the headers, so a refused download gets its error reply.
            let (first, export) = match run(
                call,
                row,
                FeedOp::Csv {
                    id,
                    export: Box::new(export),
                },
            )
            .await?
            {
                FeedAnswer::Csv(piece, export) => (piece.unwrap_or_default(), export),
                _ => return Err(ApiError::fail("Could not read the feed's data")),
            };
            let body = csv_body(call.state.router.clone(), row.userid, id, first, export);
            return Ok(csv_response(&row.id.to_string(), body));
        }
    }
    let plan = Plan::new(&row_of, &readable, &averages, &deltas, forced.average);
    let mut budget = PointBudget::new(MAX_TOTAL_POINTS);
    let mut work = PointBudget::new(MAX_VIRTUAL_WORK);
    let mut source_reads = PointBudget::new(MAX_VIRTUAL_SOURCE_READS);
    let mut records_left = query::MAX_RECORDS_READ;
    let mut store: Vec<Series> = Vec::with_capacity(plan.reads.len());
    for (key, &uses) in plan.reads.iter().zip(&plan.uses) {
        let Some(row) = rows.get(key.row) else {
            // Not reached (keys index `rows`); an empty series keeps `store` aligned with
            // `plan.reads`.
            store.push(Series {
                format: TimeFormat::UnixMs,
                points: Vec::new(),
                records: 0,
            });
            continue;
        };
        let mut req = base.clone();
        req.average = key.average;
        req.delta = key.delta;
        // The records of variable-interval feeds are shared among the request's reads.
        req.max_records = records_left;
        // A virtual feed is charged its work before it is done (once, however many times the
        // request lists it): its list runs at every point of the grid over a read of each
        // source, whatever it returns.
        if is_virtual(row) {
            let sources = virtual_sources(row);
            if sources > MAX_VIRTUAL_SOURCES || source_reads.take(sources, 1).is_err() {
                return Err(ApiError::fail(format!(
                    "virtual feed limit reached (at most {MAX_VIRTUAL_SOURCES} source feeds per \
                     virtual feed and {MAX_VIRTUAL_SOURCE_READS} across the request)"
                )));
            }
            work.take(virtual_work(row, &req), 1).map_err(|_| {
                ApiError::fail(format!(
                    "virtual feed limit reached ({MAX_VIRTUAL_WORK} grid points times their \
                     sources and steps across the request), increase request interval, reduce \
                     time range or request fewer virtual feeds"
                ))
            })?;
        }
        let s = read(call, row, req).await?;
        budget.take(s.points.len(), uses).map_err(ApiError::Fail)?;
        records_left = records_left.saturating_sub(s.records);
        store.push(s);
    }
    let series: Vec<Option<&Series>> = plan
        .entries
        .iter()
        .map(|e| e.and_then(|k| store.get(k)))
        .collect();
    if csv && listed {
        // feed_model.php's csv_export_multi: the returned data (delta and dp applied, times
        // in the requested format), named after the ids as listed.
        return Ok(csv_reply(&id_texts.join("-"), &series, tz));
    }
    let size = budget.used() * JSON_BYTES_PER_POINT + series.len() * 32 + 2;
    Ok(entries_reply(
        singular,
        &id_texts,
        &series,
        size,
        |out, s| write_points(out, s, tz),
    ))
}

/// The reply to `feed/data` with `split` (see [`super::split`]).
#[allow(clippy::too_many_arguments)]
async fn split_reply(
    call: &Call<'_>,
    want: &Wanted,
    format: &str,
    rows: &[FeedRow],
    row_of: &[usize],
    readable: &[bool],
    singular: bool,
    id_texts: &[&str],
) -> ApiResult {
    // emoncms converts the engine's seconds for `unixms`, `excel` and `iso8601` and passes
    // every other format through.
    let format = match TimeFormat::parse(format) {
        Some(TimeFormat::NoTime) | None => TimeFormat::Unix,
        Some(f) => f,
    };
    let mut budget = PointBudget::new(MAX_TOTAL_POINTS);
    let mut answers: Vec<Option<split::Answer>> = Vec::with_capacity(row_of.len());
    for &r in row_of {
        let (Some(row), Some(true)) = (rows.get(r), readable.get(r).copied()) else {
            answers.push(None);
            continue;
        };
        // What the reply may still hold bounds what the shard computes, not only what is
        // sent.
        let answer = split::read(call, row, want, budget.left).await?;
        if let split::Answer::Rows(rows) = &answer {
            budget
                .take(rows.len() * want.width().max(1), 1)
                .map_err(ApiError::Fail)?;
        }
        answers.push(Some(answer));
    }
    let size = budget.used() * JSON_BYTES_PER_POINT + answers.len() * 32 + 2;
    Ok(entries_reply(
        singular,
        id_texts,
        &answers,
        size,
        |out, a| write_split(out, a, format, want.tz),
    ))
}

/// Appends one feed's split answer.
fn write_split(out: &mut String, answer: &split::Answer, format: TimeFormat, tz: chrono_tz::Tz) {
    let rows = match answer {
        split::Answer::Rows(rows) => rows,
        split::Answer::False => return out.push_str("false"),
        split::Answer::WrongEngine => {
            return out.push_str(
                r#"{"success":false,"message":"This request is only supported by PHPFina AND MySQLTimeseries"}"#,
            );
        }
    };
    out.push('[');
    for (k, (t, values)) in rows.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = match query::render_time(*t, format, tz) {
            Some(TimeValue::Int(t)) => write!(out, "[{t},["),
            Some(TimeValue::Text(t)) => write!(out, "[{},[", Value::String(t)),
            None => write!(out, "[{t},["),
        };
        for (j, v) in values.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}", reply::number(*v));
        }
        out.push_str("]]");
    }
    out.push(']');
}

/// The reply's shape. With `id`, emoncms answers the bare data when exactly one listed feed
/// may be read, and that from position 0 of its result array: when the readable feed was
/// listed later, position 0 is empty and PHP prints `null` (after warnings ynni never sends).
/// No readable feed leaves the empty array, `[]`. Otherwise each readable feed has an entry.
fn entries_reply<D>(
    singular: bool,
    ids: &[&str],
    entries: &[Option<D>],
    size: usize,
    write: impl Fn(&mut String, &D),
) -> Response {
    let mut out = String::with_capacity(size);
    if singular && entries.iter().flatten().count() == 1 {
        return match entries.first().and_then(Option::as_ref) {
            Some(d) => {
                write(&mut out, d);
                reply::json_text(out)
            }
            None => reply::json(Value::Null),
        };
    }
    write_entries(&mut out, ids, entries, write);
    reply::json_text(out)
}

/// emoncms's answer to a missing `start` or `end`: plain text, status 200.
fn missing(what: &str) -> ApiError {
    ApiError::Text(StatusCode::OK, format!("missing {what} parameter"))
}

/// The listed ids, each as PHP's (int) cast reads it (`2abc` is 2, text is 0, a feed that does
/// not exist), as emoncms looks them up.
fn parse_ids(text: &str) -> Result<Vec<i64>, String> {
    let count = text.bytes().filter(|&b| b == b',').count() + 1;
    if count > MAX_IDS {
        return Err(format!(
            "too many feeds requested ({count}), at most {MAX_IDS} per request"
        ));
    }
    Ok(text.split(',').map(super::php_int).collect())
}

/// One series to read: a feed (index into the request's rows) with the flags it is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadKey {
    row: usize,
    average: bool,
    delta: bool,
}

/// Which series a request needs, and which of them each of its entries shows.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// Distinct series, in the order they are first needed.
    reads: Vec<ReadKey>,
    /// How many entries show each of `reads`.
    uses: Vec<usize>,
    /// Per listed id: the index of its series in `reads`, or `None` if the caller may not
    /// read the feed.
    entries: Vec<Option<usize>>,
}

impl Plan {
    /// `row_of[i]` is the row of the i-th listed id and `readable[row]` whether the caller may
    /// read it; `averages` and `deltas` are the per-feed flags as given.
    fn new(
        row_of: &[usize],
        readable: &[bool],
        averages: &[bool],
        deltas: &[bool],
        forced_average: bool,
    ) -> Self {
        let mut plan = Plan::default();
        // emoncms does not reset its average flag between feeds: once one feed averages, every
        // later feed of the request does too.
        let mut average = forced_average;
        for (i, &row) in row_of.iter().enumerate() {
            average |= averages.get(i).copied().unwrap_or(false);
            // One delta flag for all feeds unless each is given.
            let delta = deltas.get(i).or(deltas.first()).copied().unwrap_or(false);
            if !readable.get(row).copied().unwrap_or(false) {
                plan.entries.push(None);
                continue;
            }
            let key = ReadKey {
                row,
                average,
                delta,
            };
            let k = match plan.reads.iter().position(|r| *r == key) {
                Some(k) => k,
                None => {
                    plan.reads.push(key);
                    plan.uses.push(0);
                    plan.reads.len() - 1
                }
            };
            if let Some(u) = plan.uses.get_mut(k) {
                *u += 1;
            }
            plan.entries.push(Some(k));
        }
        plan
    }
}

/// What computing virtual feed `row` on `req`'s grid costs, in points: each of the grid's
/// points once, and again for each source read and each step run at it. A grid the query
/// refuses costs nothing here (the read answers its error).
fn virtual_work(row: &FeedRow, req: &DataRequest) -> usize {
    let grid = query::grid(req).map_or(0, |(times, _, _)| times.len());
    let steps = ynni_ingest::process::ProcessList::parse(&row.process_list)
        .steps()
        .len();
    grid.saturating_mul(1 + virtual_sources(row) + steps)
}

/// How many distinct feeds virtual feed `row`'s list reads.
fn virtual_sources(row: &FeedRow) -> usize {
    sources_of(&row.process_list)
}

/// How many distinct feeds the virtual feed list `encoded` reads.
pub(super) fn sources_of(encoded: &str) -> usize {
    let list = ynni_ingest::process::ProcessList::parse(encoded);
    let mut sources = list.feed_args().to_vec();
    sources.sort_unstable();
    sources.dedup();
    sources.len()
}

/// Points left for the rest of a reply.
struct PointBudget {
    max: usize,
    left: usize,
}

impl PointBudget {
    fn new(max: usize) -> Self {
        Self { max, left: max }
    }

    /// Takes a series of `points` shown by `uses` entries; refused once the reply as a whole
    /// would hold too many.
    fn take(&mut self, points: usize, uses: usize) -> Result<(), String> {
        match self.left.checked_sub(points.saturating_mul(uses)) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(format!(
                "request datapoint limit reached ({} across all feeds), increase request \
                 interval, reduce time range or request fewer feeds",
                self.max
            )),
        }
    }

    fn used(&self) -> usize {
        self.max - self.left
    }
}

/// Appends `s` as `[[time,value],…]` (`[value,…]` without times), as `serde_json` prints it.
fn write_points(out: &mut String, s: &Series, tz: chrono_tz::Tz) {
    out.reserve(2 + JSON_BYTES_PER_POINT * s.points.len());
    out.push('[');
    let scale = match s.format {
        TimeFormat::Unix => Some(1),
        TimeFormat::UnixMs => Some(1000),
        _ => None,
    };
    if let Some(scale) = scale {
        number::write_pairs(out, &s.points, scale);
        out.push(']');
        return;
    }
    for (k, &(t, v)) in s.points.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        match query::render_time(t, s.format, tz) {
            Some(TimeValue::Int(t)) => {
                out.push('[');
                number::write_i64(out, t);
                out.push(',');
                number::write_php_json(out, v);
                out.push(']');
            }
            Some(TimeValue::Text(t)) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "[{},", Value::String(t));
                number::write_php_json(out, v);
                out.push(']');
            }
            None => number::write_php_json(out, v),
        }
    }
    out.push(']');
}

/// Appends the entries of a listed request: `[{"feedid":"1","data":[…]},…]`. emoncms keys
/// each entry by its position in the list and leaves out the feeds the caller may not read
/// (feed_controller.php); PHP's `json_encode` writes such an array as a list only while its
/// keys are 0, 1, 2… in order, so a feed left out before a shown one turns the reply into an
/// object keyed by position (`{"0":…,"2":…}`), while feeds left out at the end, or all of
/// them, keep a list (`[…]`, `[]`).
fn write_entries<D>(
    out: &mut String,
    ids: &[&str],
    entries: &[Option<D>],
    write: impl Fn(&mut String, &D),
) {
    let shown = entries.iter().flatten().count();
    let gaps = entries.iter().take(shown).any(Option::is_none);
    out.push(if gaps { '{' } else { '[' });
    let mut first = true;
    for (i, (d, id)) in entries.iter().zip(ids).enumerate() {
        let Some(d) = d else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        if gaps {
            let _ = write!(out, "\"{i}\":");
        }
        let _ = write!(out, "{{\"feedid\":{},\"data\":", php_json_string(id));
        write(out, d);
        out.push('}');
    }
    out.push(if gaps { '}' } else { ']' });
}

/// `s` as a JSON string the way PHP's `json_encode` writes it: `/` escaped as `\/` and every
/// character beyond ASCII as `\uXXXX` (UTF-16 halves), unlike `serde_json`.
fn php_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        // Writing to a String cannot fail.
        let _ = match c {
            '"' => write!(out, "\\\""),
            '\\' => write!(out, "\\\\"),
            '/' => write!(out, "\\/"),
            '\u{8}' => write!(out, "\\b"),
            '\u{c}' => write!(out, "\\f"),
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if c < ' ' => write!(out, "\\u{:04x}", u32::from(c)),
            c if c.is_ascii() => write!(out, "{c}"),
            c => {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .try_for_each(|u| write!(out, "\\u{u:04x}"))
            }
        };
    }
    out.push('"');
    out
}

async fn read(call: &Call<'_>, row: &FeedRow, req: DataRequest) -> Result<Series, ApiError> {
    let op = if is_virtual(row) {
        let owner = call.caller.is_some_and(|c| c.user.id == row.userid);
        // A reader who is not the owner (the feed is public) sees it computed from the
        // owner's public feeds only.
        let readable = if owner {
            None
        } else {
            let rows = call.state.catalog.feeds_for_user(row.userid).await?;
            Some(
                rows.iter()
                    .filter(|f| f.public)
                    .filter_map(|f| u32::try_from(f.id).ok())
                    .collect(),
            )
        };
        FeedOp::Virtual {
            userid: row.userid,
            list: row.process_list.clone(),
            req: Box::new(req),
            readable,
        }
    } else {
        FeedOp::Data {
            id: row.id as u32,
            req: Box::new(req),
        }
    };
    match run(call, row, op).await? {
        FeedAnswer::Data(d) => Ok(Series {
            format: d.format,
            points: d.points,
            records: d.records,
        }),
        _ => Ok(Series {
            format: TimeFormat::UnixMs,
            points: Vec::new(),
            records: 0,
        }),
    }
}

/// emoncms's CSV of several feeds: `time,value[,value…]` lines on the first shown feed's
/// times, written as the data reply would give them, values with two decimals, `null` where
/// missing (and for 0, as PHP's loose comparison with null has it).
fn csv_reply(name: &str, series: &[Option<&Series>], tz: chrono_tz::Tz) -> Response {
    let mut out = String::new();
    if let Some(first) = series.iter().flatten().next() {
        for (k, &(t, _)) in first.points.iter().enumerate() {
            let mut fields: Vec<String> = Vec::with_capacity(series.len() + 1);
            match query::render_time(t, first.format, tz) {
                Some(TimeValue::Int(t)) => fields.push(t.to_string()),
                Some(TimeValue::Text(t)) => fields.push(t),
                None => {}
            }
            for s in series.iter().flatten() {
                fields.push(query::csv_value(s.points.get(k).and_then(|p| p.1)));
            }
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    csv_response(name, Body::from(out))
}

/// A one-feed CSV download from its first piece on: each further piece is asked of the
/// feed's shard when the client has taken the one before, so a download of millions of lines
/// holds one piece and keeps the shard for one piece at a time. A shard too busy to answer is
/// asked again shortly; one that fails (or no longer serves the feed) ends the body with an
/// error, so the client sees a failed download, never a short file that looks complete.
fn csv_body(
    router: std::sync::Arc<ynni_ingest::shard::Router>,
    userid: i64,
    id: u32,
    first: String,
    export: Box<query::CsvExport>,
) -> Body {
    let state = (!export.done()).then_some(export);
    let rest = futures_util::stream::unfold(state, move |export| {
        let router = router.clone();
        async move {
            let export = export?;
            loop {
                let op = FeedOp::Csv {
                    id,
                    export: export.clone(),
                };
                match router.feed(userid, op).await {
                    Ok(FeedAnswer::Csv(Some(piece), next)) => {
                        let more = (!next.done()).then_some(next);
                        return Some((Ok(bytes::Bytes::from(piece)), more));
                    }
                    Ok(FeedAnswer::Csv(None, _)) => return None,
                    Err(IngestError::Busy) => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Ok(_) => return Some((Err(std::io::Error::other("unexpected answer")), None)),
                    Err(e) => {
                        tracing::warn!(feed = id, error = %e, "a CSV download stopped part-way");
                        return Some((Err(std::io::Error::other(e.to_string())), None));
                    }
                }
            }
        }
    });
    let first = futures_util::stream::once(async move { Ok(bytes::Bytes::from(first)) });
    Body::from_stream(first.chain(rest))
}

/// A CSV download's headers, as shared_helper.php's `csv_header` sends them.
fn csv_response(name: &str, body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        HeaderName::from_static("content-description"),
        HeaderValue::from_static("File Transfer"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={name}.csv")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn series(format: TimeFormat, points: &[(i64, Option<f64>)]) -> Series {
        Series {
            format,
            points: points.to_vec(),
            records: 0,
        }
    }

    /// The reply as it was built before: a `serde_json::Value` tree, printed.
    fn as_value(s: &Series, tz: Tz) -> Value {
        Value::Array(
            s.points
                .iter()
                .map(|&(t, v)| match query::render_time(t, s.format, tz) {
                    Some(TimeValue::Int(t)) => json!([t, reply::number(v)]),
                    Some(TimeValue::Text(t)) => json!([t, reply::number(v)]),
                    None => reply::number(v),
                })
                .collect(),
        )
    }

    /// The fault: `ids=11,11,…` (400 times) read and rendered the feed 400 times.
    #[test]
    fn a_request_may_list_at_most_64_ids() {
        let ok = ["11"; MAX_IDS].join(",");
        assert_eq!(parse_ids(&ok).map(|v| v.len()), Ok(MAX_IDS));
        let many = ["11"; 400].join(",");
        assert_eq!(
            parse_ids(&many),
            Err("too many feeds requested (400), at most 64 per request".to_string())
        );
        assert_eq!(parse_ids("1, 2,x"), Ok(vec![1, 2, 0]));
        // PHP's (int) cast: a numeric prefix counts, nothing is 0.
        assert_eq!(parse_ids("2abc,,+3, 4 "), Ok(vec![2, 0, 3, 4]));
    }

    #[test]
    fn a_repeated_id_is_read_once_and_shown_each_time() {
        let plan = Plan::new(&[0; 40], &[true], &[], &[], false);
        assert_eq!(plan.reads.len(), 1);
        assert_eq!(plan.uses, [40]);
        assert_eq!(plan.entries, [Some(0); 40]);
    }

    #[test]
    fn repeats_with_different_flags_are_read_apart() {
        // The average flag sticks once set (as in emoncms), so entries 1 and 2 share a read.
        let plan = Plan::new(&[0, 0, 0, 1], &[true, false], &[false, true], &[], false);
        assert_eq!(
            plan.reads,
            [
                ReadKey {
                    row: 0,
                    average: false,
                    delta: false
                },
                ReadKey {
                    row: 0,
                    average: true,
                    delta: false
                },
            ]
        );
        assert_eq!(plan.uses, [1, 2]);
        assert_eq!(plan.entries, [Some(0), Some(1), Some(1), None]);
        // One delta flag applies to all.
        let plan = Plan::new(&[0, 0], &[true], &[], &[true], false);
        assert_eq!(plan.reads.len(), 1);
        assert!(plan.reads.iter().all(|r| r.delta));
    }

    #[test]
    fn the_points_of_all_entries_are_bounded_together() {
        let mut b = PointBudget::new(MAX_TOTAL_POINTS);
        assert_eq!(b.take(20_000, 20), Ok(()));
        assert_eq!(b.used(), MAX_TOTAL_POINTS);
        assert!(b.take(1, 1).is_err());
        let mut b = PointBudget::new(MAX_TOTAL_POINTS);
        // A series shown by many entries counts once per entry.
        assert!(b.take(20_001, 20).is_err());
        assert!(b.take(usize::MAX, 2).is_err());
        let message = PointBudget::new(10).take(11, 1).expect_err("over");
        assert!(message.starts_with("request datapoint limit reached (10 across all feeds)"));
    }

    #[test]
    fn points_are_written_as_the_value_tree_printed_them() {
        let tz: Tz = "Europe/London".parse().expect("zone");
        let points = [
            (1_700_000_000, Some(1.5)),
            (1_700_000_010, None),
            (1_700_000_020, Some(102.0)),
            (1_700_000_030, Some(-0.1)),
            (1_700_000_040, Some(1e20)),
        ];
        for format in [
            TimeFormat::Unix,
            TimeFormat::UnixMs,
            TimeFormat::Excel,
            TimeFormat::Iso8601,
            TimeFormat::NoTime,
        ] {
            let s = series(format, &points);
            let mut out = String::new();
            write_points(&mut out, &s, tz);
            assert_eq!(out, as_value(&s, tz).to_string(), "{format:?}");
        }
        let mut out = String::new();
        write_points(&mut out, &series(TimeFormat::UnixMs, &[]), tz);
        assert_eq!(out, "[]");
    }

    #[test]
    fn entries_are_written_as_emoncms_shapes_them() {
        let tz = Tz::UTC;
        let a = series(TimeFormat::Unix, &[(10, Some(1.0))]);
        let b = series(TimeFormat::Unix, &[(10, None)]);
        let w = |out: &mut String, s: &&Series| write_points(out, s, tz);
        let mut out = String::new();
        write_entries(
            &mut out,
            &["1", "2", "1"],
            &[Some(&a), Some(&b), Some(&a)],
            w,
        );
        assert_eq!(
            out,
            r#"[{"feedid":"1","data":[[10,1]]},{"feedid":"2","data":[[10,null]]},{"feedid":"1","data":[[10,1]]}]"#
        );
        // A gap before a shown entry: PHP's array is no list any more.
        let mut out = String::new();
        write_entries(&mut out, &["1", "3", "2"], &[Some(&a), None, Some(&b)], w);
        assert_eq!(
            out,
            r#"{"0":{"feedid":"1","data":[[10,1]]},"2":{"feedid":"2","data":[[10,null]]}}"#
        );
        let mut out = String::new();
        write_entries(&mut out, &["3", "1"], &[None, Some(&a)], w);
        assert_eq!(out, r#"{"1":{"feedid":"1","data":[[10,1]]}}"#);
        // Entries left out at the end keep the list; none shown is the empty list.
        let mut out = String::new();
        write_entries(&mut out, &["1", "3"], &[Some(&a), None], w);
        assert_eq!(out, r#"[{"feedid":"1","data":[[10,1]]}]"#);
        let mut out = String::new();
        write_entries(&mut out, &["3"], &[None], w);
        assert_eq!(out, "[]");
        // The feedid is the listed text, written as PHP writes strings.
        let mut out = String::new();
        write_entries(&mut out, &[" 1/é"], &[Some(&a)], w);
        assert_eq!(out, r#"[{"feedid":" 1\/\u00e9","data":[[10,1]]}]"#);
    }

    #[test]
    fn strings_are_written_as_php_json_encode_writes_them() {
        assert_eq!(php_json_string("12"), r#""12""#);
        assert_eq!(
            php_json_string("a\"b\\c/d\n\u{1}"),
            r#""a\"b\\c\/d\n\u0001""#
        );
        assert_eq!(php_json_string("é😀"), r#""\u00e9\ud83d\ude00""#);
        assert_eq!(php_json_string("\u{7f}"), "\"\u{7f}\"");
    }
}

#[cfg(test)]
mod fuzz {
    //! `feed/data`'s `ids=`: any list is read without panicking into at most [`MAX_IDS`] ids,
    //! one per comma-separated part, and a list of numbers comes back as written.

    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::{MAX_IDS, parse_ids};

    fn list_text() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            proptest::string::string_regex("[ 0-9a-z+.-]{0,6}")
                .expect("the test's own pattern is valid"),
        ];
        prop_oneof![
            vec(any::<char>(), 0..64).prop_map(|c| c.into_iter().collect::<String>()),
            vec(part, 0..(2 * MAX_IDS)).prop_map(|parts| parts.join(",")),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn any_list_is_bounded(text in list_text()) {
            let parts = text.bytes().filter(|&b| b == b',').count() + 1;
            match parse_ids(&text) {
                Ok(ids) => {
                    prop_assert!(ids.len() <= MAX_IDS);
                    prop_assert_eq!(ids.len(), parts);
                }
                Err(_) => prop_assert!(parts > MAX_IDS),
            }
        }

        #[test]
        fn ids_round_trip(
            ids in vec(any::<i64>(), 1..=MAX_IDS),
            pad in select(vec!["", " ", "\t"]),
        ) {
            let parts: Vec<String> = ids.iter().map(|i| format!("{pad}{i}{pad}")).collect();
            prop_assert_eq!(parse_ids(&parts.join(",")), Ok(ids));
        }
    }
}
