//! `input/post`: `fulljson`, the legacy `json`/`data` form (`{power:100,temp:20}`, quotes and
//! braces optional), and `csv`.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::DecodeError;
use super::json::{self, JsonError};
use super::names::{filter_name, filter_node};
use super::numbers::{php_float_cast, php_numeric};
use super::time::parse_time_param;
use crate::batch::{Decoded, MAX_VALUES_PER_REQUEST, Value};

/// The request parameters `input/post` reads (emoncms merges GET and POST, POST winning; the
/// caller does that merge).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostParams<'a> {
    /// `input/post/<node>`; wins over `node`.
    pub path_node: Option<&'a str>,
    pub node: Option<&'a str>,
    pub time: Option<&'a str>,
    pub json: Option<&'a str>,
    pub fulljson: Option<&'a str>,
    pub csv: Option<&'a str>,
    pub data: Option<&'a str>,
}

/// Decodes one `input/post` request; `now` is the server time in unix seconds.
pub fn decode_post(p: &PostParams<'_>, now: i64) -> Result<Decoded, DecodeError> {
    let node = filter_node(p.path_node.or(p.node).unwrap_or(""));
    let datain = p.json.or(p.fulljson).or(p.csv).or(p.data).unwrap_or("");
    if datain.is_empty() {
        return Err(DecodeError::NoData);
    }
    let param_time = p.time.map(|t| parse_time_param(t, now));
    let mut out = Decoded::new(param_time.unwrap_or(now), node);
    let mut index = HashMap::new();
    if p.fulljson.is_some() {
        full_json(datain, param_time.is_none(), now, &mut out, &mut index)?;
    } else {
        legacy(datain, &mut out, &mut index)?;
    }
    Ok(out)
}

/// A JSON value as emoncms stores it: numbers and numeric strings as they are; `null` and the
/// text `null` missing; anything else through PHP's float cast (`true` → 1, text → 0).
fn json_value(v: &Json) -> Value {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if s == "null" => None,
        Json::String(s) => Some(php_numeric(s).unwrap_or_else(|| php_float_cast(s))),
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        Json::Null => None,
        Json::Array(_) | Json::Object(_) => None,
    }
}

fn full_json(
    datain: &str,
    use_time_key: bool,
    now: i64,
    out: &mut Decoded,
    index: &mut HashMap<String, usize>,
) -> Result<(), DecodeError> {
    // The container and one value per entry: a larger text is refused while it is parsed.
    let parsed = json::parse(datain, MAX_VALUES_PER_REQUEST + 1).map_err(|e| match e {
        JsonError::Invalid => DecodeError::InvalidFullJson,
        JsonError::TooLarge => DecodeError::TooManyValues {
            limit: MAX_VALUES_PER_REQUEST,
        },
    })?;
    // emoncms decodes with depth 2: a container of scalars, nothing nested.
    let pairs: Vec<(String, &Json)> = match &parsed {
        Json::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Json::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return Err(DecodeError::InvalidFullJson),
    };
    if pairs.iter().any(|(_, v)| v.is_array() || v.is_object()) {
        return Err(DecodeError::InvalidFullJson);
    }
    // PHP's `array_change_key_case` keeps the last of keys that differ only in case.
    if use_time_key
        && let Some((_, t)) = pairs
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case("time"))
    {
        out.time = match t {
            Json::Number(n) => n
                .as_f64()
                .map_or(now, |v| super::time::clamp_time(v.trunc() as i64)),
            Json::String(s) => parse_time_param(s, now),
            _ => now,
        };
    }
    for (k, v) in pairs {
        // Only a lowercase `time` key is taken out of the inputs (emoncms's behaviour).
        if k == "time" {
            continue;
        }
        out.set(index, filter_name(&k), json_value(v));
    }
    Ok(())
}

