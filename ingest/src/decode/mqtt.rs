//! MQTT: `<base>/<node>/<name…>` with a number, and `<base>/<node>` with JSON (optional `time`,
//! nested `{"name":…, "value":…}`) or CSV, as emoncms's `emoncms_mqtt` service reads them.
//! Topics arrive here without the tenant prefix (the broker strips `u/<user>/`).

use serde_json::Value as Json;

use super::json::{self, JsonError};
use super::names::{filter_name, filter_node};
use super::numbers::php_numeric;
use crate::batch::{Decoded, MAX_VALUES_PER_REQUEST, Value};

/// A value as emoncms_mqtt keeps it: a scalar (number, text or boolean) becomes an input whose
/// value is the number, or missing when it is not numeric (`true`, `"on"`); `null` and
/// containers are not scalars and make no input at all.
fn scalar(v: &Json) -> Option<Value> {
    match v {
        Json::Number(n) => Some(n.as_f64()),
        Json::String(s) => Some(php_numeric(s)),
        Json::Bool(_) => Some(None),
        Json::Null | Json::Array(_) | Json::Object(_) => None,
    }
}

/// Container nesting of a JSON value (`1` → 0, `[1]` → 1, `{"a":[1]}` → 2).
fn depth(v: &Json) -> usize {
    match v {
        Json::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Json::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// emoncms_mqtt decodes payloads with `json_decode(…, depth 3)`, and PHP's depth counts the
/// value inside the innermost container too (`[1]` needs 2; the post decoder's depth 2 allows
/// one container, as the captures show): two containers at most, deeper JSON is not JSON to it.
const MAX_JSON_DEPTH: usize = 2;

/// The `name` of a `{"name":…, "value":…}` object as PHP appends it: `None` when PHP reads it
/// as false (absent, `null`, `false`, `0`, `""`, `"0"`). A container as a name would be a third
/// level of containers, which is never decoded as JSON ([`MAX_JSON_DEPTH`]).
fn unbox_name(name: Option<&Json>) -> Option<String> {
    match name? {
        Json::Null | Json::Bool(false) | Json::Array(_) | Json::Object(_) => None,
        Json::Bool(true) => Some("1".into()),
        Json::String(s) => (!s.is_empty() && s != "0").then(|| s.clone()),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                (i != 0).then(|| i.to_string())
            } else if let Some(u) = n.as_u64() {
                Some(u.to_string())
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f == 0.0 {
                    None
                } else if f.fract() == 0.0 && f.abs() < 1e15 {
                    Some(format!("{f:.0}"))
                } else {
                    Some(f.to_string())
                }
            }
        }
    }
}

