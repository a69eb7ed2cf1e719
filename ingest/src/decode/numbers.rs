//! PHP's number rules, which decide what emoncms accepts as a value.

/// PHP's `is_numeric` for a string: optional leading whitespace, sign, digits with an optional
/// fraction (or a fraction alone), an optional exponent, optional trailing whitespace. No
/// hex, no `inf`/`nan`.
pub fn php_numeric(s: &str) -> Option<f64> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
    let t = s.trim_start_matches(ws).trim_end_matches(ws);
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let e = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == e {
            return None;
        }
        i = j;
    }
    if i != b.len() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// PHP's `(float)` cast of a string: the longest numeric prefix, or 0. One pass over the text.
pub fn php_float_cast(s: &str) -> f64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - digits_start;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        digits += j - i - 1;
        if digits > 0 {
            i = j;
        }
    }
    if digits == 0 {
        return 0.0;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let e = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > e {
            i = j;
        }
    }
    t[..i].parse::<f64>().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
