//! `feed/data` (also `average` and `csvexport`): one feed (`id`) as a bare `[[time,value],…]`
//! array, several (`ids=a,b`, or a comma in `id`) as `[{"feedid":"a","data":[…]},…]`, or CSV.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ynni_core::catalog::FeedRow;
use ynni_ingest::shard::{FeedAnswer, FeedOp};
use ynni_storage::query::{self, DataRequest, Interval, QueryError, TimeFormat, TimeValue};

use super::{Call, ENGINE_VIRTUAL, run};
use crate::reply;

/// What the action itself asks for, whatever the parameters say.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Forced {
    pub average: bool,
    pub csv: bool,
}

/// A series ready to render: the reply's time format and the points.
struct Series {
    format: TimeFormat,
    points: Vec<(i64, Option<f64>)>,
}

pub(super) async fn data(call: &Call<'_>, forced: Forced) -> Response {
    let p = call.params;
    let Some(start) = p.get("start") else {
        return reply::text(StatusCode::OK, "missing start parameter");
    };
    let Some(end) = p.get("end") else {
        return reply::text(StatusCode::OK, "missing end parameter");
    };
    let (ids_text, listed) = match (p.get("ids"), p.get("id")) {
        (Some(ids), _) if !ids.trim().is_empty() => (ids, true),
        (_, Some(id)) if !id.trim().is_empty() => (id, id.contains(',')),
        _ => return reply::fail("no ids given"),
    };
    // An id that is not a number is PHP's (int) cast of it, so a feed that does not exist.
    let ids: Vec<i64> = ids_text
        .split(',')
        .map(|i| i.trim().parse::<i64>().unwrap_or(0))
        .collect();
    let mut rows = Vec::with_capacity(ids.len());
    let mut unknown = Vec::new();
    for &id in &ids {
        match call.state.catalog.feed_by_id(id).await {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => unknown.push(id),
            Err(e) => return reply::internal(&e),
        }
    }
    if !unknown.is_empty() {
        let message = match unknown.as_slice() {
            [one] => format!("feed {one} does not exist"),
            many => format!("{} feeds do not exist", many.len()),
        };
        return reply::json(json!({"success": false, "message": message, "feeds": unknown}));
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
    let flags = |k: &str| -> Vec<bool> {
        p.get(k)
            .unwrap_or("")
            .split(',')
            .map(|v| {
                let v = v.trim();
                v == "1" || v.eq_ignore_ascii_case("true")
            })
            .collect()
    };
    let flag = |k: &str| flags(k).first().copied().unwrap_or(false);
    let (averages, deltas) = (flags("average"), flags("delta"));
    let mut base = DataRequest::new(start, end, interval);
    base.skipmissing = flag("skipmissing");
    base.limitinterval = flag("limitinterval");
    base.dp = p
        .get("dp")
        .and_then(|d| d.trim().parse().ok())
        .filter(|d: &i32| *d >= 0);
    base.timeformat = p.get("timeformat").unwrap_or("unixms").to_string();
    base.tz = tz;

    let mut series: Vec<Option<Series>> = Vec::with_capacity(rows.len());
    // emoncms does not reset its average flag between feeds: once one feed averages, every
    // later feed of the request does too.
    let mut average = forced.average;
    for (i, row) in rows.iter().enumerate() {
        average |= averages.get(i).copied().unwrap_or(false);
        // One delta flag for all feeds unless each is given.
        let delta = deltas.get(i).or(deltas.first()).copied().unwrap_or(false);
        if !(row.public || call.caller.is_some_and(|c| c.user.id == row.userid)) {
            series.push(None);
            continue;
        }
        let mut req = base.clone();
        req.average = average;
        req.delta = delta;
        match read(call, row, req).await {
            Ok(s) => series.push(Some(s)),
            Err(r) => return r,
        }
    }
    let csv = forced.csv || flag("csv");
    if csv {
        let name = ids.iter().map(i64::to_string).collect::<Vec<_>>().join("-");
        // A single feed's CSV has second timestamps unless a format is asked for.
        let single_default = !listed && p.get("timeformat").is_none();
        return csv_reply(&name, &series, tz, single_default);
    }
    if !listed {
        return match series.into_iter().next().flatten() {
            Some(s) => reply::json(points_json(&s, tz)),
            // A feed the caller may not read gives an empty series in emoncms.
            None => reply::json(json!([])),
        };
    }
    let entries: Vec<(usize, Value)> = series
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let s = s.as_ref()?;
            Some((
                i,
                json!({"feedid": ids[i].to_string(), "data": points_json(s, tz)}),
            ))
        })
        .collect();
    if entries.len() == series.len() {
        reply::json(Value::Array(entries.into_iter().map(|e| e.1).collect()))
    } else {
        // PHP encodes an array with gaps (feeds the caller may not read) as an object.
        reply::json(Value::Object(
            entries
                .into_iter()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
        ))
    }
}

async fn read(call: &Call<'_>, row: &FeedRow, req: DataRequest) -> Result<Series, Response> {
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
    match run(call, row, op).await? {
        FeedAnswer::Data(d) => Ok(Series {
            format: d.format,
            points: d.points,
        }),
        _ => Ok(Series {
            format: TimeFormat::UnixMs,
            points: Vec::new(),
        }),
    }
}

fn points_json(s: &Series, tz: chrono_tz::Tz) -> Value {
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

/// emoncms's CSV download: `time,value[,value…]` lines on the first feed's times, values with
/// two decimals, `null` where missing.
fn csv_reply(name: &str, series: &[Option<Series>], tz: chrono_tz::Tz, seconds: bool) -> Response {
    let mut out = String::new();
    let first = series.iter().flatten().next();
    if let Some(first) = first {
        let format = if seconds {
            TimeFormat::Unix
        } else {
            first.format
        };
        for (k, &(t, _)) in first.points.iter().enumerate() {
            let mut fields: Vec<String> = Vec::with_capacity(series.len() + 1);
            match query::render_time(t, format, tz) {
                Some(TimeValue::Int(t)) => fields.push(t.to_string()),
                Some(TimeValue::Text(t)) => fields.push(t),
                None => {}
            }
            for s in series.iter().flatten() {
                fields.push(match s.points.get(k).and_then(|p| p.1) {
                    Some(v) => format!("{v:.2}"),
                    None => "null".to_string(),
                });
            }
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    let mut r = (StatusCode::OK, Body::from(out)).into_response();
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
