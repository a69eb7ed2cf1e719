//! The `time` parameter of `input/post` and `input/bulk`.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::numbers::php_numeric;

/// A numeric value is taken as unix seconds, truncated (milliseconds are *not* converted, as in
/// emoncms). Otherwise the date forms PHP's `strtotime` is given in practice are read
/// (`2023-11-14 22:00:05`, ISO 8601 / RFC 3339 with offset, `2023-11-14`, `now`, `@1699999200`,
/// `-1 hour`, `01-12-2021`), in UTC unless an offset is given; anything else means `now`, as
/// emoncms falls back.
pub fn parse_time_param(s: &str, now: i64) -> i64 {
    clamp_time(parse_unclamped(s.trim(), now))
}

/// Times are kept within ±2^33 s (years 1697–2242), like the storage queries, so no later
/// arithmetic on them can overflow.
pub fn clamp_time(t: i64) -> i64 {
    t.clamp(-(1 << 33), 1 << 33)
}

/// Like [`parse_time_param`], but `None` where emoncms's `strtotime` gives false (the caller
/// decides what that means: MQTT keeps such a `time` key as an input).
pub fn parse_time_checked(s: &str, now: i64) -> Option<i64> {
    parse_checked(s.trim(), now).map(clamp_time)
}

fn parse_unclamped(s: &str, now: i64) -> i64 {
    parse_checked(s, now).unwrap_or(now)
}

fn parse_checked(s: &str, now: i64) -> Option<i64> {
    if let Some(v) = php_numeric(s) {
        return Some(v.trunc() as i64);
    }
    if s.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    if let Some(v) = s.strip_prefix('@').and_then(php_numeric) {
        return Some(v.trunc() as i64);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp());
    }
    // `Tue, 14 Nov 2023 22:00:05 +0000` (an HTTP or mail date).
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.timestamp());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S %z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.timestamp());
        }
    }
    // Fractions of a second (Python's `isoformat()`) are read and dropped, as `strtotime` does.
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc().timestamp());
        }
    }
    if let Some(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Some(d.and_utc().timestamp());
    }
    // `-1 hour`, `yesterday 12:00`, `01-12-2021`: strtotime reads them in the server's zone,
    // which emoncms sets to UTC.
    ynni_storage::php_time::strtotime(s, now, chrono_tz::Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let now = 1_795_829_388;
        assert_eq!(parse_time_param("1699999205", now), 1_699_999_205);
        assert_eq!(parse_time_param("1699999205.9", now), 1_699_999_205);
        for (form, t) in [
            ("2023-11-14T22:00:05.123456", 1_699_999_205),
            ("2023-11-14 22:00:05.5", 1_699_999_205),
            ("2023-11-14T22:00", 1_699_999_200),
            ("Tue, 14 Nov 2023 22:00:05 +0000", 1_699_999_205),
            ("Tue, 14 Nov 2023 23:00:05 +0100", 1_699_999_205),
        ] {
            assert_eq!(parse_time_param(form, now), t, "{form}");
        }
        // Milliseconds are not converted (as in emoncms); such a far-future time is only kept
        // within range so no arithmetic on it can overflow.
        assert_eq!(parse_time_param("1699999205000", now), 1 << 33);
        assert_eq!(parse_time_param("-1e300", now), -(1 << 33));
        assert_eq!(parse_time_param("2023-11-14 22:00:05", now), 1_699_999_205);
        assert_eq!(
            parse_time_param("2023-11-14T23:00:05+01:00", now),
            1_699_999_205
        );
        assert_eq!(parse_time_param("2023-11-14", now), 1_699_920_000);
        assert_eq!(parse_time_param("garbage", now), now);
        assert_eq!(parse_time_param("-1 hour", now), now - 3_600);
        assert_eq!(parse_time_param("01-12-2021", now), 1_638_316_800);
        assert_eq!(parse_time_checked("2 minutes ago", now), Some(now - 120));
        assert_eq!(parse_time_param("now", now), now);
        assert_eq!(parse_time_checked("garbage", now), None);
        assert_eq!(parse_time_checked(" now ", now), Some(now));
        assert_eq!(parse_time_checked("1699999205", now), Some(1_699_999_205));
    }

    #[test]
    fn milliseconds_are_not_divided() {
        // input_methods.php `post` and `bulk` read `time` with a plain (int) cast: there is no
        // check for a millisecond value and no division by 1000, so 1700000000123 stays a
        // (far-future) second count. ynni keeps it too, only bounded by `clamp_time`.
        let now = 1_795_829_388;
        assert_eq!(parse_time_param("1700000000123", now), 1 << 33);
        assert_eq!(parse_time_param("8589934591", now), 8_589_934_591);
    }
}
