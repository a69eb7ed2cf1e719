//! The text rules every decoder shares: emoncms's name filter, PHP's number reading, and the
//! `time` parameter.

use chrono::{DateTime, FixedOffset};
use proptest::prelude::*;
use proptest::sample::select;

use super::{any_text, finite_f64, number_text, value_text};
use crate::decode::names::{filter_name, filter_node};
use crate::decode::numbers::{php_float_cast, php_numeric};
use crate::decode::time::{clamp_time, parse_time_param};

/// The range times are kept in.
const MAX_TIME: i64 = 1 << 33;

/// Text the `time` parameter is given: numbers, the date forms, near misses, anything.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        value_text(),
        any_text(32),
        select(vec![
            "now",
            "NOW",
            "@",
            "@1e999",
            "@-5",
            "2023-02-30",
            "2023-11-14 25:00:00",
            "2023-11-14T22:00:05+99:00",
            "9999999-01-01",
            "-2023-11-14",
            "2023/11/14 22:00:05",
            "2023-11-14 22:00",
            "1e999",
            "-1e999",
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// The filter keeps only allowed characters, so filtering twice changes nothing; a node
    /// is never empty.
    #[test]
    fn names_are_filtered_once_and_for_all(s in any_text(32)) {
        let name = filter_name(&s);
        prop_assert_eq!(filter_name(&name), name.clone());
        // Characters are removed, never changed or reordered.
        let mut rest = s.chars();
        prop_assert!(name.chars().all(|c| rest.any(|d| d == c)), "{:?} from {:?}", name, s);
        let node = filter_node(&s);
        prop_assert!(!node.is_empty());
        prop_assert_eq!(node, if name.is_empty() { "0".to_string() } else { name });
    }

    /// `is_numeric` text is read the same by the float cast (which only stops earlier on
    /// text that is not numeric), and never as NaN.
    #[test]
    fn php_numbers_agree(s in prop_oneof![number_text(), value_text(), any_text(16)]) {
        let cast = php_float_cast(&s);
        prop_assert!(!cast.is_nan(), "{:?}", s);
        if let Some(v) = php_numeric(&s) {
            prop_assert!(!v.is_nan(), "{:?}", s);
            prop_assert_eq!(v.to_bits(), cast.to_bits(), "{:?}", s);
        }
    }

    /// A finite float printed in any of Rust's notations, padded with PHP's whitespace, is
    /// read back to the same bits.
    #[test]
    fn printed_floats_read_back_exactly(
        f in finite_f64(),
        notation in 0..3,
        pad in select(vec!["", " ", "\t", "\n ", " \r\x0b\x0c"]),
    ) {
        let printed = match notation {
            0 => f.to_string(),
            1 => format!("{f:e}"),
            _ => format!("{f:E}"),
        };
        let text = format!("{pad}{printed}{pad}");
        prop_assert_eq!(php_numeric(&text).map(f64::to_bits), Some(f.to_bits()), "{:?}", text);
        prop_assert_eq!(php_float_cast(&text).to_bits(), f.to_bits(), "{:?}", text);
    }

    /// Whatever the text and the clock, a time stays within ±2^33 s.
    #[test]
    fn times_stay_in_range(s in time_text(), now in any::<i64>()) {
        let t = parse_time_param(&s, now);
        prop_assert!((-MAX_TIME..=MAX_TIME).contains(&t), "{:?} gave {}", s, t);
    }

    /// A time in range written as seconds, `@seconds`, a UTC date and time, or RFC 3339 with
    /// any whole-minute offset, reads back as itself; so does a UTC midnight as a date.
    #[test]
    fn time_forms_round_trip(
        t in -MAX_TIME..=MAX_TIME,
        offset_minutes in -(24 * 60 - 1)..(24 * 60),
        day in -(MAX_TIME / 86_400)..=(MAX_TIME / 86_400),
        now in any::<i64>(),
    ) {
        prop_assert_eq!(parse_time_param(&t.to_string(), now), t);
        prop_assert_eq!(parse_time_param(&format!("@{t}"), now), t);
        prop_assert_eq!(parse_time_param(&format!("{t}.75"), now), t);
        let utc = DateTime::from_timestamp(t, 0)
            .ok_or_else(|| TestCaseError::fail("in chrono's range"))?;
        let plain = utc.format("%Y-%m-%d %H:%M:%S").to_string();
        prop_assert_eq!(parse_time_param(&plain, now), t, "{}", plain);
        let zone = FixedOffset::east_opt(offset_minutes * 60)
            .ok_or_else(|| TestCaseError::fail("offset within a day"))?;
        let rfc3339 = utc.with_timezone(&zone).to_rfc3339();
        prop_assert_eq!(parse_time_param(&rfc3339, now), t, "{}", rfc3339);
        let midnight = DateTime::from_timestamp(day * 86_400, 0)
            .ok_or_else(|| TestCaseError::fail("in chrono's range"))?;
        let date = midnight.format("%Y-%m-%d").to_string();
        prop_assert_eq!(parse_time_param(&date, now), day * 86_400, "{}", date);
    }
}

/// Clamping keeps what is in range and is idempotent (a sanity check of the bound used above).
#[test]
fn clamping_is_idempotent() {
    for t in [
        i64::MIN,
        -MAX_TIME - 1,
        -MAX_TIME,
        0,
        MAX_TIME,
        MAX_TIME + 1,
        i64::MAX,
    ] {
        assert_eq!(clamp_time(clamp_time(t)), clamp_time(t));
        assert!((-MAX_TIME..=MAX_TIME).contains(&clamp_time(t)));
    }
}
