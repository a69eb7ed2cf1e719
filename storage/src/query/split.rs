//! emoncms's time-of-use read (`feed/data` with `split`, its engines'
//! `get_data_DMY_time_of_day`): for each local day, week or month start from the one that
//! holds `start` (Mondays as PHP's `this monday` finds them) up to and including `end`, the
//! feed's values at fixed offsets after that start. Used by emoncms's time-of-use apps to read
//! a cumulative kWh feed at the tariff change times of every day.
//!
//! Only fixed-interval feeds answer it here (emoncms also has a MySQL version that
//! interpolates); a value is the slot nearest the time, rounded as emoncms's PHPFina does,
//! not floored as the ordinary read is.

use super::{Calendar, Interval, QueryError, TIME_LIMIT, value_at, windows};
use crate::store::Feed;
use chrono_tz::Tz;

/// emoncms's limit on the offsets one request may list (a day of half hours).
pub const MAX_SPLITS: usize = 48;

/// One time-of-use request.
#[derive(Debug, Clone)]
pub struct SplitRequest {
    pub start: i64,
    pub end: i64,
    pub calendar: Calendar,
    /// Seconds after each period start.
    pub offsets: Vec<i64>,
    pub tz: Tz,
    /// The most periods answered; more is emoncms's datapoint-limit error.
    pub max_rows: u64,
    /// The most values (periods times offsets) answered, checked before any is read: more is
    /// the same error, with this limit.
    pub max_values: u64,
}

/// A period start (unix seconds) and the value at each offset after it.
pub type SplitRow = (i64, Vec<Option<f64>>);

/// Runs a time-of-use request.
pub fn split(feed: &Feed, req: &SplitRequest) -> Result<Vec<SplitRow>, QueryError> {
    let start = req.start.clamp(-TIME_LIMIT, TIME_LIMIT);
    let end = req.end.clamp(-TIME_LIMIT, TIME_LIMIT);
    if end <= start {
        return Err(QueryError::EndBeforeStart);
    }
    let periods = windows(
        start,
        end,
        Interval::Calendar(req.calendar),
        req.tz,
        req.max_rows,
    )?;
    let values = (periods.len() as u64).saturating_mul(req.offsets.len() as u64);
    if values > req.max_values {
        return Err(QueryError::TooManyPoints {
            limit: req.max_values,
            requested: i64::try_from(values).unwrap_or(i64::MAX),
        });
    }
    let mut rows = Vec::with_capacity(periods.len());
    for (t, _) in periods {
        let values = req
            .offsets
            .iter()
            .map(|&offset| value_at(feed, t.saturating_add(offset)))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push((t, values));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::FixedFeed;

    /// A feed of 30-minute slots from 2024-01-01 00:00 UTC whose value is the slot number.
    fn feed(dir: &std::path::Path, days: u32) -> Feed {
        let mut f = FixedFeed::create(dir, 1, 1800, 1).expect("create");
        let start = 1_704_067_200i64;
        let points: Vec<(i64, Option<f64>)> = (0..i64::from(days) * 48)
            .map(|k| (start + k * 1800, Some(k as f64)))
            .collect();
        f.write(&points, false).expect("write");
        Feed::Fixed(f)
    }

    fn request(start: i64, end: i64, calendar: Calendar, hours: &[f64], tz: Tz) -> SplitRequest {
        SplitRequest {
            start,
            end,
            calendar,
            offsets: hours.iter().map(|h| (h * 3600.0) as i64).collect(),
            tz,
            max_rows: 20_000,
            max_values: 400_000,
        }
    }

    /// Periods times offsets past the most values is refused before any is read.
    #[test]
    fn too_many_values_are_refused_before_reading() {
        let dir = tempfile::tempdir().expect("dir");
        let f = feed(dir.path(), 3);
        let hours: Vec<f64> = (0..48).map(|h| f64::from(h) / 2.0).collect();
        let mut req = request(
            1_704_067_200,
            1_704_067_200 + 30 * 86_400,
            Calendar::Daily,
            &hours,
            Tz::UTC,
        );
        let periods = split(&f, &req).expect("fits").len() as u64;
        req.max_values = periods * 48 - 1;
        assert!(matches!(
            split(&f, &req),
            Err(QueryError::TooManyPoints { limit, requested })
                if limit == periods * 48 - 1 && requested == (periods * 48) as i64
        ));
    }

    #[test]
    fn each_local_day_reads_the_slots_at_its_offsets() {
        let dir = tempfile::tempdir().expect("dir");
        let f = feed(dir.path(), 3);
        // From mid-morning of 1 January to noon of 3 January: days start at midnight before
        // `start`, and the day starting at `end`'s midnight is included.
        let req = request(
            1_704_067_200 + 10 * 3600,
            1_704_067_200 + 2 * 86_400 + 12 * 3600,
            Calendar::Daily,
            &[0.0, 7.0, 23.5],
            Tz::UTC,
        );
        let rows = split(&f, &req).expect("split");
        let day = 1_704_067_200;
        assert_eq!(
            rows,
            vec![
                (day, vec![Some(0.0), Some(14.0), Some(47.0)]),
                (day + 86_400, vec![Some(48.0), Some(62.0), Some(95.0)]),
                (day + 2 * 86_400, vec![Some(96.0), Some(110.0), Some(143.0)]),
            ]
        );
    }

    #[test]
    fn offsets_between_slots_round_to_the_nearest_and_missing_slots_are_null() {
        let dir = tempfile::tempdir().expect("dir");
        let f = feed(dir.path(), 1);
        let day = 1_704_067_200;
        // 0.3 h is 1080 s: 0.6 of a slot rounds up to slot 1; 0.2 h rounds down to slot 0;
        // 24 h is past the last slot.
        let req = request(day, day + 3600, Calendar::Daily, &[0.3, 0.2, 24.0], Tz::UTC);
        let rows = split(&f, &req).expect("split");
        assert_eq!(rows, vec![(day, vec![Some(1.0), Some(0.0), None])]);
    }

    #[test]
    fn days_follow_the_requested_zone() {
        let dir = tempfile::tempdir().expect("dir");
        let f = feed(dir.path(), 2);
        let tz: Tz = "Europe/Paris".parse().expect("zone");
        let day = 1_704_067_200;
        // Paris midnight of 1 January is 23:00 UTC on 31 December, before the feed starts.
        let req = request(day + 3600, day + 7200, Calendar::Daily, &[1.0, 2.0], tz);
        let rows = split(&f, &req).expect("split");
        assert_eq!(rows, vec![(day - 3600, vec![Some(0.0), Some(2.0)])]);
    }

    #[test]
    fn the_end_must_follow_the_start_and_periods_are_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let f = feed(dir.path(), 1);
        let req = request(100, 100, Calendar::Daily, &[0.0], Tz::UTC);
        assert!(matches!(split(&f, &req), Err(QueryError::EndBeforeStart)));
        let mut req = request(0, 400 * 86_400, Calendar::Daily, &[0.0], Tz::UTC);
        req.max_rows = 10;
        assert!(matches!(
            split(&f, &req),
            Err(QueryError::TooManyPoints { .. })
        ));
    }
}
