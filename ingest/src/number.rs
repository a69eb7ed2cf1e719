//! Feed and input values as emoncms's JSON prints them, for every reply and message that
//! carries one (the HTTP API, `ynni/feed/<id>`, Home Assistant discovery).

use serde_json::Value;

/// 2^53: below it every whole `f64` is an integer that any JSON reader (JavaScript's numbers
/// are `f64` too) reads back unchanged; from it on, `f64`s skip integers and PHP prints an
/// exponent.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// A value as emoncms's `json_encode` gives it to clients: a whole number has no `.0`
/// (emoncms sends `102`, not `102.0`); a missing or non-finite value is `null`; any other is
/// the shortest decimal that reads back as the same `f64`.
pub fn php_json(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < EXACT => Value::from(x as i64),
        // `Value::from` turns NaN and the infinities into `null`.
        Some(x) => Value::from(x),
        None => Value::Null,
    }
}

/// Appends the text of [`php_json`]`(v)` to `out` without building a `Value` (a graph writes
/// thousands of them per reply). `zmij` is the crate serde_json writes floats with, so the
/// text is the same (a property test below holds them together).
pub fn write_php_json(out: &mut String, v: Option<f64>) {
    out.push_str(value_text(
        v,
        &mut itoa::Buffer::new(),
        &mut zmij::Buffer::new(),
    ));
}

/// The text of [`php_json`]`(v)`, formatted in `whole` or `fraction`.
#[inline]
fn value_text<'a>(
    v: Option<f64>,
    whole: &'a mut itoa::Buffer,
    fraction: &'a mut zmij::Buffer,
) -> &'a str {
    match v {
        // `(x as i64) as f64 == x` rather than `x.fract() == 0.0`: the same for these
        // values, without a call to libm's `trunc` per value (1% of a graph's time).
        Some(x) if x.abs() < EXACT && (x as i64) as f64 == x => whole.format(x as i64),
        Some(x) if x.is_finite() => fraction.format_finite(x),
        _ => "null",
    }
}

