//! PHP's arithmetic and comparisons with a missing value, which the processes inherit from
//! emoncms: a missing value is PHP's `null`, and `null` compares as `false`.

use std::cmp::Ordering;

use crate::batch::Value;

/// PHP's loose comparison of a value with the literal number `b`: a missing value compares as
/// `false` (so it equals 0 and is below any non-zero number).
pub(super) fn loose_cmp(a: Value, b: f64) -> Ordering {
    match a {
        Some(x) => x.partial_cmp(&b).unwrap_or(Ordering::Equal),
        None => false.cmp(&(b != 0.0)),
    }
}

/// PHP 8's comparison of a value with a user argument, which arrives as a numeric *string*: a
/// missing value compares as `""`, below every argument and equal to none.
pub(super) fn arg_cmp(a: Value, b: f64) -> Ordering {
    match a {
        Some(x) => x.partial_cmp(&b).unwrap_or(Ordering::Equal),
        None => Ordering::Less,
    }
}

/// PHP's loose `a > b` for two nullable numbers: null compares as `false`, a number as
/// `!= 0` when the other side is null.
pub(super) fn loose_gt(a: Value, b: Value) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x > y,
        (Some(x), None) => x != 0.0,
        (None, _) => false,
    }
}

/// Arithmetic on two nullable numbers: missing if either is, or if the result is not finite.
pub(super) fn map2(a: Value, b: Value, f: impl Fn(f64, f64) -> f64) -> Value {
    Some(f(a?, b?)).filter(|v| v.is_finite())
}
