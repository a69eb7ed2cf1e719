//! `feed/insert`, `feed/post` and `feed/update`: points written straight to one of the caller's
//! feeds. emoncms treats the three alike; so does ynni. The answer is sent once the points are
//! durable in the shard's WAL.

use serde_json::{Value, json};
use ynni_ingest::batch::{MAX_VALUES_PER_REQUEST, finite};
use ynni_ingest::decode::numbers::php_float_cast;

use super::{Call, changeable, is_virtual};
use crate::error::{ApiError, ApiResult};
use crate::reply;

pub(super) async fn insert(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    if is_virtual(&row) {
        return Err(ApiError::fail("A virtual feed holds no data"));
    }
    let p = call.params;
    let now = chrono::Utc::now().timestamp();
    let (points, single) = if let Some(data) = p.get_or_post("data") {
        (parse_data(data).map_err(ApiError::fail)?, false)
    } else if let Some(value) = p.get("value") {
        let time = p
            .get("time")
            .map(|t| php_float_cast(t) as i64)
            .filter(|t| *t > 0)
            .unwrap_or(now);
        (vec![(time, finite(Some(php_float_cast(value))))], true)
    } else {
        return Err(ApiError::fail("missing data parameter"));
    };
    let stored = points.last().and_then(|p| p.1);
    // A script's writes count against its plan's values per minute, as its input posts do
    // (uploads and syncs are whole feeds, bounded by their own size limits instead).
    let mut admission = None;
    if let Some(billing) = &call.state.billing
        && !billing.refuses_writes(row.userid)
    {
        match billing.admit(row.userid, &[], points.len()) {
            Ok(a) => admission = Some(a),
            Err(wait) => return Err(crate::api::input::over_plan_rate(wait)),
        }
    }
    let how = super::Write {
        now,
        single,
        rewrite: false,
        start: None,
    };
    let stored_points = super::store_points(call, &row, points, how).await;
    if stored_points.is_err()
        && let (Some(billing), Some(admission)) = (&call.state.billing, admission)
    {
        // Not stored here (a busy shard, or the owner elsewhere, which admits it itself).
        billing.give_back(row.userid, admission);
    }
    stored_points?;
    Ok(if single {
        reply::json(reply::number(stored))
    } else {
        reply::json(json!({"success": true}))
    })
}

/// The answer to a `data` list longer than [`MAX_VALUES_PER_REQUEST`], the per-request limit
/// `input/bulk` keeps too: one request holds its shard for a bounded time.
const TOO_MANY_POINTS: &str = "too many points in one request, at most 50000";
/// `data=[[time,value],…]`. A value that is not a number is PHP's float cast of it (`"abc"` is
/// 0); `null` stays missing (ynni's deliberate difference: emoncms writes 0), and so does a
/// value that is not finite (`"1e999"`), ynni's rule for every value.
fn parse_data(text: &str) -> Result<Vec<(i64, Option<f64>)>, &'static str> {
    let rows = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(rows)) if !rows.is_empty() => rows,
        _ => return Err("error decoding json"),
    };
    if rows.len() > MAX_VALUES_PER_REQUEST {
        return Err(TOO_MANY_POINTS);
    }
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

    #[test]
    fn data_rows_are_bounded() {
        let rows = |n: usize| format!("[{}]", vec!["[1,2]"; n].join(","));
        assert_eq!(
            parse_data(&rows(MAX_VALUES_PER_REQUEST)).map(|p| p.len()),
            Ok(MAX_VALUES_PER_REQUEST)
        );
        assert_eq!(
            parse_data(&rows(MAX_VALUES_PER_REQUEST + 1)),
            Err(TOO_MANY_POINTS)
        );
        assert!(TOO_MANY_POINTS.ends_with(&MAX_VALUES_PER_REQUEST.to_string()));
    }
}

#[cfg(test)]
mod fuzz {
    //! `data=` of `feed/insert`: any text is parsed without panicking into finite or missing
    //! values, and well-formed rows come back exactly.

    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::Value;

    use super::parse_data;

    fn finite_f64() -> impl Strategy<Value = f64> {
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |f| f.is_finite())
    }

    /// Text shaped like `data=`: rows of pairs of any JSON scalars, and anything else.
    fn data_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            finite_f64().prop_map(Value::from),
            proptest::string::string_regex("-?[0-9]{0,4}(\\.[0-9]{0,3})?(e[0-9]{1,3})?|abc|null")
                .expect("the test's own pattern is valid")
                .prop_map(Value::String),
        ];
        let row = vec(scalar, 0..4).prop_map(Value::Array);
        prop_oneof![
            vec(any::<char>(), 0..32).prop_map(|c| c.into_iter().collect::<String>()),
            vec(row, 0..6).prop_map(|rows| Value::Array(rows).to_string()),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn any_text_parses_to_finite_or_missing_values(text in data_text()) {
            if let Ok(points) = parse_data(&text) {
                prop_assert!(!points.is_empty());
                let finite = points.iter().all(|(_, v)| v.is_none_or(f64::is_finite));
                prop_assert!(finite, "{:?}", text);
            }
        }

        /// `[[t, v], …]` with times a JSON number holds exactly: the same points, to the bit.
        #[test]
        fn rows_round_trip(
            rows in vec((-(1i64 << 53)..=(1i64 << 53), proptest::option::of(finite_f64())), 1..20),
        ) {
            let items: Vec<String> = rows
                .iter()
                .map(|(t, v)| format!("[{t},{}]", v.map_or(Value::Null, Value::from)))
                .collect();
            let text = format!("[{}]", items.join(","));
            let bits = |points: &[(i64, Option<f64>)]| -> Vec<(i64, Option<u64>)> {
                points.iter().map(|(t, v)| (*t, v.map(f64::to_bits))).collect()
            };
            let points = parse_data(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(bits(&points), bits(&rows), "{}", text);
        }
    }
}
