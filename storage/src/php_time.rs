//! The date strings emoncms's clients send where a time is asked for and that are not a number
//! or an ISO date: relative ones (`-1 week`, `2 days ago`, `yesterday 12:00`, `now`) and
//! day-first or American dates (`01-12-2021`, `01.12.2021`, `12/01/2021`). emoncms reads these
//! with PHP's `DateTime::modify` (`feed/data`'s `start` and `end`, in the user's time zone) or
//! `strtotime` (`input/post`'s `time`), whose own API help gives `-1 week` and `01-12-2021` as
//! examples. Only these forms are read; anything else is `None`, for the caller to answer as
//! emoncms answers a string PHP cannot read.
//!
//! As in PHP: days, weeks, months and years move the local date and keep the local time of day
//! (a month past the 31st runs on into the next month: 31 March less a month is 3 March);
//! hours, minutes and seconds are elapsed time; `ago` turns every amount before it around;
//! `today`, `midnight`, `yesterday` and `tomorrow` set the time of day to 00:00.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// Amounts are bounded so that no arithmetic on them can overflow (a million years either way).
const MAX_AMOUNT: i64 = 1_000_000;

/// `s` read at `now` (unix seconds) in `tz`; `None` when it is none of the forms above.
pub fn parse(s: &str, now: i64, tz: Tz) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    if let Some(local) = calendar_date(&s) {
        return to_utc(tz, local);
    }
    relative(&s, now, tz)
}

/// `dd-mm-yyyy`, `dd.mm.yyyy` and `mm/dd/yyyy`, each with an optional `HH:MM[:SS]`.
fn calendar_date(s: &str) -> Option<NaiveDateTime> {
    for date in ["%d-%m-%Y", "%d.%m.%Y", "%m/%d/%Y"] {
        for time in [" %H:%M:%S", " %H:%M"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, &format!("{date}{time}")) {
                return Some(t);
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, date) {
            return d.and_hms_opt(0, 0, 0);
        }
    }
    None
}

/// What a relative string asks for, before it is applied.
#[derive(Default)]
struct Moves {
    years: i64,
    months: i64,
    days: i64,
    seconds: i64,
}

fn relative(s: &str, now: i64, tz: Tz) -> Option<i64> {
    let mut local = tz.timestamp_opt(now, 0).single()?.naive_local();
    let mut moves = Moves::default();
    let mut tokens = s.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        match token {
            "now" => {}
            "today" | "midnight" => local = local.date().and_time(NaiveTime::MIN),
            "noon" => local = local.date().and_hms_opt(12, 0, 0)?,
            "yesterday" => local = (local.date() - Duration::days(1)).and_time(NaiveTime::MIN),
            "tomorrow" => local = (local.date() + Duration::days(1)).and_time(NaiveTime::MIN),
            "ago" => {
                moves.years = -moves.years;
                moves.months = -moves.months;
                moves.days = -moves.days;
                moves.seconds = -moves.seconds;
            }
            _ => {
                if let Some(time) = time_of_day(token) {
                    local = local.date().and_time(time);
                    continue;
                }
                let amount = match token {
                    "last" | "previous" => -1,
                    "next" => 1,
                    "this" => 0,
                    "a" | "an" => 1,
                    number => {
                        let n: i64 = number.strip_prefix('+').unwrap_or(number).parse().ok()?;
                        if n.abs() > MAX_AMOUNT {
                            return None;
                        }
                        n
                    }
                };
                add(&mut moves, amount, tokens.next()?)?;
            }
        }
    }
    let date = shift_months(local.date(), moves.years * 12 + moves.months)?
        .checked_add_signed(Duration::days(moves.days))?;
    to_utc(tz, date.and_time(local.time())).map(|t| t + moves.seconds)
}

/// `HH:MM` or `HH:MM:SS`.
fn time_of_day(token: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(token, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(token, "%H:%M"))
        .ok()
}

