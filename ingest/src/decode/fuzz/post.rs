//! `input/post` with any parameters, and with well-formed `csv`, legacy `json` and `fulljson`
//! data whose values must come back exactly.

use proptest::prelude::*;
use proptest::sample::select;

use super::{
    NOW, any_text, assign, bits, check_batch, json_value, name_text, quoted, regex, value,
    value_text,
};
use crate::batch::{MAX_VALUES_PER_REQUEST, Value};
use crate::decode::names::{filter_name, filter_node};
use crate::decode::time::{clamp_time, parse_time_param};
use crate::decode::{DecodeError, PostParams, decode_post};

/// Data in the shape of one of the forms, or anything.
fn data_text() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        value_text(),
        (name_text(), value_text()).prop_map(|(n, v)| format!("{n}:{v}")),
        (name_text(), value_text()).prop_map(|(n, v)| format!("{}:{v}", quoted(&n))),
    ];
    prop_oneof![
        any_text(48),
        proptest::collection::vec(item, 0..12).prop_map(|items| items.join(",")),
        proptest::collection::vec((name_text(), value_text()), 0..8).prop_map(|pairs| {
            let body: Vec<String> = pairs
                .iter()
                .map(|(n, v)| format!("{}:{v}", quoted(n)))
                .collect();
            format!("{{{}}}", body.join(","))
        }),
        regex("[\\[\\]{}:,\" a-z0-9.eE+-]{0,40}"),
    ]
}

fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        value_text(),
        select(vec![
            "now",
            "@1699999200",
            "2023-11-14 22:00:05",
            "2023-11-14T23:00:05+01:00",
            "2023-11-14",
        ])
        .prop_map(str::to_string),
        any_text(24),
    ]
}

/// The errors `input/post` documents.
fn is_post_error(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::NoData
            | DecodeError::InvalidFullJson
            | DecodeError::JsonValueNotNumeric
            | DecodeError::JsonKeyMissing
            | DecodeError::CsvValueNotNumeric
    ) || *e
        == DecodeError::TooManyValues {
            limit: MAX_VALUES_PER_REQUEST,
        }
}

