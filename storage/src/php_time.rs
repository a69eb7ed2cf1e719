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
//! `today`, `midnight`, `yesterday` and `tomorrow` set the time of day to 00:00. A date without
//! a time of day keeps the one it changes under `modify` and is at midnight under `strtotime`.
//! `last week`, `this week` and `next week` are not read: PHP takes them for a Monday.
//!
//! These strings come from clients: every step is checked arithmetic, so any input ends in an
//! answer or `None`, never a panic.

use chrono::{Datelike, Days, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// The largest amount one relative part may hold (a million years in seconds is far beyond any
/// date a feed can hold; larger is refused rather than computed).
const MAX_MOVE: i64 = 1_000_000 * 400 * 86_400;

/// `s` as `DateTime::modify` reads it on a date-time of `now` (unix seconds) in `tz`: a date
/// given without a time of day keeps `now`'s. `None` when it is none of the forms above.
pub fn modify(s: &str, now: i64, tz: Tz) -> Option<i64> {
    parse(s, now, tz, true)
}

/// `s` as `strtotime` reads it at `now` in `tz`: a date given without a time of day is at
/// midnight. `None` when it is none of the forms above.
pub fn strtotime(s: &str, now: i64, tz: Tz) -> Option<i64> {
    parse(s, now, tz, false)
}

fn parse(s: &str, now: i64, tz: Tz, keep_time: bool) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let local_now = tz.timestamp_opt(now, 0).single()?.naive_local();
    if let Some((date, time)) = calendar_date(&s) {
        let time = match time {
            Some(t) => t,
            None if keep_time => local_now.time(),
            None => NaiveTime::MIN,
        };
        return to_utc(tz, date.and_time(time));
    }
    relative(&s, local_now, tz)
}

/// `dd-mm-yyyy`, `dd.mm.yyyy` and `mm/dd/yyyy`, each with an optional `HH:MM[:SS]` (`None`
/// when it has none). Years are four digits, as clients write them.
fn calendar_date(s: &str) -> Option<(NaiveDate, Option<NaiveTime>)> {
    let (date, time) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(time_of_day(t.trim())?)),
        None => (s, None),
    };
    let year = date.rsplit(['-', '.', '/']).next()?;
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ["%d-%m-%Y", "%d.%m.%Y", "%m/%d/%Y"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(date, f).ok())
        .map(|d| (d, time))
}

/// What a relative string asks for, before it is applied.
#[derive(Default)]
struct Moves {
    years: i64,
    months: i64,
    days: i64,
    seconds: i64,
}

fn relative(s: &str, mut local: NaiveDateTime, tz: Tz) -> Option<i64> {
    let mut moves = Moves::default();
    let mut tokens = s.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        match token {
            "now" => {}
            "today" | "midnight" => local = local.date().and_time(NaiveTime::MIN),
            "noon" => local = local.date().and_hms_opt(12, 0, 0)?,
            "yesterday" => local = local.date().pred_opt()?.and_time(NaiveTime::MIN),
            "tomorrow" => local = local.date().succ_opt()?.and_time(NaiveTime::MIN),
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
                let week_next = tokens.peek().is_some_and(|u| u.starts_with("week"));
                let amount = match token {
                    "last" | "previous" | "next" | "this" if week_next => return None,
                    "last" | "previous" => -1,
                    "next" => 1,
                    "this" => 0,
                    "a" | "an" => 1,
                    number => number.strip_prefix('+').unwrap_or(number).parse().ok()?,
                };
                add(&mut moves, amount, tokens.next()?)?;
            }
        }
    }
    let months = moves.years.checked_mul(12)?.checked_add(moves.months)?;
    let date =
        shift_months(local.date(), months)?.checked_add_signed(Duration::try_days(moves.days)?)?;
    to_utc(tz, date.and_time(local.time()))?.checked_add(moves.seconds)
}

/// `HH:MM` or `HH:MM:SS`.
fn time_of_day(token: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(token, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(token, "%H:%M"))
        .ok()
}