/// One JSON entry as emoncms_mqtt reads it: `{"name": n, "value": v}` (any container with a
/// `value` key) unboxes to `key_n`, or to `key` with no (or a false) name; then only a scalar
/// makes an input (`None`: no input).
fn entry(key: String, v: &Json) -> Option<(String, Value)> {
    let (key, value) = match v {
        Json::Object(inner) if inner.contains_key("value") => {
            let val = inner.get("value")?;
            match unbox_name(inner.get("name")) {
                Some(n) => (format!("{key}_{n}"), val),
                None => (key, val),
            }
        }
        _ => (key, v),
    };
    scalar(value).map(|value| (key, value))
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
        Ok(j @ (Json::Object(_) | Json::Array(_))) if depth(&j) <= MAX_JSON_DEPTH => Some(j),
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
            // emoncms lower-cases the keys to find `time` (a later `Time`/`TIME` overrides an
            // earlier one), but only ever removes the lowercase key from the inputs.
            let mut drop_time = false;
            if let Some((_, t)) = map
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case("time"))
            {
                match t {
                    Json::Number(n) => {
                        out.time = n
                            .as_f64()
                            .map_or(now, |v| super::time::clamp_time(v.trunc() as i64));
                        drop_time = true;
                    }
                    // A string strtotime cannot read leaves the time at now and the key in.
                    Json::String(s) => {
                        if let Some(t) = super::time::parse_time_checked(s, now) {
                            out.time = t;
                            drop_time = true;
                        }
                    }
                    _ => drop_time = true,
                }
            }
            let keyed = map
                .iter()
                .filter(|(k, _)| !(drop_time && k.as_str() == "time"))
                .map(|(k, v)| (k.clone(), v));
            add_entries(&mut out, &mut index, &prefix, keyed);
        }
        Some(Json::Array(items)) => {
            let keyed = items.iter().enumerate().map(|(i, v)| (i.to_string(), v));
            add_entries(&mut out, &mut index, &prefix, keyed);
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

/// Adds a JSON message's (key, value) entries as inputs named `<prefix>_<key>` (or `<key>`).
fn add_entries<'a>(
    out: &mut Decoded,
    index: &mut std::collections::HashMap<String, usize>,
    prefix: &str,
    entries: impl Iterator<Item = (String, &'a Json)>,
) {
    for (key, value) in entries.filter_map(|(k, v)| entry(k, v)) {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}_{key}")
        };
        out.set(index, filter_name(&name), value);
    }
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
    fn millisecond_time_is_not_divided() {
        // emoncms_mqtt.php `message`: a numeric `time` key is taken with a plain (int) cast;
        // there is no millisecond check and no division by 1000, and that time goes to the
        // input and to its process list. ynni keeps the value too, bounded by `clamp_time`.
        let d =
            decode_mqtt("emon/n", br#"{"time":1700000000123,"a":1}"#, "emon", NOW).expect("input");
        assert_eq!(d.time, 1 << 33);
        assert_eq!(vals(&d), vec![("a", Some(1.0))], "the key is still removed");
        let d =
            decode_mqtt("emon/n", br#"{"time":"1700000000.9","a":1}"#, "emon", NOW).expect("input");
        assert_eq!(d.time, 1_700_000_000);
    }

    #[test]
    fn time_key_forms() {
        // emoncms_mqtt.php `message`: the keys are lower-cased to look `time` up, so a later
        // `TIME` overrides an earlier `time`; only the lowercase key is unset.
        let d = decode_mqtt("emon/n", br#"{"time":5,"TIME":7,"a":1}"#, "emon", NOW).expect("input");
        assert_eq!(d.time, 7);
        assert_eq!(vals(&d), vec![("TIME", Some(7.0)), ("a", Some(1.0))]);
        // A string strtotime cannot read: time is now and the key is not unset, so it becomes
        // an input whose value is not numeric.
        let d = decode_mqtt("emon/n", br#"{"time":"soon","a":1}"#, "emon", NOW).expect("input");
        assert_eq!(d.time, NOW);
        assert_eq!(vals(&d), vec![("time", None), ("a", Some(1.0))]);
        // A time that is neither numeric nor text: now, and the key is unset.
        for payload in [
            r#"{"time":null,"a":1}"#,
            r#"{"time":true,"a":1}"#,
            r#"{"time":[1],"a":1}"#,
        ] {
            let d = decode_mqtt("emon/n", payload.as_bytes(), "emon", NOW).expect("input");
            assert_eq!(
                (d.time, vals(&d)),
                (NOW, vec![("a", Some(1.0))]),
                "{payload}"
            );
        }
        let d = decode_mqtt(
            "emon/n",
            br#"{"time":"2023-11-14 22:00:05","a":1}"#,
            "emon",
            NOW,
        )
        .expect("input");
        assert_eq!((d.time, vals(&d)), (1_699_999_205, vec![("a", Some(1.0))]));
    }

    #[test]
    fn values_that_are_not_numbers() {
        // emoncms_mqtt.php `message`: after unboxing, only `is_scalar` values make inputs
        // (numbers, strings, booleans; PHP's null is not a scalar), and a value that is not
        // `is_numeric` is stored as null. Containers are skipped with a warning.
        let d = decode_mqtt(
            "emon/n",
            br#"{"a":"on","b":true,"c":false,"d":null,"e":{"x":1},"f":[1,2],"g":" 12","h":"0x1A"}"#,
            "emon",
            NOW,
        )
        .expect("input");
        assert_eq!(
            vals(&d),
            vec![
                ("a", None),
                ("b", None),
                ("c", None),
                ("g", Some(12.0)),
                ("h", None)
            ]
        );
        let d = decode_mqtt("emon/n", br#"[null,"x",3,[4]]"#, "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("1", None), ("2", Some(3.0))]);
    }

    #[test]
    fn name_value_objects() {
        // emoncms_mqtt.php `message`: an array with a `value` key unboxes; `name` is appended
        // with `_` only when PHP reads it as true, and a null value is skipped (a container
        // value would be a third level, past what json_decode(…, 3) reads: see below).
        let d = decode_mqtt(
            "emon/n",
            br#"{"a":{"name":"x","value":1},"b":{"name":"","value":2},"c":{"name":"0","value":3},"d":{"name":0,"value":4},"e":{"name":null,"value":5},"f":{"name":false,"value":6},"g":{"name":true,"value":7},"h":{"name":2,"value":8},"i":{"name":"y","value":null},"k":{"name":"w"},"l":{"value":"on"}}"#,
            "emon",
            NOW,
        )
        .expect("input");
        assert_eq!(
            vals(&d),
            vec![
                ("a_x", Some(1.0)),
                ("b", Some(2.0)),
                ("c", Some(3.0)),
                ("d", Some(4.0)),
                ("e", Some(5.0)),
                ("f", Some(6.0)),
                ("g_1", Some(7.0)),
                ("h_2", Some(8.0)),
                ("l", None)
            ]
        );
        // In a top-level list too.
        let d =
            decode_mqtt("emon/n/ct", br#"[{"name":"p","value":9}]"#, "emon", NOW).expect("input");
        assert_eq!(vals(&d), vec![("ct_0_p", Some(9.0))]);
        // A non-empty container as a name is a third level of containers: past json_decode's
        // depth, so the payload is text, read as CSV on the node topic.
        let d = decode_mqtt(
            "emon/n",
            br#"{"a":1,"b":{"name":["x"],"value":2}}"#,
            "emon",
            NOW,
        )
        .expect("input");
        assert_eq!(vals(&d), vec![("0", None), ("1", None), ("2", None)]);
    }

    #[test]
    fn json_deeper_than_two_containers_is_not_json() {
        // emoncms_mqtt.php `message` decodes with json_decode(…, true, 3), which fails past
        // two nested containers; such a payload is read as text: on the node topic, CSV named
        // from 0.
        for deep in [
            br#"{"a":{"value":{"b":{"c":1}}},"d":2}"#.as_slice(),
            br#"{"a":{"value":{"b":1}},"d":2}"#.as_slice(),
        ] {
            let d = decode_mqtt("emon/n", deep, "emon", NOW).expect("input");
            assert_eq!(d.time, NOW);
            assert_eq!(vals(&d), vec![("0", None), ("1", None)]);
        }
        let d = decode_mqtt(
            "emon/n",
            br#"{"a":{"name":"x","value":1},"d":2}"#,
            "emon",
            NOW,
        )
        .expect("two containers are JSON");
        assert_eq!(vals(&d), vec![("a_x", Some(1.0)), ("d", Some(2.0))]);
    }

    #[test]
    fn names_are_filtered() {
        // emoncms_mqtt.php `message` filters the node and each name with the same class
        // [^\p{N}\p{L}_\s\-.] (after removing `:` from the topic).
        let d = decode_mqtt("emon/my:node(1)/power[W]", b"5", "emon", NOW).expect("input");
        assert_eq!(
            (d.node.as_str(), vals(&d)),
            ("mynode1", vec![("powerW", Some(5.0))])
        );
        let d = decode_mqtt(
            "emon/n",
            r#"{"Temp °C":1,"Wärme+":2}"#.as_bytes(),
            "emon",
            NOW,
        )
        .expect("input");
        assert_eq!(vals(&d), vec![("Temp C", Some(1.0)), ("Wärme", Some(2.0))]);
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
