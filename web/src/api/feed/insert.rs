//! `feed/insert`, `feed/post` and `feed/update`: points written straight to one of the caller's
//! feeds. emoncms treats the three alike; so does ynni. The answer is sent once the points are
//! durable in the shard's WAL.

use axum::response::Response;
use serde_json::{Value, json};
use ynni_ingest::batch::finite;
use ynni_ingest::decode::numbers::php_float_cast;
use ynni_ingest::shard::{FeedOp, FeedWrite};

use super::{Call, ENGINE_VIRTUAL, changeable, run};
use crate::reply;

pub(super) async fn insert(call: &Call<'_>) -> Response {
    let row = match changeable(call).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.engine == i64::from(ENGINE_VIRTUAL) {
        return reply::fail("A virtual feed holds no data");
    }
    let p = call.params;
    let now = chrono::Utc::now().timestamp();
    let (points, single) = if let Some(data) = p.get_or_post("data") {
        match parse_data(data) {
            Ok(points) => (points, false),
            Err(message) => return reply::fail(message),
        }
    } else if let Some(value) = p.get("value") {
        let time = p
            .get("time")
            .map(|t| php_float_cast(t) as i64)
            .filter(|t| *t > 0)
            .unwrap_or(now);
        (vec![(time, finite(Some(php_float_cast(value))))], true)
    } else {
        return reply::fail("missing data parameter");
    };
    let stored = points.last().and_then(|p| p.1);
    let write = FeedWrite {
        feed: row.id as u32,
        points,
        now,
        single,
    };
    let op = FeedOp::Insert {
        userid: row.userid,
        write,
    };
    if let Err(r) = run(call, &row, op).await {
        return r;
    }
    if single {
        reply::json(reply::number(stored))
    } else {
        reply::json(json!({"success": true}))
    }
}

/// `data=[[time,value],…]`. A value that is not a number is PHP's float cast of it (`"abc"` is
/// 0); `null` stays missing (ynni's deliberate difference: emoncms writes 0), and so does a
/// value that is not finite (`"1e999"`), ynni's rule for every value.
fn parse_data(text: &str) -> Result<Vec<(i64, Option<f64>)>, &'static str> {
    let rows = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(rows)) if !rows.is_empty() => rows,
        _ => return Err("error decoding json"),
    };
    let points: Vec<(i64, Option<f64>)> = rows
        .iter()
        .filter_map(|row| {
            let pair = row.as_array()?;
            let time = number(pair.first()?)?;
            let value = match pair.get(1)? {
                Value::Null => None,
                v => finite(Some(number(v).unwrap_or(0.0))),
            };
            Some((time as i64, value))
        })
        .collect();
    if points.is_empty() {
        return Err("empty data object");
    }
    Ok(points)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => Some(php_float_cast(s)),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows() {
        assert_eq!(
            parse_data("[[10,1.5],[20,null],[30,\"abc\"],[40,\"7\"]]"),
            Ok(vec![
                (10, Some(1.5)),
                (20, None),
                (30, Some(0.0)),
                (40, Some(7.0))
            ])
        );
        assert_eq!(parse_data("[[1,2"), Err("error decoding json"));
        assert_eq!(parse_data("[]"), Err("error decoding json"));
        assert_eq!(parse_data("{\"a\":1}"), Err("error decoding json"));
        assert_eq!(parse_data("[[1],[\"x\"]]"), Err("empty data object"));
        assert_eq!(
            parse_data("[[10,\"1e999\"],[20,\"-1e999\"],[30,1e308]]"),
            Ok(vec![(10, None), (20, None), (30, Some(1e308))])
        );
    }
}