fn add(moves: &mut Moves, amount: i64, unit: &str) -> Option<()> {
    let (field, times) = match unit {
        "sec" | "secs" | "second" | "seconds" => (&mut moves.seconds, 1),
        "min" | "mins" | "minute" | "minutes" => (&mut moves.seconds, 60),
        "hour" | "hours" => (&mut moves.seconds, 3_600),
        "day" | "days" => (&mut moves.days, 1),
        "week" | "weeks" => (&mut moves.days, 7),
        "fortnight" | "fortnights" => (&mut moves.days, 14),
        "month" | "months" => (&mut moves.months, 1),
        "year" | "years" => (&mut moves.years, 1),
        _ => return None,
    };
    *field = field.checked_add(amount.checked_mul(times)?)?;
    (field.unsigned_abs() <= MAX_MOVE.unsigned_abs()).then_some(())
}

/// `d` moved by `months`, a day past the month's end running on into the next (PHP's way).
fn shift_months(d: NaiveDate, months: i64) -> Option<NaiveDate> {
    let index = (i64::from(d.year()) * 12 + i64::from(d.month0())).checked_add(months)?;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    NaiveDate::from_ymd_opt(year, month, 1)?.checked_add_days(Days::new(u64::from(d.day() - 1)))
}

/// A local time in `tz` as unix seconds; one a DST gap swallowed is the first instant after it.
fn to_utc(tz: Tz, local: NaiveDateTime) -> Option<i64> {
    let r = tz.from_local_datetime(&local);
    r.earliest()
        .or_else(|| {
            let later = local.checked_add_signed(Duration::hours(1))?;
            tz.from_local_datetime(&later).earliest()
        })
        .map(|d| d.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-31 14:30:00 in London (BST, UTC+1).
    const NOW: i64 = 1_774_963_800;

    fn london() -> Tz {
        "Europe/London".parse().expect("zone")
    }

    fn local(t: i64) -> String {
        london()
            .timestamp_opt(t, 0)
            .single()
            .expect("time")
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    fn read(s: &str) -> Option<String> {
        strtotime(s, NOW, london()).map(local)
    }

    #[test]
    fn relative_forms_move_from_now_in_the_users_zone() {
        assert_eq!(read("now").as_deref(), Some("2026-03-31 14:30:00"));
        for (form, expected) in [
            ("-1 week", "2026-03-24 14:30:00"),
            ("-2 days", "2026-03-29 14:30:00"),
            ("+3 hours", "2026-03-31 17:30:00"),
            ("1 hour ago", "2026-03-31 13:30:00"),
            ("2 days 3 hours ago", "2026-03-29 11:30:00"),
            ("-90 minutes", "2026-03-31 13:00:00"),
            ("-30 sec", "2026-03-31 14:29:30"),
            ("next fortnight", "2026-04-14 14:30:00"),
            ("last month", "2026-03-03 14:30:00"),
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
            assert_eq!(read(form).as_deref(), Some(expected), "{form}");
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
            assert_eq!(read(form).as_deref(), Some(expected), "{form}");
        }
    }

    /// `DateTime::modify` keeps the time of day of the date-time it changes when the string
    /// gives a date only; `strtotime` starts the day at midnight.
    #[test]
    fn a_date_alone_keeps_the_time_of_day_under_modify() {
        let tz = london();
        assert_eq!(
            modify("01-12-2021", NOW, tz).map(local).as_deref(),
            Some("2021-12-01 14:30:00")
        );
        assert_eq!(
            modify("01-12-2021 08:00", NOW, tz).map(local).as_deref(),
            Some("2021-12-01 08:00:00")
        );
        assert_eq!(
            strtotime("01-12-2021", NOW, tz).map(local).as_deref(),
            Some("2021-12-01 00:00:00")
        );
        assert_eq!(modify("-1 week", NOW, tz), strtotime("-1 week", NOW, tz));
    }

    /// Whatever a client sends, reading it ends in an answer or `None`, never a panic.
    #[test]
    fn extreme_input_is_refused_not_a_panic() {
        let tz: Tz = "America/New_York".parse().expect("zone");
        for form in [
            "31-12-9999 23:30",
            "01-01-0000",
            "+1000000 years",
            "-1000000 years -1000000 months -1000000 days",
            "1000000 weeks 1000000 fortnights",
            "9223372036854775807 seconds",
            "-9223372036854775808 years",
            "999999 years 999999 years 999999 years",
        ] {
            let _ = modify(form, NOW, tz);
            let _ = strtotime(form, 1 << 40, tz);
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
            "9999999999 years",
            "last monday",
            "last week",
            "next week",
            "this week",
            "31-12-+262142 23:30",
            "01-12-21",
        ] {
            assert_eq!(read(form), None, "{form}");
        }
    }
}
