//! `input/bulk`: `data=[[t, node, v1, v2, {"name": v}, …], …]`, optionally compressed.

use std::io::Read;

use serde_json::Value as Json;

use super::json::{self, JsonError};
use super::names::{filter_name, filter_node};
use super::numbers::{php_float_cast, php_numeric};
use super::{DecodeError, MAX_INFLATED_BYTES};
use crate::batch::{Decoded, MAX_VALUES_PER_REQUEST, Value};

/// The parameters `input/bulk` reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkParams<'a> {
    pub data: Option<&'a str>,
    /// `c=1`: `data` is hex of a zlib stream.
    pub hex_zlib: bool,
    /// `cb=1`: the raw request body is a zlib stream holding the JSON.
    pub body_zlib: Option<&'a [u8]>,
    pub sentat: Option<&'a str>,
    pub offset: Option<&'a str>,
    pub time: Option<&'a str>,
}

/// The rows decoded before any error. emoncms stores the rows before a bad one, then reports
/// that row's error, so callers commit `batches` and then answer with `error`.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResult {
    pub batches: Vec<Decoded>,
    pub error: Option<DecodeError>,
}

/// The zlib stream's text, read no further than [`MAX_INFLATED_BYTES`]; `invalid` is the
/// error for a stream that is not zlib or not text.
fn inflate(bytes: &[u8], invalid: DecodeError) -> Result<String, DecodeError> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| invalid.clone())?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(DecodeError::InflatedTooLarge {
            limit: MAX_INFLATED_BYTES,
        });
    }
    String::from_utf8(out).map_err(|_| invalid)
}

/// The values a row adds: each positional item, and each entry of a named object.
fn row_values(row: &[Json]) -> usize {
    if row.len() <= 2 {
        return 0;
    }
    row[2..]
        .iter()
        .map(|item| match item {
            Json::Object(named) => named.len(),
            _ => 1,
        })
        .sum()
}

/// A number parameter as PHP's `(int)` reads it (saturating). Only the row times that result
/// are bounded with `clamp_time`, so offsets of any unit keep their differences, as in emoncms.
fn int_param(s: &str) -> i64 {
    php_float_cast(s).trunc() as i64
}

