//! Per-user time zones: IANA names resolved through the tz database (chrono-tz).

use chrono::{Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Parses an IANA zone name such as `Europe/London`; `None` for anything else.
pub fn parse(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// The zone's current offset from UTC in seconds (DST included), as emoncms's
/// `user/timezone.json` reports it. Unknown names count as UTC.
pub fn offset_now_secs(name: &str) -> i32 {
    let tz = parse(name).unwrap_or(Tz::UTC);
    tz.offset_from_utc_datetime(&Utc::now().naive_utc())
        .fix()
        .local_minus_utc()
}

/// The regions PHP's `DateTimeZone::listIdentifiers()` covers; emoncms accepts only zones it
/// lists, which leaves out legacy aliases such as `US/Eastern`, `GB` or `EST5EDT`.
const REGIONS: [&str; 10] = [
    "Africa/",
    "America/",
    "Antarctica/",
    "Arctic/",
    "Asia/",
    "Atlantic/",
    "Australia/",
    "Europe/",
    "Indian/",
    "Pacific/",
];

/// True for a zone a user may choose: `UTC` or a known `Region/City` name.
pub fn is_listed(name: &str) -> bool {
    parse(name).is_some() && (name == "UTC" || REGIONS.iter().any(|r| name.starts_with(r)))
}

/// Every zone a user may choose, sorted, for pickers and `user/gettimezones.json`.
pub fn all_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter(|n| is_listed(n))
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_zones() {
        assert!(parse("Europe/London").is_some());
        assert!(parse("UTC").is_some());
        assert!(parse("Mars/Olympus").is_none());
        assert_eq!(offset_now_secs("UTC"), 0);
        assert_eq!(offset_now_secs("Asia/Kolkata"), 19800);
        assert!(all_names().contains(&"Europe/London"));
        assert!(all_names().contains(&"UTC"));
        assert!(is_listed("America/Argentina/Buenos_Aires"));
        assert!(!is_listed("US/Eastern"));
        assert!(!all_names().contains(&"GB"));
        assert!(!is_listed("Europe/Nowhere"));
    }
}
