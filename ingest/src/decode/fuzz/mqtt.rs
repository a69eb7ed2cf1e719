//! MQTT messages: any topic, base and payload bytes, and well-formed topics with numeric, JSON
//! (plain, boxed `{"value": v}` and named `{"name": n, "value": v}`), array and CSV payloads
//! whose values must come back exactly.

use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::{NOW, any_text, assign, bits, check_batch, json_value, number_text, regex, value};
use crate::batch::{MAX_VALUES_PER_REQUEST, Value, finite};
use crate::decode::decode_mqtt;
use crate::decode::names::filter_name;
use crate::decode::numbers::php_numeric;
use crate::decode::time::clamp_time;

/// The topic base: lowercase only, so that it never occurs inside [`segment`]s.
fn base() -> impl Strategy<Value = String> {
    prop_oneof![Just("emon".to_string()), regex("[a-z]{1,6}")]
}

/// A node or input level of a topic: no lowercase letters (see [`base`]), nothing the name
/// filter removes.
fn segment() -> impl Strategy<Value = String> {
    regex("[A-Z0-9_][A-Z0-9_.-]{0,10}")
}

/// A base and a topic: anything, or levels under the base with odd ones among them (empty,
/// wildcards, `:` which emoncms removes, anything).
fn base_and_topic() -> impl Strategy<Value = (String, String)> {
    let level = prop_oneof![
        4 => segment(),
        1 => select(vec!["", "+", "#", ":", "a:b"]).prop_map(str::to_string),
        1 => any_text(6),
    ];
    prop_oneof![
        (prop_oneof![base(), any_text(4)], any_text(40)),
        (base(), proptest::collection::vec(level, 0..5)).prop_map(|(b, levels)| {
            let topic = format!("{b}/{}", levels.join("/"));
            (b, topic)
        }),
    ]
}

/// Payload bytes: anything (invalid UTF-8 included), numbers, CSV, JSON of any shape.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        number_text(),
        proptest::collection::vec(number_text(), 1..6).prop_map(|v| v.join(",")),
        regex("[\\[\\]{}:,\" a-z0-9.eE+-]{0,48}"),
        regex(
            "\\{(\"(time|Time|name|value|[a-z]{1,3})\":(-?[0-9]{1,12}|null|true|\"[a-z0-9 .:-]{0,10}\"|\\{\"name\":\"x\",\"value\":1\\}|\\[1\\]),?){0,6}\\}"
        ),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..96),
        text.prop_map(String::into_bytes),
    ]
}

/// How a JSON object payload carries a value.
#[derive(Debug, Clone)]
enum Boxing {
    /// `"key": v`
    Plain,
    /// `"key": {"value": v}`, read as `key`.
    Value,
    /// `"key": {"name": n, "value": v}`, read as `key_n`.
    Named(String),
}

fn boxing() -> impl Strategy<Value = Boxing> {
    prop_oneof![
        3 => Just(Boxing::Plain),
        1 => Just(Boxing::Value),
        1 => regex("[A-Za-z0-9]{1,4}").prop_map(Boxing::Named),
    ]
}

/// `<base>/<node>[/<prefix levels>]`
fn topic(base: &str, node: &str, prefix: &[String]) -> String {
    let mut topic = format!("{base}/{node}");
    for level in prefix {
        topic.push('/');
        topic.push_str(level);
    }
    topic
}

