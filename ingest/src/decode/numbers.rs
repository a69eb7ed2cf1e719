//! PHP's number rules, which decide what emoncms accepts as a value.

const WS: [char; 6] = [' ', '\t', '\n', '\r', '\x0b', '\x0c'];

/// Length of the longest PHP-numeric prefix of `b` (sign, digits with an optional fraction or
/// a fraction alone, an optional exponent); 0 when there is none. One pass.
fn numeric_prefix_len(b: &[u8]) -> usize {
    let digits_from = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits_from(i);
    let mut digits = int_end - i;
    i = int_end;
    if b.get(i) == Some(&b'.') {
        let frac_end = digits_from(i + 1);
        digits += frac_end - i - 1;
        if digits > 0 {
            i = frac_end;
        }
    }
    if digits == 0 {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exp_end = digits_from(i + 1 + sign);
        if exp_end > i + 1 + sign {
            i = exp_end;
        }
    }
    i
}

/// PHP's `is_numeric` for a string: an optional surrounding of whitespace around a numeric
/// literal as [`numeric_prefix_len`] reads it. No hex, no `inf`/`nan`.
pub fn php_numeric(s: &str) -> Option<f64> {
    let t = s.trim_matches(WS);
    let n = numeric_prefix_len(t.as_bytes());
    if n == 0 || n != t.len() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// PHP's `(float)` cast of a string: the longest numeric prefix, or 0.
pub fn php_float_cast(s: &str) -> f64 {
    let t = s.trim_start_matches(WS);
    let n = numeric_prefix_len(t.as_bytes());
    t[..n].parse::<f64>().unwrap_or(0.0)
}

/// PHP's `(int)` cast of a string, which emoncms applies to ids and engine numbers: leading
/// white space skipped, the numeric prefix read as [`php_float_cast`] reads it (`12abc` is 12,
/// `5.9` is 5, `1e3` is 1000), 0 without one. An integer prefix beyond the 64-bit range
/// saturates and an infinite float is 0, as PHP's cast does.
pub fn php_int_cast(s: &str) -> i64 {
    let t = s.trim_start_matches(WS);
    let number = &t[..numeric_prefix_len(t.as_bytes())];
    if number
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
    {
        if number.bytes().any(|b| b.is_ascii_digit()) {
            let saturated = if number.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            };
            // The digits were checked, so only an overflow fails to parse.
            number.parse::<i64>().unwrap_or(saturated)
        } else {
            0
        }
    } else {
        let v = number.parse::<f64>().unwrap_or(0.0);
        if v.is_finite() { v as i64 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_cast_reads_the_numeric_prefix_as_php_casts_it() {
        for (text, want) in [
            ("5", 5),
            (" 5", 5),
            ("\t\n5 ", 5),
            ("+5", 5),
            ("-3", -3),
            ("-0", 0),
            ("5abc", 5),
            ("5.9", 5),
            ("-5.9", -5),
            (".5", 0),
            ("5.", 5),
            ("1e3", 1000),
            ("1.5e1x", 15),
            ("5e", 5),
            ("5e+", 5),
            ("PHPFINA", 0),
            ("", 0),
            (".", 0),
            ("+", 0),
            ("0x1A", 0),
            ("99999999999999999999", i64::MAX),
            ("-99999999999999999999", i64::MIN),
            ("1e400", 0),
            ("\u{e9}5", 0),
        ] {
            assert_eq!(php_int_cast(text), want, "{text:?}");
        }
    }

    #[test]
    fn is_numeric() {
        for ok in ["1", "-1.5", " 12", "12 ", ".5", "5.", "1e3", "+2E-2", "0"] {
            assert!(php_numeric(ok).is_some(), "{ok:?}");
        }
        for bad in [
            "", "abc", "0x1A", "inf", "NaN", "1e", "1.2.3", "--1", ".", "1 2",
        ] {
            assert!(php_numeric(bad).is_none(), "{bad:?}");
        }
        assert_eq!(php_numeric("12.5"), Some(12.5));
    }

    #[test]
    fn float_cast() {
        assert_eq!(php_float_cast("12abc"), 12.0);
        assert_eq!(php_float_cast("abc"), 0.0);
        assert_eq!(php_float_cast(" -3.5kW"), -3.5);
        assert_eq!(php_float_cast("1e3x"), 1000.0);
        assert_eq!(php_float_cast("5."), 5.0);
        assert_eq!(php_float_cast(".5e"), 0.5);
        assert_eq!(php_float_cast("-"), 0.0);
        // Linear, not quadratic: a long numeric prefix is cheap.
        let long = "1".repeat(1_000_000) + "x";
        assert!(php_float_cast(&long) > 1e300);
    }
}