/// Appends `n` as JSON writes it.
pub fn write_i64(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends `[time,value]` for each pair, separated by commas, each time multiplied by `scale`
/// and each value as [`write_php_json`] writes it.
///
/// Each pair's text is formatted one pair ahead of being appended, in two sets of buffers
/// used in turn. Appending text just formatted copies it with wide loads that cannot take the
/// bytes from the narrower stores that wrote them (the CPU waits until those reach its cache);
/// a pair later they are there. For a graph's thousand points that wait was a third of the
/// time of writing the reply.
pub fn write_pairs(out: &mut String, pairs: &[(i64, Option<f64>)], scale: i64) {
    let (mut a, mut b) = (Texts::default(), Texts::default());
    let mut rest = pairs.iter();
    let Some(&(t, v)) = rest.next() else {
        return;
    };
    let mut held = a.format(t.saturating_mul(scale), v);
    loop {
        let Some(&(t, v)) = rest.next() else {
            append_pair(out, held);
            return;
        };
        let next = b.format(t.saturating_mul(scale), v);
        append_pair(out, held);
        out.push(',');
        let Some(&(t, v)) = rest.next() else {
            append_pair(out, next);
            return;
        };
        held = a.format(t.saturating_mul(scale), v);
        append_pair(out, next);
        out.push(',');
    }
}

fn append_pair(out: &mut String, (time, value): (&str, &str)) {
    out.push('[');
    out.push_str(time);
    out.push(',');
    out.push_str(value);
    out.push(']');
}

/// Buffers for one pair's text.
#[derive(Default)]
struct Texts {
    time: itoa::Buffer,
    whole: itoa::Buffer,
    value: zmij::Buffer,
}

impl Texts {
    fn format(&mut self, time: i64, v: Option<f64>) -> (&str, &str) {
        let value = value_text(v, &mut self.whole, &mut self.value);
        (self.time.format(time), value)
    }
}

#[cfg(test)]
mod tests {
    use super::{php_json, write_i64, write_pairs, write_php_json};
    use proptest::prelude::*;
    use serde_json::json;

    fn written(v: Option<f64>) -> String {
        let mut out = String::new();
        write_php_json(&mut out, v);
        out
    }

    #[test]
    fn written_text_is_the_values_text() {
        for v in [
            None,
            Some(0.0),
            Some(-0.0),
            Some(102.0),
            Some(-3.25),
            Some(0.1),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(9_007_199_254_740_991.0),
            Some(9_007_199_254_740_992.0),
            Some(-1e20),
            Some(f64::MIN_POSITIVE),
            Some(-2.225_073_858_507_201_4e-308),
            Some(f64::MAX),
        ] {
            assert_eq!(written(v), php_json(v).to_string(), "{v:?}");
        }
        let mut out = String::new();
        write_i64(&mut out, i64::MIN);
        assert_eq!(out, i64::MIN.to_string());
    }

    /// Pairs are written as one point at a time writes them, whatever their number (the
    /// writer works two at a time).
    #[test]
    fn pairs_are_written_as_single_points() {
        let values = [
            Some(1.5),
            None,
            Some(102.0),
            Some(-0.1),
            Some(f64::NAN),
            Some(1e20),
            Some(-3.0),
        ];
        for n in 0..=values.len() {
            let pairs: Vec<(i64, Option<f64>)> = values[..n]
                .iter()
                .enumerate()
                .map(|(k, &v)| (1_700_000_000 + 10 * k as i64, v))
                .collect();
            for scale in [1, 1000] {
                let mut want = String::new();
                for (k, &(t, v)) in pairs.iter().enumerate() {
                    if k > 0 {
                        want.push(',');
                    }
                    want.push('[');
                    write_i64(&mut want, t * scale);
                    want.push(',');
                    write_php_json(&mut want, v);
                    want.push(']');
                }
                let mut got = String::new();
                write_pairs(&mut got, &pairs, scale);
                assert_eq!(got, want, "{n} pairs");
            }
        }
    }

    proptest! {
        #[test]
        fn pairs_of_any_values_are_written_as_single_points(
            bits in prop::collection::vec(any::<u64>(), 0..9),
            t0 in -4_000_000_000i64..4_000_000_000,
        ) {
            let pairs: Vec<(i64, Option<f64>)> = bits
                .iter()
                .enumerate()
                .map(|(k, &b)| (t0 + 10 * k as i64, (b % 5 != 0).then(|| f64::from_bits(b))))
                .collect();
            let mut want = String::new();
            for (k, &(t, v)) in pairs.iter().enumerate() {
                if k > 0 {
                    want.push(',');
                }
                want.push('[');
                write_i64(&mut want, t * 1000);
                want.push(',');
                want.push_str(&php_json(v).to_string());
                want.push(']');
            }
            let mut got = String::new();
            write_pairs(&mut got, &pairs, 1000);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn written_text_matches_serde_json(bits in any::<u64>(), small in -1e7f64..1e7) {
            let v = f64::from_bits(bits);
            prop_assert_eq!(written(Some(v)), php_json(Some(v)).to_string());
            prop_assert_eq!(written(Some(small)), php_json(Some(small)).to_string());
            let rounded = (small * 100.0).round() / 100.0;
            prop_assert_eq!(written(Some(rounded)), php_json(Some(rounded)).to_string());
        }
    }

    fn text(v: f64) -> String {
        php_json(Some(v)).to_string()
    }

    #[test]
    fn whole_numbers_print_without_a_fraction() {
        assert_eq!(text(102.0), "102");
        assert_eq!(text(-7.0), "-7");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(-0.0), "0");
        assert_eq!(text(1_795_829_324.0), "1795829324");
    }

    #[test]
    fn fractions_print_as_the_shortest_decimal() {
        assert_eq!(text(-3.25), "-3.25");
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(0.0001), "0.0001");
        assert_eq!(text(240.1), "240.1");
    }

    #[test]
    fn missing_and_non_finite_values_are_null() {
        assert_eq!(php_json(None), json!(null));
        assert_eq!(php_json(Some(f64::NAN)), json!(null));
        assert_eq!(php_json(Some(f64::INFINITY)), json!(null));
        assert_eq!(php_json(Some(f64::NEG_INFINITY)), json!(null));
    }

    #[test]
    fn whole_numbers_are_integers_below_2_pow_53() {
        // The MQTT side used to switch to floats at 9e15; these stay exact integers now.
        assert_eq!(text(9.0e15), "9000000000000000");
        assert_eq!(text(9_007_199_254_740_991.0), "9007199254740991");
        assert_eq!(text(-9_007_199_254_740_991.0), "-9007199254740991");
        // From 2^53 on, a float as serde_json prints it.
        let big = php_json(Some(9_007_199_254_740_992.0));
        assert!(big.is_f64(), "{big}");
        assert_eq!(big, json!(9_007_199_254_740_992.0));
        assert_eq!(text(1e20), json!(1e20).to_string());
        assert!(php_json(Some(-1e20)).is_f64());
    }
}