fn json_int(v: &Json) -> i64 {
    match v {
        Json::Number(n) => n.as_f64().map_or(0, |f| f.trunc() as i64),
        Json::String(s) => int_param(s),
        Json::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

/// A bulk value: numbers as they are, `null` missing, text through PHP's float cast.
fn bulk_value(v: &Json) -> Value {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::Null => None,
        Json::String(s) if s == "null" => None,
        Json::String(s) => Some(php_numeric(s).unwrap_or_else(|| php_float_cast(s))),
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        Json::Array(_) | Json::Object(_) => None,
    }
}

/// Decodes an `input/bulk` request; `now` is the server time in unix seconds.
pub fn decode_bulk(p: &BulkParams<'_>, now: i64) -> Result<BulkResult, DecodeError> {
    let too_many = DecodeError::TooManyValues {
        limit: MAX_VALUES_PER_REQUEST,
    };
    let text = if let Some(body) = p.body_zlib {
        inflate(body, DecodeError::BulkInvalidJson)?
    } else if p.hex_zlib {
        let bytes =
            hex::decode(p.data.unwrap_or("").trim()).map_err(|_| DecodeError::BulkInvalidHex)?;
        // emoncms tests `hex2bin`'s result for PHP truth, so hex of nothing or of the text
        // `0` is "not valid" as well.
        if bytes.is_empty() || bytes == b"0" {
            return Err(DecodeError::BulkInvalidHex);
        }
        // Valid hex that does not inflate: emoncms's `gzuncompress` gives false, which
        // `json_decode` reads as empty text, so the answer is the JSON error, not the hex one.
        inflate(&bytes, DecodeError::BulkInvalidJson)?
    } else {
        p.data.unwrap_or("").to_string()
    };
    let rows = match json::parse(&text, json::budget_for(MAX_VALUES_PER_REQUEST)) {
        Ok(Json::Array(rows)) if !rows.is_empty() => rows,
        Err(JsonError::TooLarge) => return Err(too_many),
        _ => return Err(DecodeError::BulkInvalidJson),
    };
    // The whole request is refused, not cut at the limit: a client that resends its buffer
    // must not see part of it stored and the rest refused again and again.
    let values: usize = rows
        .iter()
        .filter_map(Json::as_array)
        .map(|r| row_values(r))
        .sum();
    if values > MAX_VALUES_PER_REQUEST {
        return Err(too_many);
    }
    // emoncms's `isset($data[$len-1][0])`: false for a null as for nothing.
    let last_first = rows
        .last()
        .and_then(|r| r.as_array())
        .and_then(|r| r.first())
        .filter(|v| !v.is_null());
    let Some(last_first) = last_first else {
        return Err(DecodeError::BulkLastItemEmpty);
    };
    // emoncms's time reference; note `offset` is subtracted exactly like `sentat`.
    let t0 = if let Some(s) = p.sentat {
        now.saturating_sub(int_param(s))
    } else if let Some(o) = p.offset {
        now.saturating_sub(int_param(o))
    } else if let Some(t) = p.time {
        int_param(t)
    } else {
        now.saturating_sub(json_int(last_first))
    };
    let mut result = BulkResult {
        batches: Vec::new(),
        error: None,
    };
    for row in &rows {
        let Some(row) = row.as_array() else { continue };
        if row.len() <= 2 {
            continue;
        }
        let node = match &row[1] {
            Json::Object(_) | Json::Array(_) => {
                result.error = Some(DecodeError::BulkNodeObject);
                return Ok(result);
            }
            Json::String(s) => filter_node(s),
            Json::Number(n) => filter_node(&n.to_string()),
            Json::Bool(b) => filter_node(if *b { "1" } else { "" }),
            Json::Null => "0".to_string(),
        };
        let mut batch = Decoded::new(
            super::time::clamp_time(t0.saturating_add(json_int(&row[0]))),
            node,
        );
        let mut index = std::collections::HashMap::new();
        let mut position = 0;
        for item in &row[2..] {
            match item {
                Json::Object(named) => {
                    for (name, v) in named {
                        batch.set(&mut index, filter_name(name), bulk_value(v));
                    }
                }
                v => {
                    position += 1;
                    batch.set(&mut index, position.to_string(), bulk_value(v));
                }
            }
        }
        result.batches.push(batch);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const NOW: i64 = 1_795_829_418;

    fn zlib(s: &str) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(s.as_bytes()).expect("compress");
        e.finish().expect("finish")
    }

    #[test]
    fn emonhub_bulk_with_sentat_and_named_objects() {
        // What a real emonhub 2.7 sent (tests/fixtures/emoncms/emonhub-capture.txt).
        let data = r#"[[1795829413,"emonTx4",{"MSG":102,"Vrms":241.35,"P1":1501}],[1795829413,10,101,200,3.5]]"#;
        let body = zlib(data);
        let r = decode_bulk(
            &BulkParams {
                body_zlib: Some(&body),
                sentat: Some("1795829418"),
                ..Default::default()
            },
            NOW,
        )
        .expect("ok");
        assert_eq!(r.error, None);
        assert_eq!(r.batches.len(), 2);
        assert_eq!(r.batches[0].time, 1_795_829_413);
        assert_eq!(r.batches[0].node, "emonTx4");
        assert_eq!(r.batches[0].values[1], ("Vrms".to_string(), Some(241.35)));
        assert_eq!(r.batches[1].node, "10");
        let names: Vec<&str> = r.batches[1].values.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(names, ["1", "2", "3"]);
    }

    #[test]
    fn time_references() {
        let data = r#"[[-10,"a",1],[0,"a",2]]"#;
        let base = BulkParams {
            data: Some(data),
            ..Default::default()
        };
        let times = |p: BulkParams<'_>| -> Vec<i64> {
            decode_bulk(&p, NOW)
                .expect("ok")
                .batches
                .iter()
                .map(|b| b.time)
                .collect()
        };
        // Legacy: the last row is "now".
        assert_eq!(times(base), vec![NOW - 10, NOW]);
        assert_eq!(
            times(BulkParams {
                time: Some("1000"),
                ..base
            }),
            vec![990, 1000]
        );
        assert_eq!(
            times(BulkParams {
                sentat: Some("5"),
                ..base
            }),
            vec![NOW - 15, NOW - 5]
        );
        // emoncms subtracts `offset` too, whatever its docs say.
        assert_eq!(
            times(BulkParams {
                offset: Some("5"),
                ..base
            }),
            vec![NOW - 15, NOW - 5]
        );
    }

    #[test]
    fn millisecond_times_are_not_divided() {
        // input_methods.php `bulk`: the `time` parameter and each row's offset are read with
        // plain (int) casts and added; nothing checks for milliseconds or divides by 1000.
        // ynni keeps the far-future value, bounded by `clamp_time`.
        let r = decode_bulk(
            &BulkParams {
                data: Some(r#"[[0,"n",1]]"#),
                time: Some("1700000000123"),
                ..Default::default()
            },
            NOW,
        )
        .expect("ok");
        assert_eq!(r.batches[0].time, 1 << 33);
        // Legacy mode: the last row is "now" whatever its unit, and earlier rows are offset
        // by the raw difference (here 1000 "seconds", not 1).
        let r = decode_bulk(
            &BulkParams {
                data: Some(r#"[[1700000000000,"n",1],[1700000001000,"n",2]]"#),
                ..Default::default()
            },
            NOW,
        )
        .expect("ok");
        let times: Vec<i64> = r.batches.iter().map(|b| b.time).collect();
        assert_eq!(times, vec![NOW - 1000, NOW]);
    }

    #[test]
    fn node_and_names_are_filtered() {
        // input_methods.php `bulk` passes the node and the object keys to `process_node`,
        // which filters them with [^\p{N}\p{L}_\s\-.] (an empty node becomes 0).
        let r = decode_bulk(
            &BulkParams {
                data: Some(r#"[[0,"emon(Tx)",{"P(W)":1,"Wärme°":2}],[0,"%%",3]]"#),
                time: Some("5"),
                ..Default::default()
            },
            NOW,
        )
        .expect("ok");
        assert_eq!(r.batches[0].node, "emonTx");
        let names: Vec<&str> = r.batches[0].values.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(names, ["PW", "Wärme"]);
        assert_eq!(r.batches[1].node, "0");
    }

    #[test]
    fn rows_mixing_positions_and_names_and_odd_values() {
        let data = r#"[[0,"n",1,{"x":2},3,null,"4.5","abc"],[0,"n"],[0,"",7]]"#;
        let r = decode_bulk(
            &BulkParams {
                data: Some(data),
                time: Some("100"),
                ..Default::default()
            },
            NOW,
        )
        .expect("ok");
        assert_eq!(r.batches.len(), 2, "rows of two items are skipped");
        let v: Vec<(&str, Value)> = r.batches[0]
            .values
            .iter()
            .map(|(n, v)| (n.as_str(), *v))
            .collect();
        assert_eq!(
            v,
            vec![
                ("1", Some(1.0)),
                ("x", Some(2.0)),
                ("2", Some(3.0)),
                ("3", None),
                ("4", Some(4.5)),
                ("5", Some(0.0))
            ]
        );
        assert_eq!(r.batches[1].node, "0");
    }

    #[test]
    fn values_that_are_not_finite_are_missing() {
        let data = r#"[[0,"n","1e999",{"x":"-1e999"},1e308,"2"]]"#;
        let r = decode_bulk(
            &BulkParams {
                data: Some(data),
                time: Some("100"),
                ..Default::default()
            },
            NOW,
        )
        .expect("ok");
        let v: Vec<(&str, Value)> = r.batches[0]
            .values
            .iter()
            .map(|(n, v)| (n.as_str(), *v))
            .collect();
        assert_eq!(
            v,
            vec![
                ("1", None),
                ("x", None),
                ("2", Some(1e308)),
                ("3", Some(2.0))
            ]
        );
    }

    #[test]
    fn too_many_values_or_too_much_text_are_refused() {
        let limit = MAX_VALUES_PER_REQUEST;
        // Rows of 50 values: at the limit, then one value over it.
        let rows = |extra: usize| {
            let row = format!("[0,\"n\",{}]", vec!["1"; 50].join(","));
            let mut all = vec![row; limit / 50];
            if extra > 0 {
                all.push(format!("[0,\"m\",{}]", vec!["1"; extra].join(",")));
            }
            format!("[{}]", all.join(","))
        };
        let at = rows(0);
        let r = decode_bulk(
            &BulkParams {
                data: Some(&at),
                time: Some("5"),
                ..Default::default()
            },
            NOW,
        )
        .expect("at the limit");
        assert_eq!(
            r.batches.iter().map(|b| b.values.len()).sum::<usize>(),
            limit
        );
        let over = rows(1);
        let e = decode_bulk(
            &BulkParams {
                data: Some(&over),
                time: Some("5"),
                ..Default::default()
            },
            NOW,
        )
        .expect_err("over the limit");
        assert_eq!(e, DecodeError::TooManyValues { limit });
        // Named objects count each entry.
        let named: Vec<String> = (0..=limit).map(|i| format!("\"k{i}\":1")).collect();
        let data = format!("[[0,\"n\",{{{}}}]]", named.join(","));
        assert_eq!(
            decode_bulk(
                &BulkParams {
                    data: Some(&data),
                    ..Default::default()
                },
                NOW,
            )
            .expect_err("named over the limit"),
            DecodeError::TooManyValues { limit }
        );
        // A small body that inflates past the limit (a zlib bomb) is cut off while reading.
        let bomb = zlib(&" ".repeat(MAX_INFLATED_BYTES + 10));
        assert!(bomb.len() < 100_000);
        assert_eq!(
            decode_bulk(
                &BulkParams {
                    body_zlib: Some(&bomb),
                    ..Default::default()
                },
                NOW,
            )
            .expect_err("too large"),
            DecodeError::InflatedTooLarge {
                limit: MAX_INFLATED_BYTES
            }
        );
    }

    #[test]
    fn errors_and_partial_commits() {
        let e = |p: BulkParams<'_>| decode_bulk(&p, NOW).expect_err("error").to_string();
        assert_eq!(
            e(BulkParams {
                data: Some("[[1,2"),
                ..Default::default()
            }),
            "Format error, json string supplied is not valid"
        );
        assert_eq!(
            e(BulkParams {
                data: Some("[]"),
                ..Default::default()
            }),
            "Format error, json string supplied is not valid"
        );
        assert_eq!(
            e(BulkParams::default()),
            "Format error, json string supplied is not valid"
        );
        assert_eq!(
            e(BulkParams {
                data: Some("[[0,\"a\",1],[]]"),
                ..Default::default()
            }),
            "Format error, last item in bulk data does not contain any data"
        );
        // PHP's isset is false for a null too.
        assert_eq!(
            e(BulkParams {
                data: Some("[[0,\"a\",1],[null,\"a\",1]]"),
                ..Default::default()
            }),
            "Format error, last item in bulk data does not contain any data"
        );
        assert_eq!(
            e(BulkParams {
                data: Some("zz"),
                hex_zlib: true,
                ..Default::default()
            }),
            "Format error, compressed hex not valid"
        );
        // Hex of nothing, or of the text `0`, is false to PHP: the hex error again.
        for falsy in ["", "30"] {
            assert_eq!(
                e(BulkParams {
                    data: Some(falsy),
                    hex_zlib: true,
                    ..Default::default()
                }),
                "Format error, compressed hex not valid"
            );
        }
        // Valid hex that is not zlib: the JSON error, as emoncms's failed inflate reads.
        assert_eq!(
            e(BulkParams {
                data: Some("5b5b302c2261222c315d5d"),
                hex_zlib: true,
                ..Default::default()
            }),
            "Format error, json string supplied is not valid"
        );
        let hex = hex::encode(zlib(r#"[[0,"a",1]]"#));
        let r = decode_bulk(
            &BulkParams {
                data: Some(&hex),
                hex_zlib: true,
                time: Some("5"),
                ..Default::default()
            },
            NOW,
        )
        .expect("ok");
        assert_eq!(r.batches[0].time, 5);
        // A bad row stops the batch; rows before it stand.
        let data = r#"[[0,"a",1],[0,{"x":1},2],[0,"b",3]]"#;
        let r = decode_bulk(
            &BulkParams {
                data: Some(data),
                time: Some("5"),
                ..Default::default()
            },
            NOW,
        )
        .expect("partial");
        assert_eq!(r.batches.len(), 1);
        assert_eq!(
            r.error.map(|e| e.to_string()).as_deref(),
            Some("Format error, node must not be an object")
        );
    }
}