/// An input name under the topic's levels, as emoncms joins them.
fn under(prefix: &[String], key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{}_{key}", prefix.join("_"))
    }
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Any message: no panic; nothing outside `<base>/`; a batch that keeps every promise.
    #[test]
    fn any_message((base, topic) in base_and_topic(), payload in payload()) {
        let decoded = decode_mqtt(&topic, &payload, &base, NOW);
        let clean: String = topic.chars().filter(|&c| c != ':').collect();
        if !clean.contains(&format!("{base}/")) {
            prop_assert!(decoded.is_none(), "{:?} is not under {:?}", topic, base);
        }
        if let Some(d) = decoded {
            check_batch(&d)?;
        }
    }

    /// `:` anywhere in a topic is removed before it is read (emoncms's rule).
    #[test]
    fn colons_in_topics_are_ignored(
        base in base(),
        node in segment(),
        prefix in proptest::collection::vec(segment(), 0..3),
        payload in payload(),
        colons in proptest::collection::vec(any::<Index>(), 1..4),
    ) {
        let plain = topic(&base, &node, &prefix);
        let mut chars: Vec<char> = plain.chars().collect();
        for at in colons {
            let i = at.index(chars.len() + 1);
            chars.insert(i, ':');
        }
        let with_colons: String = chars.into_iter().collect();
        prop_assert_eq!(
            decode_mqtt(&with_colons, &payload, &base, NOW),
            decode_mqtt(&plain, &payload, &base, NOW)
        );
    }

    /// `<base>/<node>/<a>/<b>` with a number: one input `a_b` with that number; text that is
    /// not a number is a missing value.
    #[test]
    fn numeric_topics_round_trip(
        base in base(),
        node in segment(),
        names in proptest::collection::vec(segment(), 1..4),
        payload in prop_oneof![
            3 => value().prop_map(|v| v.map_or_else(|| "null".to_string(), |f| f.to_string())),
            2 => number_text(),
            1 => select(vec!["", "on", "abc", "1e999", " 7 ", "NaN"]).prop_map(str::to_string),
        ],
    ) {
        let d = decode_mqtt(&topic(&base, &node, &names), payload.as_bytes(), &base, NOW)
            .ok_or_else(|| TestCaseError::fail("not decoded"))?;
        check_batch(&d)?;
        prop_assert_eq!(&d.node, &node);
        prop_assert_eq!(d.time, NOW);
        let want = vec![(names.join("_"), finite(php_numeric(&payload)))];
        prop_assert_eq!(bits(&d.values), bits(&want));
    }

    /// A JSON object on `<base>/<node>[/<levels>]`: each key (boxed or not) with a non-null
    /// value is an input under the levels with its value; a `time` key sets the time and is
    /// not an input.
    #[test]
    fn json_objects_round_trip(
        base in base(),
        node in segment(),
        prefix in proptest::collection::vec(segment(), 0..3),
        entries in proptest::collection::btree_map(
            regex("k[A-Za-z0-9_]{0,8}"),
            (value(), boxing()),
            0..10,
        ),
        time in proptest::option::of(any::<i64>()),
    ) {
        let mut items = Vec::new();
        if let Some(t) = time {
            items.push(format!("\"time\":{t}"));
        }
        for (k, (v, boxing)) in &entries {
            let v = json_value(*v);
            items.push(match boxing {
                Boxing::Plain => format!("\"{k}\":{v}"),
                Boxing::Value => format!("\"{k}\":{{\"value\":{v}}}"),
                Boxing::Named(n) => format!("\"{k}\":{{\"name\":\"{n}\",\"value\":{v}}}"),
            });
        }
        let payload = format!("{{{}}}", items.join(","));
        let d = decode_mqtt(&topic(&base, &node, &prefix), payload.as_bytes(), &base, NOW)
            .ok_or_else(|| TestCaseError::fail("not decoded"))?;
        check_batch(&d)?;
        prop_assert_eq!(d.time, time.map_or(NOW, clamp_time), "{}", payload);
        let mut want = Vec::new();
        for (k, (v, boxing)) in &entries {
            // A null is not a PHP scalar: no input, boxed or not.
            if v.is_none() {
                continue;
            }
            let key = match boxing {
                Boxing::Plain | Boxing::Value => k.clone(),
                // A name PHP reads as false is not appended.
                Boxing::Named(n) if n == "0" => k.clone(),
                Boxing::Named(n) => format!("{k}_{n}"),
            };
            assign(&mut want, filter_name(&under(&prefix, &key)), *v);
        }
        prop_assert_eq!(bits(&d.values), bits(&want), "{}", payload);
    }

    /// A JSON array: inputs `0`, `1`, … (under the levels) with its non-null values.
    #[test]
    fn json_arrays_round_trip(
        base in base(),
        node in segment(),
        prefix in proptest::collection::vec(segment(), 0..3),
        values in proptest::collection::vec(value(), 0..12),
    ) {
        let items: Vec<String> = values.iter().map(|v| json_value(*v)).collect();
        let payload = format!("[{}]", items.join(","));
        let d = decode_mqtt(&topic(&base, &node, &prefix), payload.as_bytes(), &base, NOW)
            .ok_or_else(|| TestCaseError::fail("not decoded"))?;
        check_batch(&d)?;
        // A null item makes no input, but still takes its index.
        let want: Vec<(String, Value)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_some())
            .map(|(i, v)| (under(&prefix, &i.to_string()), *v))
            .collect();
        prop_assert_eq!(bits(&d.values), bits(&want), "{}", payload);
    }

    /// CSV on the node topic: inputs `0`, `1`, … each with PHP's reading of its item.
    #[test]
    fn csv_on_the_node_topic_round_trips(
        base in base(),
        node in segment(),
        items in proptest::collection::vec(
            prop_oneof![
                3 => value().prop_map(|v| v.map_or_else(|| "null".to_string(), |f| f.to_string())),
                1 => select(vec!["", "on", "1e999", " 7 "]).prop_map(str::to_string),
            ],
            1..20,
        ),
    ) {
        let payload = items.join(",");
        let d = decode_mqtt(&format!("{base}/{node}"), payload.as_bytes(), &base, NOW)
            .ok_or_else(|| TestCaseError::fail("not decoded"))?;
        check_batch(&d)?;
        let want: Vec<(String, Value)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| (i.to_string(), finite(php_numeric(item))))
            .collect();
        prop_assert_eq!(bits(&d.values), bits(&want), "{}", payload);
    }
}

proptest! {
    // Each case builds and decodes some 50,000 values.
    #![proptest_config(crate::proptest_config(6))]

    /// A message at the cap is decoded whole, in every payload form; one value more and it is
    /// ignored (MQTT has no reply to refuse it with).
    #[test]
    fn the_value_cap_holds_in_every_payload_form(
        form in select(vec!["csv", "array", "object"]),
        over in any::<bool>(),
    ) {
        let n = MAX_VALUES_PER_REQUEST + usize::from(over);
        let payload = match form {
            "csv" => vec!["1"; n].join(","),
            "array" => format!("[{}]", vec!["1"; n].join(",")),
            _ => {
                let items: Vec<String> = (0..n).map(|i| format!("\"k{i}\":1")).collect();
                format!("{{{}}}", items.join(","))
            }
        };
        let d = decode_mqtt("emon/N", payload.as_bytes(), "emon", NOW);
        if over {
            prop_assert!(d.is_none());
        } else {
            let d = d.ok_or_else(|| TestCaseError::fail("not decoded"))?;
            prop_assert_eq!(d.values.len(), n);
        }
    }
}