fn legacy(
    datain: &str,
    out: &mut Decoded,
    index: &mut HashMap<String, usize>,
) -> Result<(), DecodeError> {
    // Items are separated by commas, which the cleaning below keeps: count before building.
    if datain.bytes().filter(|&b| b == b',').count() >= MAX_VALUES_PER_REQUEST {
        return Err(DecodeError::TooManyValues {
            limit: MAX_VALUES_PER_REQUEST,
        });
    }
    let cleaned: String = datain
        .chars()
        .filter(|&c| super::names::allowed(c) || matches!(c, ':' | ','))
        .collect();
    let mut csv_index = 0;
    let mut error = None;
    for item in cleaned.split(',') {
        let mut parts = item.split(':');
        let first = parts.next().unwrap_or("");
        match parts.next() {
            Some(value) => {
                if first.is_empty() {
                    error.get_or_insert(DecodeError::JsonKeyMissing);
                }
                let v = if value == "null" {
                    None
                } else {
                    if php_numeric(value).is_none() {
                        error.get_or_insert(DecodeError::JsonValueNotNumeric);
                    }
                    Some(php_float_cast(value))
                };
                out.set(index, filter_name(first), v);
            }
            None => {
                // A bare `null` is accepted (and missing), anything else must be numeric.
                let v = if first == "null" {
                    None
                } else {
                    php_numeric(first)
                };
                if v.is_none() && first != "null" {
                    error.get_or_insert(DecodeError::CsvValueNotNumeric);
                }
                csv_index += 1;
                out.set(index, csv_index.to_string(), v);
            }
        }
    }
    // Nothing is stored when any item is bad.
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_829_388;

    fn post(p: PostParams<'_>) -> Result<Decoded, DecodeError> {
        decode_post(&p, NOW)
    }

    fn vals(d: &Decoded) -> Vec<(&str, Value)> {
        d.values.iter().map(|(n, v)| (n.as_str(), *v)).collect()
    }

    #[test]
    fn csv_is_named_from_one_and_node_defaults_to_zero() {
        let d = post(PostParams {
            csv: Some("100,200.5,-3"),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(d.node, "0");
        assert_eq!(d.time, NOW);
        assert_eq!(
            vals(&d),
            vec![("1", Some(100.0)), ("2", Some(200.5)), ("3", Some(-3.0))]
        );
        let d = post(PostParams {
            csv: Some("1,null,3"),
            ..Default::default()
        })
        .expect("null item");
        assert_eq!(
            vals(&d),
            vec![("1", Some(1.0)), ("2", None), ("3", Some(3.0))]
        );
        let e = post(PostParams {
            csv: Some("1,,3"),
            ..Default::default()
        })
        .expect_err("empty item");
        assert_eq!(e.to_string(), "Format error: csv value is not numeric");
    }

    #[test]
    fn legacy_json_strips_quotes_and_braces() {
        let p = PostParams {
            path_node: Some("emontx"),
            node: Some("ignored"),
            json: Some(r#"{"power1":100,power2:200,"q(1)":1,off:null}"#),
            time: Some("1699999205"),
            ..Default::default()
        };
        let d = post(p).expect("ok");
        assert_eq!(d.node, "emontx");
        assert_eq!(d.time, 1_699_999_205);
        assert_eq!(
            vals(&d),
            vec![
                ("power1", Some(100.0)),
                ("power2", Some(200.0)),
                ("q1", Some(1.0)),
                ("off", None)
            ]
        );
        for (data, msg) in [
            ("{a:abc}", "Format error, json value is not numeric"),
            (
                "{:5}",
                "Format error, json key missing or invalid character",
            ),
        ] {
            let e = post(PostParams {
                json: Some(data),
                ..Default::default()
            })
            .expect_err("bad");
            assert_eq!(e.to_string(), msg);
        }
        let d = post(PostParams {
            data: Some("a:1,7"),
            ..Default::default()
        })
        .expect("mixed");
        assert_eq!(vals(&d), vec![("a", Some(1.0)), ("1", Some(7.0))]);
    }

    #[test]
    fn the_last_time_key_in_any_case_wins_as_in_php() {
        let d = post(PostParams {
            fulljson: Some(r#"{"TIME":5,"a":1,"time":7}"#),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(d.time, 7);
    }

    #[test]
    fn fulljson_values_time_key_and_nesting() {
        let p = PostParams {
            node: Some("my node!@#é"),
            fulljson: Some(r#"{"a":1.5,"b":"12.5","c/d":2,"n":null,"s":"abc","t":true,"Time":5}"#),
            ..Default::default()
        };
        let d = post(p).expect("ok");
        assert_eq!(d.node, "my nodeé");
        // With no `time` parameter a key named `time` in any case sets the time; only the
        // lowercase key is removed from the inputs.
        assert_eq!(d.time, 5);
        assert_eq!(
            vals(&d),
            vec![
                ("a", Some(1.5)),
                ("b", Some(12.5)),
                ("cd", Some(2.0)),
                ("n", None),
                ("s", Some(0.0)),
                ("t", Some(1.0)),
                ("Time", Some(5.0)),
            ]
        );
        let d = post(PostParams {
            fulljson: Some(r#"{"time":"2023-11-14 22:00:05","a":1}"#),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!((d.time, vals(&d)), (1_699_999_205, vec![("a", Some(1.0))]));
        let d = post(PostParams {
            fulljson: Some("[1,2,3]"),
            ..Default::default()
        })
        .expect("list");
        assert_eq!(
            vals(&d),
            vec![("0", Some(1.0)), ("1", Some(2.0)), ("2", Some(3.0))]
        );
        for bad in [r#"{"a":{"b":1}}"#, "{a:1}", "5", ""] {
            let e = post(PostParams {
                fulljson: Some(bad),
                ..Default::default()
            })
            .expect_err("bad");
            let want = if bad.is_empty() {
                DecodeError::NoData
            } else {
                DecodeError::InvalidFullJson
            };
            assert_eq!(e, want, "{bad}");
        }
        // The `time` parameter wins over the key.
        let p = PostParams {
            fulljson: Some(r#"{"time":5,"a":1}"#),
            time: Some("7"),
            ..Default::default()
        };
        assert_eq!(post(p).expect("ok").time, 7);
    }

    #[test]
    fn json_parameter_with_fulljson_present_is_parsed_strictly() {
        let p = PostParams {
            json: Some(r#"{"a":1}"#),
            fulljson: Some(""),
            ..Default::default()
        };
        assert_eq!(vals(&post(p).expect("ok")), vec![("a", Some(1.0))]);
        let p = PostParams {
            json: Some("{a:1}"),
            fulljson: Some(""),
            ..Default::default()
        };
        assert_eq!(post(p).expect_err("strict"), DecodeError::InvalidFullJson);
    }

    #[test]
    fn values_that_are_not_finite_are_missing_in_every_form() {
        // PHP's is_numeric accepts these and makes them INF; ynni stores them as missing.
        let d = post(PostParams {
            csv: Some("1e999,-1e999,2"),
            ..Default::default()
        })
        .expect("accepted, as emoncms accepts them");
        assert_eq!(vals(&d), vec![("1", None), ("2", None), ("3", Some(2.0))]);
        let d = post(PostParams {
            json: Some("{a:1e999,b:-1E400,c:1e308}"),
            ..Default::default()
        })
        .expect("accepted");
        assert_eq!(vals(&d), vec![("a", None), ("b", None), ("c", Some(1e308))]);
        let d = post(PostParams {
            fulljson: Some(r#"{"a":"1e999","b":"-1e999","c":1.7976931348623157e308}"#),
            ..Default::default()
        })
        .expect("accepted");
        assert_eq!(
            vals(&d),
            vec![("a", None), ("b", None), ("c", Some(f64::MAX))]
        );
        // A JSON number out of f64's range is not valid JSON for the parser.
        assert_eq!(
            post(PostParams {
                fulljson: Some(r#"{"a":1e999}"#),
                ..Default::default()
            })
            .expect_err("invalid"),
            DecodeError::InvalidFullJson
        );
    }

    #[test]
    fn too_many_values_are_refused_before_they_are_built() {
        let limit = MAX_VALUES_PER_REQUEST;
        let keys = |n: usize| {
            let body: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
            format!("{{{}}}", body.join(","))
        };
        let at_limit = keys(limit);
        let d = post(PostParams {
            fulljson: Some(&at_limit),
            ..Default::default()
        })
        .expect("at the limit");
        assert_eq!(d.values.len(), limit);
        // The 100,000-key post that held a shard for 51 s.
        let over = keys(100_000);
        let e = post(PostParams {
            fulljson: Some(&over),
            ..Default::default()
        })
        .expect_err("over the limit");
        assert_eq!(e, DecodeError::TooManyValues { limit });
        assert_eq!(
            e.to_string(),
            format!(
                "Error: Reached the maximal allowed number of values in one request, limit is {limit}. Nothing was stored."
            )
        );
        let csv = vec!["1"; limit + 1].join(",");
        assert_eq!(
            post(PostParams {
                csv: Some(&csv),
                ..Default::default()
            })
            .expect_err("csv over the limit"),
            DecodeError::TooManyValues { limit }
        );
        let csv = vec!["1"; limit].join(",");
        assert_eq!(
            post(PostParams {
                csv: Some(&csv),
                ..Default::default()
            })
            .expect("csv at the limit")
            .values
            .len(),
            limit
        );
    }

    #[test]
    fn millisecond_time_is_not_divided() {
        // input_methods.php `post`: the `time` parameter is read with a plain (int) cast (a
        // fulljson `time` key the same way); nothing checks for milliseconds or divides by
        // 1000. ynni keeps the far-future value, bounded by `clamp_time`.
        let d = post(PostParams {
            csv: Some("1"),
            time: Some("1700000000123"),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(d.time, 1 << 33);
        let d = post(PostParams {
            fulljson: Some(r#"{"time":1700000000123,"a":1}"#),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!((d.time, vals(&d)), (1 << 33, vec![("a", Some(1.0))]));
    }

    #[test]
    fn names_are_filtered_in_every_form() {
        // input_methods.php `post`: the node is filtered with [^\p{N}\p{L}_\s\-.] (empty
        // becomes 0); the legacy forms first strip to that class plus `:` and `,`, and
        // `process_node`/`create_input` filter each name with the same class.
        let d = post(PostParams {
            path_node: Some("(ünit)"),
            json: Some("{Temp°C:1,Wärme+:2}"),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(d.node, "ünit");
        assert_eq!(vals(&d), vec![("TempC", Some(1.0)), ("Wärme", Some(2.0))]);
        let d = post(PostParams {
            node: Some("+++"),
            fulljson: Some(r#"{"a/b (W)":1,"बिजली":2}"#),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(d.node, "0");
        assert_eq!(vals(&d), vec![("ab W", Some(1.0)), ("बजल", Some(2.0))]);
    }

    #[test]
    fn no_data() {
        assert_eq!(
            post(PostParams::default()).expect_err("none"),
            DecodeError::NoData
        );
        assert_eq!(
            post(PostParams {
                json: Some(""),
                ..Default::default()
            })
            .expect_err("empty")
            .to_string(),
            "Request contains no data via csv, json or data tag"
        );
    }
}