/// A value as text the way devices print it: shortest form, exponent form, or `null`.
fn value_as_text(v: Value, exponent: bool) -> String {
    match v {
        None => "null".to_string(),
        Some(f) if exponent => format!("{f:e}"),
        Some(f) => f.to_string(),
    }
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Any combination of parameters: no panic, only `input/post`'s errors, and a batch that
    /// keeps every promise. The node and the `time` parameter are read as documented.
    #[test]
    fn any_parameters(
        path_node in proptest::option::of(name_text()),
        node in proptest::option::of(name_text()),
        time in proptest::option::of(time_text()),
        json in proptest::option::of(data_text()),
        fulljson in proptest::option::of(data_text()),
        csv in proptest::option::of(data_text()),
        data in proptest::option::of(data_text()),
    ) {
        let p = PostParams {
            path_node: path_node.as_deref(),
            node: node.as_deref(),
            time: time.as_deref(),
            json: json.as_deref(),
            fulljson: fulljson.as_deref(),
            csv: csv.as_deref(),
            data: data.as_deref(),
        };
        let datain = p.json.or(p.fulljson).or(p.csv).or(p.data).unwrap_or("");
        match decode_post(&p, NOW) {
            Ok(d) => {
                check_batch(&d)?;
                prop_assert!(!datain.is_empty());
                prop_assert_eq!(&d.node, &filter_node(p.path_node.or(p.node).unwrap_or("")));
                if let Some(t) = p.time {
                    prop_assert_eq!(d.time, parse_time_param(t, NOW));
                }
            }
            Err(e) => {
                prop_assert!(is_post_error(&e), "undocumented error {:?}", e);
                prop_assert_eq!(e == DecodeError::NoData, datain.is_empty());
            }
        }
    }

    /// `csv=v1,v2,…` gives inputs `1`, `2`, … with the very values printed.
    #[test]
    fn csv_round_trips(
        values in proptest::collection::vec(value(), 1..40),
        exponent in any::<bool>(),
        node in proptest::option::of(regex("[A-Za-z0-9_]{1,8}")),
    ) {
        let csv: Vec<String> = values.iter().map(|v| value_as_text(*v, exponent)).collect();
        let csv = csv.join(",");
        let d = decode_post(
            &PostParams { csv: Some(&csv), node: node.as_deref(), ..Default::default() },
            NOW,
        );
        let d = d.map_err(|e| TestCaseError::fail(format!("{csv}: {e}")))?;
        check_batch(&d)?;
        let want: Vec<(String, Value)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + 1).to_string(), *v))
            .collect();
        prop_assert_eq!(bits(&d.values), bits(&want), "{}", csv);
        prop_assert_eq!(d.time, NOW);
        prop_assert_eq!(d.node, node.unwrap_or_else(|| "0".to_string()));
    }

    /// The legacy `json={a:1,b:2}` form, with or without braces and quotes: each name gets
    /// its value; a repeated name keeps its first place and its last value.
    #[test]
    fn legacy_json_round_trips(
        pairs in proptest::collection::vec(
            (regex("[A-Za-z_][A-Za-z0-9_.-]{0,10}"), value()),
            1..20,
        ),
        braces in any::<bool>(),
        quotes in any::<bool>(),
        exponent in any::<bool>(),
    ) {
        let q = if quotes { "\"" } else { "" };
        let items: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{q}{n}{q}:{}", value_as_text(*v, exponent)))
            .collect();
        let mut text = items.join(",");
        if braces {
            text = format!("{{{text}}}");
        }
        let d = decode_post(&PostParams { json: Some(&text), ..Default::default() }, NOW)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        check_batch(&d)?;
        let mut want = Vec::new();
        for (n, v) in &pairs {
            assign(&mut want, n.clone(), *v);
        }
        prop_assert_eq!(bits(&d.values), bits(&want), "{}", text);
    }

    /// `fulljson`: any keys (filtered, repeated, `time` in any case) with numbers or `null`.
    /// A key named `time` in any case sets the time when no parameter does; only the
    /// lowercase one is not an input.
    #[test]
    fn fulljson_round_trips(
        pairs in proptest::collection::vec(
            (
                prop_oneof![
                    select(vec!["a", "b", "a!", "time", "Time", "TIME"]).prop_map(str::to_string),
                    any_text(6),
                ],
                value(),
            ),
            0..20,
        ),
        time in proptest::option::of(any::<i64>()),
    ) {
        let time_param = time.map(|t| t.to_string());
        let items: Vec<String> =
            pairs.iter().map(|(k, v)| format!("{}:{}", quoted(k), json_value(*v))).collect();
        let text = format!("{{{}}}", items.join(","));
        let d = decode_post(
            &PostParams {
                fulljson: Some(&text),
                time: time_param.as_deref(),
                ..Default::default()
            },
            NOW,
        )
        .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        check_batch(&d)?;

        // JSON first merges repeated keys (first place, last value) ...
        let mut object: Vec<(String, Value)> = Vec::new();
        for (k, v) in &pairs {
            assign(&mut object, k.clone(), *v);
        }
        let want_time = match time {
            Some(t) => clamp_time(t),
            // PHP's `array_change_key_case`: the last of the keys equal but for case wins.
            None => match object.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case("time")) {
                Some((_, Some(t))) => clamp_time(t.trunc() as i64),
                _ => NOW,
            },
        };
        // ... then names are filtered, and names that become equal merge the same way.
        let mut want = Vec::new();
        for (k, v) in object.into_iter().filter(|(k, _)| k != "time") {
            assign(&mut want, filter_name(&k), v);
        }
        prop_assert_eq!(d.time, want_time, "{}", text);
        prop_assert_eq!(bits(&d.values), bits(&want), "{}", text);
    }

    /// A nested container is refused as a whole, wherever it is.
    #[test]
    fn fulljson_refuses_nesting(
        before in proptest::collection::vec(value(), 0..5),
        nested in select(vec!["[]", "{}", "[1]", "{\"x\":1}"]),
        after in proptest::collection::vec(value(), 0..5),
        array in any::<bool>(),
    ) {
        let mut items: Vec<String> = before.iter().map(|v| json_value(*v)).collect();
        items.push(nested.to_string());
        items.extend(after.iter().map(|v| json_value(*v)));
        let text = if array {
            format!("[{}]", items.join(","))
        } else {
            let entries: Vec<String> =
                items.iter().enumerate().map(|(i, v)| format!("\"k{i}\":{v}")).collect();
            format!("{{{}}}", entries.join(","))
        };
        prop_assert_eq!(
            decode_post(&PostParams { fulljson: Some(&text), ..Default::default() }, NOW),
            Err(DecodeError::InvalidFullJson)
        );
    }
}

proptest! {
    // Each case builds and decodes some 50,000 values.
    #![proptest_config(crate::proptest_config(8))]

    /// At the cap every form is accepted whole; one value more and it is refused whole
    /// (`TooManyValues`), in every form.
    #[test]
    fn the_value_cap_holds_in_every_form(
        form in select(vec!["csv", "json", "fulljson"]),
        n in (MAX_VALUES_PER_REQUEST - 1)..=(MAX_VALUES_PER_REQUEST + 1),
    ) {
        let text = match form {
            "csv" => vec!["1"; n].join(","),
            "json" => {
                let items: Vec<String> = (0..n).map(|i| format!("k{i}:1")).collect();
                format!("{{{}}}", items.join(","))
            }
            _ => {
                let items: Vec<String> = (0..n).map(|i| format!("\"k{i}\":1")).collect();
                format!("{{{}}}", items.join(","))
            }
        };
        let p = match form {
            "csv" => PostParams { csv: Some(&text), ..Default::default() },
            "json" => PostParams { json: Some(&text), ..Default::default() },
            _ => PostParams { fulljson: Some(&text), ..Default::default() },
        };
        match decode_post(&p, NOW) {
            Ok(d) => {
                prop_assert!(n <= MAX_VALUES_PER_REQUEST, "{} values accepted", n);
                prop_assert_eq!(d.values.len(), n);
            }
            Err(e) => {
                prop_assert!(n > MAX_VALUES_PER_REQUEST, "{} values refused: {}", n, e);
                prop_assert_eq!(e, DecodeError::TooManyValues { limit: MAX_VALUES_PER_REQUEST });
            }
        }
    }
}