fn add(moves: &mut Moves, amount: i64, unit: &str) -> Option<()> {
    match unit {
        "sec" | "secs" | "second" | "seconds" => moves.seconds += amount,
        "min" | "mins" | "minute" | "minutes" => moves.seconds += amount * 60,
        "hour" | "hours" => moves.seconds += amount * 3_600,
        "day" | "days" => moves.days += amount,
        "week" | "weeks" => moves.days += amount * 7,
        "fortnight" | "fortnights" => moves.days += amount * 14,
        "month" | "months" => moves.months += amount,
        "year" | "years" => moves.years += amount,
        _ => return None,
    }
    Some(())
}

/// `d` moved by `months`, a day past the month's end running on into the next (PHP's way).
fn shift_months(d: NaiveDate, months: i64) -> Option<NaiveDate> {
    let index = i64::from(d.year()) * 12 + i64::from(d.month0()) + months;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    NaiveDate::from_ymd_opt(year, month, 1)?
        .checked_add_signed(Duration::days(i64::from(d.day()) - 1))
}

/// A local time in `tz` as unix seconds; one a DST gap swallowed is the first instant after it.
fn to_utc(tz: Tz, local: NaiveDateTime) -> Option<i64> {
    let r = tz.from_local_datetime(&local);
    r.earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|d| d.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-31 14:30:00 in London (BST, UTC+1).
    const NOW: i64 = 1_774_963_800;

    fn london(s: &str) -> Option<String> {
        let tz: Tz = "Europe/London".parse().expect("zone");
        parse(s, NOW, tz).map(|t| {
            tz.timestamp_opt(t, 0)
                .single()
                .expect("time")
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
    }

    #[test]
    fn relative_forms_move_from_now_in_the_users_zone() {
        assert_eq!(london("now").as_deref(), Some("2026-03-31 14:30:00"));
        for (form, expected) in [
            ("-1 week", "2026-03-24 14:30:00"),
            ("-2 days", "2026-03-29 14:30:00"),
            ("+3 hours", "2026-03-31 17:30:00"),
            ("1 hour ago", "2026-03-31 13:30:00"),
            ("2 days 3 hours ago", "2026-03-29 11:30:00"),
            ("-90 minutes", "2026-03-31 13:00:00"),
            ("-30 sec", "2026-03-31 14:29:30"),
            ("last week", "2026-03-24 14:30:00"),
            ("next fortnight", "2026-04-14 14:30:00"),
            ("today", "2026-03-31 00:00:00"),
            ("midnight", "2026-03-31 00:00:00"),
            ("noon", "2026-03-31 12:00:00"),
            ("yesterday", "2026-03-30 00:00:00"),
            ("tomorrow", "2026-04-01 00:00:00"),
            ("yesterday 12:00", "2026-03-30 12:00:00"),
            ("today -1 week", "2026-03-24 00:00:00"),
            // Across the change to summer time (29 March): a day keeps the time of day, an
            // hour is an hour.
            ("-3 days", "2026-03-28 14:30:00"),
            ("-72 hours", "2026-03-28 13:30:00"),
            // PHP runs a day past the month's end on: 31 February is 3 March.
            ("-1 month", "2026-03-03 14:30:00"),
            ("-1 year", "2025-03-31 14:30:00"),
            ("  -1 WEEK ", "2026-03-24 14:30:00"),
        ] {
            assert_eq!(london(form).as_deref(), Some(expected), "{form}");
        }
    }

    #[test]
    fn day_first_and_american_dates_are_local() {
        for (form, expected) in [
            ("01-12-2021", "2021-12-01 00:00:00"),
            ("01.12.2021", "2021-12-01 00:00:00"),
            ("12/01/2021", "2021-12-01 00:00:00"),
            ("10-12-2021 08:15", "2021-12-10 08:15:00"),
            ("10-07-2021 08:15:30", "2021-07-10 08:15:30"),
        ] {
            assert_eq!(london(form).as_deref(), Some(expected), "{form}");
        }
    }

    #[test]
    fn anything_else_is_not_read() {
        for form in [
            "",
            "garbage",
            "-1",
            "1 parsec",
            "-1 week garbage",
            "31-02-2021",
            "99999999 years",
            "last monday",
        ] {
            assert_eq!(london(form), None, "{form}");
        }
    }
}
