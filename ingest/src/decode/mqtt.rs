//! MQTT: `<base>/<node>/<name…>` with a number, and `<base>/<node>` with JSON (optional `time`,
//! nested `{"name":…, "value":…}`) or CSV, as emoncms's `emoncms_mqtt` service reads them.
//! Topics arrive here without the tenant prefix (the broker strips `u/<user>/`).

use serde_json::Value as Json;

use super::json::{self, JsonError};
use super::names::{filter_name, filter_node};
use super::numbers::php_numeric;
use super::time::parse_time_param;
use crate::batch::{Decoded, MAX_VALUES_PER_REQUEST, Value};

/// A scalar as emoncms_mqtt keeps it: numbers (and numeric text) as values, anything else
/// missing.
fn scalar(v: &Json) -> Option<Value> {
    match v {
        Json::Number(n) => Some(n.as_f64()),
        Json::String(s) => Some(php_numeric(s)),
        Json::Bool(_) | Json::Null => Some(None),
        Json::Array(_) | Json::Object(_) => None,
    }
}

/// Decodes one message; `None` if the topic is not an input topic under `base`, or if the
/// message holds more than [`MAX_VALUES_PER_REQUEST`] values (logged: MQTT has no reply).
pub fn decode_mqtt(topic: &str, payload: &[u8], base: &str, now: i64) -> Option<Decoded> {
    let topic: String = topic.chars().filter(|&c| c != ':').collect();
    let text = String::from_utf8_lossy(payload);
    let too_large = || {
        tracing::warn!(
            topic,
            limit = MAX_VALUES_PER_REQUEST,
            "MQTT message with too many values ignored"
        );
    };
    let json = match json::parse(text.trim(), json::budget_for(MAX_VALUES_PER_REQUEST)) {
        Ok(j @ (Json::Object(_) | Json::Array(_))) => Some(j),
        Err(JsonError::TooLarge) => {
            too_large();
            return None;
        }
        _ => None,
    };
    let values = match &json {
        Some(Json::Object(map)) => map.len(),
        Some(Json::Array(items)) => items.len(),
        _ => text.bytes().filter(|&b| b == b',').count() + 1,
    };
    if values > MAX_VALUES_PER_REQUEST {
        too_large();
        return None;
    }
    // emoncms removes every occurrence of `<base>/`, not only the leading one.
    let stripped = topic.replace(&format!("{base}/"), "");
    if stripped == topic || stripped.is_empty() {
        return None;
    }
    let route: Vec<&str> = stripped.split('/').collect();
    let node = filter_node(route[0]);
    let prefix = route[1..].join("_");
    let mut out = Decoded::new(now, node);
    let mut index = std::collections::HashMap::new();
    match json {
        Some(Json::Object(map)) => {
            // emoncms reads the time from a key named `time` in any case, but removes only the
            // lowercase key from the inputs.
            if let Some((_, t)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case("time")) {
                match t {
                    Json::Number(n) => {
                        out.time = n
                            .as_f64()
                            .map_or(now, |v| super::time::clamp_time(v.trunc() as i64));
                    }
                    Json::String(s) => out.time = parse_time_param(s, now),
                    _ => {}
                }
            }
            let time_key = map.contains_key("time").then(|| "time".to_string());
            for (k, v) in &map {
                if time_key.as_deref() == Some(k.as_str()) {
                    continue;
                }
                let (key, value) = match v {
                    // `{"name": n, "value": v}` unboxes to `key_n`; with no name, to `key`.
                    Json::Object(inner) => match (inner.get("name"), inner.get("value")) {
                        (Some(Json::String(n)), Some(val)) => (format!("{k}_{n}"), val),
                        (Some(n @ Json::Number(_)), Some(val)) => (format!("{k}_{n}"), val),
                        (None, Some(val)) => (k.clone(), val),
                        _ => continue,
                    },
                    _ => (k.clone(), v),
                };
                let Some(value) = scalar(value) else { continue };
                let name = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}_{key}")
                };
                out.set(&mut index, filter_name(&name), value);
            }
        }
        Some(Json::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                let Some(value) = scalar(v) else { continue };
                let name = if prefix.is_empty() {
                    i.to_string()
                } else {
                    format!("{prefix}_{i}")
                };
                out.set(&mut index, filter_name(&name), value);
            }
        }
        _ if route.len() >= 2 => {
            out.set(&mut index, filter_name(&prefix), php_numeric(&text));
        }
        _ => {
            // The node topic with a plain payload: CSV, named from 0 over MQTT.
            for (i, item) in text.split(',').enumerate() {
                out.set(&mut index, i.to_string(), php_numeric(item));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_829_515;

    fn vals(d: &Decoded) -> Vec<(&str, Value)> {
        d.values.iter().map(|(n, v)| (n.as_str(), *v)).collect()
    }

    #[test]
    fn numeric_topic_and_deeper_levels() {
        let d = decode_mqtt("emon/emontx/power1", b"12", "emon", NOW).expect("input");
        assert_eq!(
            (d.node.as_str(), d.time, vals(&d)),
            ("emontx", NOW, vec![("power1", Some(12.0))])
        );
        let d = decode_mqtt("emon/node/a/b", b"10", "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("a_b", Some(10.0))]);
        let d = decode_mqtt("emon/node/x", b"on", "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("x", None)]);
        assert!(decode_mqtt("other/node/x", b"1", "emon", NOW).is_none());
    }

    #[test]
    fn json_payloads() {
        let d = decode_mqtt(
            "emon/emontx4",
            br#"{"time":1699999200,"P1":100,"T1":"21.5","bad":[1],"rssi":-63}"#,
            "emon",
            NOW,
        )
        .expect("input");
        assert_eq!(d.time, 1_699_999_200);
        assert_eq!(
            vals(&d),
            vec![
                ("P1", Some(100.0)),
                ("T1", Some(21.5)),
                ("rssi", Some(-63.0))
            ]
        );
        let d = decode_mqtt(
            "emon/emontx/ct",
            br#"{"p":1,"q":{"name":"x","value":2}}"#,
            "emon",
            NOW,
        )
        .expect("input");
        assert_eq!(vals(&d), vec![("ct_p", Some(1.0)), ("ct_q_x", Some(2.0))]);
        let d = decode_mqtt("emon/n", br#"{"Time":1699999300,"a":1}"#, "emon", NOW).expect("input");
        assert_eq!(d.time, 1_699_999_300);
        assert_eq!(
            vals(&d),
            vec![("Time", Some(1_699_999_300.0)), ("a", Some(1.0))],
            "only `time` is removed"
        );
        let d = decode_mqtt("emon/n", br#"{"vrms":{"value":230.1}}"#, "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("vrms", Some(230.1))], "capture seq 276");
    }

    #[test]
    fn values_that_are_not_finite_are_missing() {
        let d = decode_mqtt("emon/n/p", b"1e999", "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("p", None)]);
        let d = decode_mqtt("emon/n", br#"{"a":"-1e999","b":2}"#, "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("a", None), ("b", Some(2.0))]);
        let d = decode_mqtt("emon/n", b"1e999,3", "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("0", None), ("1", Some(3.0))]);
    }

    #[test]
    fn messages_with_too_many_values_are_ignored() {
        let limit = MAX_VALUES_PER_REQUEST;
        let csv = vec!["1"; limit + 1].join(",");
        assert!(decode_mqtt("emon/n", csv.as_bytes(), "emon", NOW).is_none());
        let csv = vec!["1"; limit].join(",");
        assert_eq!(
            decode_mqtt("emon/n", csv.as_bytes(), "emon", NOW)
                .expect("at the limit")
                .values
                .len(),
            limit
        );
        let json = format!("[{}]", vec!["1"; limit + 1].join(","));
        assert!(decode_mqtt("emon/n", json.as_bytes(), "emon", NOW).is_none());
    }

    #[test]
    fn csv_on_the_node_topic_is_zero_based() {
        let d = decode_mqtt("emon/emonpi", b"1,2.5,x", "emon", NOW).expect("input");
        assert_eq!(
            vals(&d),
            vec![("0", Some(1.0)), ("1", Some(2.5)), ("2", None)]
        );
        let d = decode_mqtt("emon/emonpi", b"42", "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("0", Some(42.0))]);
    }
}
