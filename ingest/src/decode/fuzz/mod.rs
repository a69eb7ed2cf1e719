//! Property tests of the decoders: the fuzz targets for `input/post`, `input/bulk`, MQTT
//! messages and the budgeted JSON parser, run as ordinary unit tests with a bounded number of
//! cases (`PROPTEST_CASES` raises it for a longer run; see [`crate::proptest_config`]).
//!
//! Each decoder is fed arbitrary text or bytes, and text shaped like what devices send, and
//! must then:
//! - never panic;
//! - answer only with the errors it documents;
//! - never build more than [`MAX_VALUES_PER_REQUEST`] values (the cap the shard router's
//!   `Limits::values_per_request` also holds submissions to);
//! - produce only what a batch promises ([`check_batch`]): finite or missing values, names
//!   and nodes that passed emoncms's filter, times within [`clamp_time`]'s range;
//! - give back, for well-formed input, exactly the values that were sent.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::string::{RegexGeneratorStrategy, string_regex};
use proptest::test_runner::TestCaseError;
use serde_json::Value as Json;

use super::names::filter_name;
use super::time::clamp_time;
use crate::batch::{Decoded, MAX_VALUES_PER_REQUEST, Value};

mod bulk;
mod json;
mod mqtt;
mod post;
mod text;

/// The server time the decoders are given (within the clamped range, as a real clock is).
const NOW: i64 = 1_795_829_388;

/// A strategy for the strings matching `pattern` (a regular expression of this file's own).
fn regex(pattern: &str) -> RegexGeneratorStrategy<String> {
    string_regex(pattern).expect("the test's own pattern is valid")
}

/// Any text of up to `max` characters: control characters, odd whitespace and all of Unicode.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..=max)
        .prop_map(|c| c.into_iter().collect::<String>())
}

/// Any finite float: every bit pattern but infinities and NaNs (so subnormals, `-0.0` and
/// the extremes), and the plain readings devices send.
fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |f| f.is_finite()),
        (-10_000_000i64..10_000_000).prop_map(|i| i as f64 / 100.0),
    ]
}

/// A finite value or a missing one.
fn value() -> impl Strategy<Value = Value> {
    proptest::option::weighted(0.9, finite_f64())
}

/// Text PHP's `is_numeric` accepts, in the notations devices and libraries print.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        finite_f64().prop_map(|f| f.to_string()),
        finite_f64().prop_map(|f| format!("{f:e}")),
        finite_f64().prop_map(|f| format!("{f:E}")),
        regex("[+-]?[0-9]{1,20}(\\.[0-9]{0,6})?([eE][+-]?[0-9]{1,3})?"),
        regex("[+-]?\\.[0-9]{1,6}"),
    ]
}

/// What devices put where a value goes: numbers in every notation, `null`, and text PHP does
/// not read as a number.
fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => number_text(),
        1 => Just("null".to_string()),
        1 => select(vec![
            "", " ", "on", "abc", "0x1A", "inf", "-INF", "NaN", "1e", "1.2.3", "--1", ".",
            "1e999", "-1E400", " 12 ", "\t5\n", "12abc",
        ])
        .prop_map(str::to_string),
        1 => any_text(8),
    ]
}

/// Node and input names: mostly what devices use, sometimes characters emoncms removes.
fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => regex("[A-Za-z0-9_.-]{1,12}"),
        1 => any_text(12),
    ]
}

/// `s` as a JSON string, escaped as JSON requires.
fn quoted(s: &str) -> String {
    Json::String(s.to_string()).to_string()
}

/// `v` as JSON: a number (printed back to the same bits) or `null`.
fn json_value(v: Value) -> String {
    v.map_or_else(|| "null".to_string(), |f| Json::from(f).to_string())
}

/// A PHP array assignment: a new name is appended, a repeated one keeps its place and takes
/// the new value (what [`Decoded`]'s values promise).
fn assign(values: &mut Vec<(String, Value)>, name: String, value: Value) {
    match values.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => values.push((name, value)),
    }
}

/// Named values with their bits (see [`bits`]).
type Bits = Vec<(String, Option<u64>)>;

/// Values with their bits, so that `-0.0` and `0.0` differ in comparisons.
fn bits(values: &[(String, Value)]) -> Bits {
    values
        .iter()
        .map(|(n, v)| (n.clone(), v.map(f64::to_bits)))
        .collect()
}

/// What every decoded batch promises, whatever the input.
fn check_batch(d: &Decoded) -> Result<(), TestCaseError> {
    prop_assert!(!d.node.is_empty(), "empty node");
    prop_assert_eq!(&filter_name(&d.node), &d.node, "node not filtered");
    prop_assert_eq!(clamp_time(d.time), d.time, "time out of range");
    prop_assert!(d.values.len() <= MAX_VALUES_PER_REQUEST);
    let mut seen = HashSet::new();
    for (name, value) in &d.values {
        prop_assert_eq!(&filter_name(name), name, "name not filtered");
        prop_assert!(seen.insert(name.as_str()), "name {:?} repeated", name);
        prop_assert!(
            value.is_none_or(f64::is_finite),
            "{:?} is {:?}, not finite or missing",
            name,
            value
        );
    }
    Ok(())
}
