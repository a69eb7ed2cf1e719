//! Reading feeds the way emoncms's `feed/data.json` and friends do.
//!
//! [`data`] follows emoncms 11's `get_data` / `get_data_combined` step for step: the checks
//! and their messages in emoncms's order, ~800 points when no interval is given, calendar
//! intervals (`daily`, `weekly`, `monthly`, `annual`) on local boundaries of an IANA zone
//! (DST-correct), averaging, `skipmissing`, `limitinterval`, `delta`, `dp`, and the time
//! formats. Timestamps are the request's grid (`start + k·interval`), not the feed's.
//!
//! Deliberate differences from emoncms: a non-numeric, non-calendar interval such as `abc` is
//! `Invalid interval` (emoncms silently uses 1 s); `annual` on a variable-interval feed starts
//! on 1 January (emoncms's PHPTimeSeries starts on the first of the current month); `delta`
//! with `notime` returns the values (emoncms fails with a PHP error).

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::error::StorageError;
use crate::fixed::FixedFeed;
use crate::store::Feed;
use crate::variable::VariableFeed;

mod split;
pub use split::{MAX_SPLITS, SplitRequest, SplitRow, split};

/// emoncms's default `max_datapoints`.
pub const DEFAULT_MAX_DATAPOINTS: u64 = 20_000;

/// Request times are clamped to ±2^33 s (years 1697–2242) so that no arithmetic on them can
/// overflow, and intervals to 2^32 s.
const TIME_LIMIT: i64 = 1 << 33;
const INTERVAL_LIMIT: i64 = 1 << 32;

/// CSV downloads skip emoncms's datapoint limit; this bounds them instead (a year of 10 s data
/// is 3.2 M lines).
pub const CSV_MAX_LINES: u64 = 5_000_000;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("Request end time before start time")]
    EndBeforeStart,
    #[error("Invalid interval")]
    InvalidInterval,
    #[error(
        "request datapoint limit reached ({limit}), increase request interval or reduce time range, requested datapoints = {requested}"
    )]
    TooManyPoints { limit: u64, requested: i64 },
    #[error("Invalid time format")]
    InvalidTimeFormat,
    /// ynni's own bound (emoncms has none): see [`MAX_RECORDS_READ`].
    #[error(
        "record limit reached ({limit} records of variable-interval feeds read for one request), reduce time range or request fewer feeds"
    )]
    TooManyRecords { limit: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A calendar period, aligned to local midnight in the request's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    Daily,
    Weekly,
    Monthly,
    Annual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Seconds; 0 (or missing) asks for about 800 points.
    Seconds(i64),
    /// The feed's own interval.
    Original,
    Calendar(Calendar),
}

impl Interval {
    /// Parses the `interval` (or legacy `mode`) parameter: a number (PHP `is_numeric`, cast to
    /// an integer), `original`, or a calendar code; missing or empty means 0.
    pub fn parse(s: Option<&str>) -> Result<Self, QueryError> {
        let s = s.map(str::trim).unwrap_or("");
        Ok(match s {
            "" => Interval::Seconds(0),
            "original" => Interval::Original,
            "daily" => Interval::Calendar(Calendar::Daily),
            "weekly" => Interval::Calendar(Calendar::Weekly),
            "monthly" => Interval::Calendar(Calendar::Monthly),
            "annual" => Interval::Calendar(Calendar::Annual),
            _ => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    Interval::Seconds((v.trunc() as i64).clamp(-INTERVAL_LIMIT, INTERVAL_LIMIT))
                }
                _ => return Err(QueryError::InvalidInterval),
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    Unix,
    UnixMs,
    /// `d/m/Y H:i:s` in the request's zone.
    Excel,
    /// ISO 8601 with offset, in the request's zone.
    Iso8601,
    /// Values only.
    NoTime,
}

impl TimeFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unix" => TimeFormat::Unix,
            "unixms" => TimeFormat::UnixMs,
            "excel" => TimeFormat::Excel,
            "iso8601" => TimeFormat::Iso8601,
            "notime" => TimeFormat::NoTime,
            _ => return None,
        })
    }
}

/// A time rendered for output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeValue {
    Int(i64),
    Text(String),
}

/// Renders `t` (unix seconds) in `format`; `None` for [`TimeFormat::NoTime`].
pub fn render_time(t: i64, format: TimeFormat, tz: Tz) -> Option<TimeValue> {
    let local = || tz.timestamp_opt(t, 0).single();
    match format {
        TimeFormat::Unix => Some(TimeValue::Int(t)),
        TimeFormat::UnixMs => Some(TimeValue::Int(t * 1000)),
        TimeFormat::Excel => {
            local().map(|d| TimeValue::Text(d.format("%d/%m/%Y %H:%M:%S").to_string()))
        }
        TimeFormat::Iso8601 => {
            local().map(|d| TimeValue::Text(d.format("%Y-%m-%dT%H:%M:%S%:z").to_string()))
        }
        TimeFormat::NoTime => None,
    }
}

/// Parses a `start`/`end` value: a number of seconds, or of milliseconds when above 1e11, or a
/// date (`2023-11-14 22:00:00`, `2023-11-14`, RFC 3339) read in `tz`, or a relative or
/// day-first one (`-1 week`, `01-12-2021`: [`crate::php_time`]) read at `now` in `tz`. As
/// emoncms's `DateTime::modify` on now, a date without a time of day keeps now's.
pub fn parse_time(s: &str, tz: Tz, now: i64) -> Option<i64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        if !v.is_finite() {
            return None;
        }
        let v = if v / 1e9 > 100.0 { v * 0.001 } else { v };
        return Some(v.trunc() as i64);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp());
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .ok()
        .or_else(|| {
            // A date alone keeps the time of day of `now` (`DateTime::modify` changes only
            // what the string gives).
            let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            let time = tz.timestamp_opt(now, 0).single()?.naive_local().time();
            Some(date.and_time(time))
        });
    match naive {
        Some(naive) => local_to_utc(tz, naive),
        None => crate::php_time::modify(s, now, tz),
    }
}

/// One `feed/data` request for one feed.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRequest {
    pub start: i64,
    pub end: i64,
    pub interval: Interval,
    pub average: bool,
    pub delta: bool,
    pub skipmissing: bool,
    pub limitinterval: bool,
    /// Decimal places to round values to.
    pub dp: Option<i32>,
    /// As given; checked after the interval, as emoncms does.
    pub timeformat: String,
    pub tz: Tz,
    pub max_datapoints: u64,
    /// The feed's last update (time, value) as the feed list shows it, used by `delta` to fill
    /// the final window; the engine's last point when `None`.
    pub last_value: Option<(i64, Option<f64>)>,
    /// The most records of a variable-interval feed the read may take from its file
    /// ([`MAX_RECORDS_READ`] unless a caller sharing it among reads asks for less).
    pub max_records: u64,
}

/// The most records of variable-interval feeds one request may read: an average reads every
/// record in its range, on the shard's thread, which serves every other user of the shard
/// meanwhile. 16 million records (144 MB to read and average) is five years of a feed
/// written every 10 s; emoncms sets no bound.
pub const MAX_RECORDS_READ: u64 = 16_000_000;

impl DataRequest {
    /// A request with emoncms's defaults for everything but the range and interval.
    pub fn new(start: i64, end: i64, interval: Interval) -> Self {
        Self {
            start,
            end,
            interval,
            average: false,
            delta: false,
            skipmissing: false,
            limitinterval: false,
            dp: None,
            timeformat: "unixms".into(),
            tz: Tz::UTC,
            max_datapoints: DEFAULT_MAX_DATAPOINTS,
            last_value: None,
            max_records: MAX_RECORDS_READ,
        }
    }
}

/// The answer: times in seconds (render them with [`render_time`]) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct DataReply {
    pub format: TimeFormat,
    pub points: Vec<(i64, Option<f64>)>,
    /// Records of a variable-interval feed read for it (0 for a fixed-interval feed).
    pub records: u64,
}

/// Runs a `feed/data` request against a feed.
pub fn data(feed: &Feed, req: &DataRequest) -> Result<DataReply, QueryError> {
    let start = req.start.clamp(-TIME_LIMIT, TIME_LIMIT);
    let mut end = req.end.clamp(-TIME_LIMIT, TIME_LIMIT);
    if end <= start {
        return Err(QueryError::EndBeforeStart);
    }
    let interval = auto_interval(req.interval, start, end);
    if req.delta {
        end = match interval {
            Interval::Seconds(i) if i > 0 => end.div_euclid(i) * i + i,
            Interval::Calendar(c) => delta_end(c, end, req.tz),
            _ => end,
        };
    }
    check_interval(interval, start, end, req.max_datapoints)?;
    let format = TimeFormat::parse(&req.timeformat).ok_or(QueryError::InvalidTimeFormat)?;
    // The check above is emoncms's (the rounded span over the interval); its loop then runs to
    // the end inclusive, one point more.
    let cap = req.max_datapoints.saturating_add(1);
    let series = match feed {
        Feed::Fixed(f) => fixed_series(f, start, end, interval, req, cap).map(|p| (p, 0)),
        Feed::Variable(f) => {
            variable_series(f, start, end, interval, req, cap).map(|p| (p.points, p.records))
        }
    };
    let (mut points, records) = series.map_err(|e| the_limit(e, req.max_datapoints))?;
    if req.delta {
        let last = match req.last_value {
            Some(lv) => Some(lv),
            None => last_value(feed)?,
        };
        points = delta(points, last);
    }
    if let Some(dp) = req.dp {
        for (_, v) in points.iter_mut() {
            if let Some(x) = v {
                *x = php_round(*x, dp);
            }
        }
    }
    Ok(DataReply {
        format,
        points,
        records,
    })
}

/// emoncms's CSV download of one feed (the engines' CSV path): `<time>,<value>` lines, the
/// time in unix seconds unless `excel` or `iso8601` is asked for, the value to 2 decimals.
/// As in emoncms it skips the interval and datapoint-limit checks (an auto interval below 1 s
/// becomes 1 s) and ignores `delta` and `dp`, which feed_model.php applies only to data it
/// returns, not to what an engine has already written out. A value PHP's loose `$value !=
/// null` takes for null, 0 included, is written `null` (shared_helper.php's `csv_write`).
pub fn csv(feed: &Feed, req: &DataRequest) -> Result<String, QueryError> {
    let mut export = CsvExport::new(req)?;
    let mut out = String::new();
    while let Some(piece) = export.piece(feed, usize::MAX)? {
        out.push_str(&piece);
    }
    Ok(out)
}

/// Lines per piece of a CSV download: about 2 MiB of text.
pub const CSV_PIECE_LINES: usize = 100_000;

/// A CSV download ([`csv`]) written a piece at a time, so that a long one (up to
/// [`CSV_MAX_LINES`], ~100 MB) holds one piece in memory and keeps the feed's shard busy for
/// one piece at a time; the pieces joined are exactly what [`csv`] writes. Each piece starts
/// at the window after the previous one's last, with a variable feed's averaging state.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvExport {
    req: DataRequest,
    end: i64,
    interval: Interval,
    format: TimeFormat,
    /// Where the next piece starts; `None` once all is written.
    next: Option<i64>,
    held: Option<Held>,
}

impl CsvExport {
    /// Checks the request as emoncms's CSV path does.
    pub fn new(req: &DataRequest) -> Result<Self, QueryError> {
        let start = req.start.clamp(-TIME_LIMIT, TIME_LIMIT);
        let end = req.end.clamp(-TIME_LIMIT, TIME_LIMIT);
        if end <= start {
            return Err(QueryError::EndBeforeStart);
        }
        let interval = match req.interval {
            Interval::Seconds(i) if i < 1 => {
                Interval::Seconds((php_round((end - start) as f64 / 800.0, 0) as i64).max(1))
            }
            other => other,
        };
        let format = match TimeFormat::parse(&req.timeformat) {
            None => return Err(QueryError::InvalidTimeFormat),
            Some(f @ (TimeFormat::Excel | TimeFormat::Iso8601)) => f,
            Some(_) => TimeFormat::Unix,
        };
        Ok(Self {
            req: req.clone(),
            end,
            interval,
            format,
            next: Some(start),
            held: None,
        })
    }

    /// The next piece of at most `lines` windows (fewer lines when `skipmissing` drops some),
    /// or `None` when the download is complete. The first piece refuses a download of more
    /// than [`CSV_MAX_LINES`] lines before anything is written.
    pub fn piece(&mut self, feed: &Feed, lines: usize) -> Result<Option<String>, QueryError> {
        let Some(start) = self.next else {
            return Ok(None);
        };
        let (req, end, interval) = (&self.req, self.end, self.interval);
        let piece = match feed {
            Feed::Fixed(f) => fixed_piece(f, start, end, interval, req, CSV_MAX_LINES, lines)?,
            Feed::Variable(f) => variable_series_in(
                f,
                start,
                end,
                interval,
                req,
                CSV_MAX_LINES,
                CHUNK,
                lines,
                self.held,
            )?,
        };
        self.next = piece.next;
        self.held = Some(piece.held);
        let mut out = String::with_capacity(piece.points.len() * 20);
        for (t, v) in piece.points {
            match render_time(t, self.format, req.tz) {
                Some(TimeValue::Text(t)) => out.push_str(&t),
                _ => out.push_str(&t.to_string()),
            }
            out.push(',');
            out.push_str(&csv_value(v));
            out.push('\n');
        }
        Ok(Some(out))
    }

    /// Whether every piece has been written.
    pub fn done(&self) -> bool {
        self.next.is_none()
    }
}

/// A CSV value as emoncms writes it: `number_format($v, 2, '.', '')`, or `null` for a missing
/// value and for 0, which PHP's loose comparison with null cannot tell apart.
pub fn csv_value(v: Option<f64>) -> String {
    match v {
        Some(v) if v != 0.0 => number_format_2(v),
        _ => "null".into(),
    }
}

/// PHP's `number_format($v, 2, '.', '')`.
fn number_format_2(v: f64) -> String {
    let s = format!("{:.2}", php_round(v, 2));
    if s == "-0.00" { "0.00".into() } else { s }
}

/// The grid a request asks for: its window start times, the interval they step by, and the
/// time format, after the same checks and interval rules as [`data`] (virtual feeds compute a
/// value per grid time). `delta` is not applied.
pub fn grid(req: &DataRequest) -> Result<(Vec<i64>, Interval, TimeFormat), QueryError> {
    let start = req.start.clamp(-TIME_LIMIT, TIME_LIMIT);
    let end = req.end.clamp(-TIME_LIMIT, TIME_LIMIT);
    if end <= start {
        return Err(QueryError::EndBeforeStart);
    }
    let interval = match auto_interval(req.interval, start, end) {
        // A virtual feed has no interval of its own.
        Interval::Original => return Err(QueryError::InvalidInterval),
        other => other,
    };
    check_interval(interval, start, end, req.max_datapoints)?;
    let format = TimeFormat::parse(&req.timeformat).ok_or(QueryError::InvalidTimeFormat)?;
    let times = windows(
        start,
        end,
        interval,
        req.tz,
        req.max_datapoints.saturating_add(1),
    )
    .map_err(|e| the_limit(e, req.max_datapoints))?
    .into_iter()
    .map(|w| w.0)
    .collect();
    Ok((times, interval, format))
}

/// A refusal for too many points names the configured limit, not the one more point a
/// series may hold past it.
fn the_limit(e: QueryError, max: u64) -> QueryError {
    match e {
        QueryError::TooManyPoints { requested, .. } => QueryError::TooManyPoints {
            limit: max,
            requested,
        },
        e => e,
    }
}

/// emoncms's automatic interval: about 800 points when none (or one below 1 s) is given.
fn auto_interval(interval: Interval, start: i64, end: i64) -> Interval {
    match interval {
        Interval::Seconds(i) if i < 1 => {
            Interval::Seconds(php_round((end - start) as f64 / 800.0, 0) as i64)
        }
        other => other,
    }
}

/// emoncms's checks of a numeric interval: at least 1 s, and no more points than allowed.
fn check_interval(interval: Interval, start: i64, end: i64, max: u64) -> Result<(), QueryError> {
    if let Interval::Seconds(i) = interval {
        if i < 1 {
            return Err(QueryError::InvalidInterval);
        }
        let requested = php_round((end - start) as f64 / i as f64, 0) as i64;
        if requested > max as i64 {
            return Err(QueryError::TooManyPoints {
                limit: max,
                requested,
            });
        }
    }
    Ok(())
}

/// Rounds a value as `dp` asks (PHP's `round`).
pub fn round_dp(x: f64, dp: i32) -> f64 {
    php_round(x, dp)
}

/// PHP's `round($x, $places)`: half away from zero, after pre-rounding to 15 significant
/// digits so that e.g. `round(1.005, 2)` is 1.01 as in PHP, not 1.0 as plain binary gives.
fn php_round(x: f64, places: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let places = places.clamp(-15, 15);
    let f = 10f64.powi(places.abs());
    let scaled = if places >= 0 { x * f } else { x / f };
    let pre: f64 = format!("{scaled:.14e}").parse().unwrap_or(scaled);
    let r = pre.round();
    let out = if places >= 0 { r / f } else { r * f };
    if out.is_finite() { out } else { x }
}

fn local_to_utc(tz: Tz, naive: NaiveDateTime) -> Option<i64> {
    let r = tz.from_local_datetime(&naive);
    r.earliest()
        .or_else(|| r.latest())
        // A DST gap swallowed this local time: take the first instant after it.
        .or_else(|| {
            let later = naive.checked_add_signed(ChronoDuration::hours(1))?;
            tz.from_local_datetime(&later).earliest()
        })
        .map(|d| d.timestamp())
}

fn local_date(t: i64, tz: Tz) -> NaiveDate {
    tz.timestamp_opt(t, 0)
        .single()
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

/// The start of the local day (midnight, or the first instant after a DST gap) containing
/// `t`, in `tz`: emoncms's `getstartday`, used by the daily processes.
pub fn day_start(t: i64, tz: Tz) -> i64 {
    midnight(local_date(t.clamp(-TIME_LIMIT, TIME_LIMIT), tz), tz)
}

fn midnight(d: NaiveDate, tz: Tz) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .and_then(|n| local_to_utc(tz, n))
        .unwrap_or_default()
}

/// The first Monday on or after `d` (PHP's `this monday`).
fn this_monday(d: NaiveDate) -> NaiveDate {
    let ahead = (7 - d.weekday().num_days_from_monday()) % 7;
    d + ChronoDuration::days(i64::from(ahead))
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn add_months(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(n)).unwrap_or(d)
}

/// The period boundary at or before (after, for weekly: PHP moves forward) `t`.
fn align(c: Calendar, t: i64, tz: Tz) -> i64 {
    let d = local_date(t, tz);
    let d = match c {
        Calendar::Daily => d,
        Calendar::Weekly => this_monday(d),
        Calendar::Monthly => first_of_month(d),
        Calendar::Annual => NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d),
    };
    midnight(d, tz)
}

/// The boundary one period after the boundary `t`.
#[cfg(test)]
fn advance(c: Calendar, t: i64, tz: Tz) -> i64 {
    midnight(next_date(c, local_date(t, tz)), tz)
}

/// The local date one period after `d`.
fn next_date(c: Calendar, d: NaiveDate) -> NaiveDate {
    match c {
        Calendar::Daily => d + ChronoDuration::days(1),
        Calendar::Weekly => d + ChronoDuration::days(7),
        Calendar::Monthly => add_months(d, 1),
        Calendar::Annual => add_months(d, 12),
    }
}

/// `delta` needs the period after `end` to compute the last difference.
fn delta_end(c: Calendar, end: i64, tz: Tz) -> i64 {
    let tomorrow = local_date(end, tz) + ChronoDuration::days(1);
    let d = match c {
        Calendar::Daily => tomorrow,
        Calendar::Weekly => this_monday(tomorrow + ChronoDuration::days(1)),
        Calendar::Monthly => first_of_month(add_months(tomorrow, 1)),
        Calendar::Annual => NaiveDate::from_ymd_opt(tomorrow.year() + 1, 1, 1).unwrap_or(tomorrow),
    };
    midnight(d, tz)
}

/// The windows `[from, to)` of a request, starts up to and including `end`; more than `cap`
/// is refused with emoncms's datapoint-limit error rather than allocated.
fn windows(
    start: i64,
    end: i64,
    interval: Interval,
    tz: Tz,
    cap: u64,
) -> Result<Vec<(i64, i64)>, QueryError> {
    windows_take(start, end, interval, tz, cap, usize::MAX)
}

/// [`windows`], stopping quietly after the first `take` (a piece of a long CSV download).
fn windows_take(
    start: i64,
    end: i64,
    interval: Interval,
    tz: Tz,
    cap: u64,
    take: usize,
) -> Result<Vec<(i64, i64)>, QueryError> {
    let too_many = |requested: i64| QueryError::TooManyPoints {
        limit: cap,
        requested,
    };
    let mut out = Vec::new();
    match interval {
        Interval::Seconds(i) => {
            let i = i.max(1);
            let count = (end - start).div_euclid(i) + 1;
            if count > cap as i64 {
                return Err(too_many(count));
            }
            out.reserve((count.max(0) as usize).min(take));
            let mut t = start;
            while t <= end && out.len() < take {
                out.push((t, t + i));
                t += i;
            }
        }
        Interval::Calendar(c) => {
            // Walking local dates costs one time-zone conversion per period (a boundary's
            // local date is the date it was made from).
            let mut t = align(c, start, tz);
            let mut d = local_date(t, tz);
            while t <= end && out.len() < take {
                d = next_date(c, d);
                let next = midnight(d, tz);
                if next <= t {
                    break;
                }
                if out.len() as u64 >= cap {
                    return Err(too_many(out.len() as i64 + 1));
                }
                out.push((t, next));
                t = next;
            }
        }
        Interval::Original => {}
    }
    Ok(out)
}

fn fixed_series(
    f: &FixedFeed,
    start: i64,
    end: i64,
    interval: Interval,
    req: &DataRequest,
    cap: u64,
) -> Result<Vec<(i64, Option<f64>)>, QueryError> {
    Ok(fixed_piece(f, start, end, interval, req, cap, usize::MAX)?.points)
}

/// Up to `take` windows of a series from `start`, and where the next piece starts.
struct Piece {
    points: Vec<(i64, Option<f64>)>,
    /// The start of the window after the last one, when `take` windows were made.
    next: Option<i64>,
    /// A variable feed's averaging state at `next` (see [`variable_series_in`]).
    held: Held,
    /// Records of a variable feed read for the piece.
    records: u64,
}

/// A variable feed's record read but not yet counted, and whether it may count.
type Held = Option<(f32, bool)>;

/// Where the series goes on after `wins` (`take` of them were asked for).
fn next_start(wins: &[(i64, i64)], take: usize) -> Option<i64> {
    (wins.len() >= take)
        .then(|| wins.last().map(|w| w.1))
        .flatten()
}

/// [`fixed_series`] in pieces: each window's value depends on the window alone, so a piece
/// that starts at a window's start gives what the whole series gives there.
fn fixed_piece(
    f: &FixedFeed,
    start: i64,
    end: i64,
    interval: Interval,
    req: &DataRequest,
    cap: u64,
    take: usize,
) -> Result<Piece, QueryError> {
    let meta = f.meta();
    let (s, fi, n) = (
        i64::from(meta.start_time),
        i64::from(meta.interval),
        meta.npoints as i64,
    );
    let end_time = meta.end_time() as i64;
    let mut average = req.average;
    let interval = match interval {
        Interval::Original => Interval::Seconds(fi),
        Interval::Seconds(mut i) => {
            i = i.max(1);
            if req.limitinterval {
                i = i.max(fi);
                i = php_round(i as f64 / fi as f64, 0) as i64 * fi;
            }
            if i <= fi {
                average = false;
            }
            Interval::Seconds(i)
        }
        c => c,
    };
    let wins = windows_take(start, end, interval, req.tz, cap, take)?;
    let next = next_start(&wins, take);
    let pos = |t: i64| (t - s).div_euclid(fi);
    // Each window's point straight into the reply (no list of values first: a year graph's
    // 1,000 windows are copied once).
    let mut out = Vec::with_capacity(wins.len());
    let mut keep = |t: i64, v: Option<f64>| {
        if v.is_some() || !req.skipmissing {
            out.push((t, v));
        }
    };
    if n == 0 {
        for &(t, _) in &wins {
            keep(t, None);
        }
    } else if average {
        let clamp = |p: i64| p.clamp(0, n) as u64;
        // Each window starts where the last ended: one division per boundary, not two.
        let mut last: Option<(i64, u64)> = None;
        let ranges: Vec<(u64, u64)> = wins
            .iter()
            .map(|&(a, b)| {
                let from = match last {
                    Some((t, p)) if t == a => p,
                    _ => clamp(pos(a)),
                };
                let to = clamp(pos(b));
                last = Some((b, to));
                (from, to)
            })
            .collect();
        for (&(t, _), (sum, count)) in wins.iter().zip(f.sum_windows(&ranges)?) {
            keep(t, (count > 0).then(|| sum / count as f64));
        }
    } else {
        let wanted: Vec<Option<u64>> = wins
            .iter()
            .map(|&(t, _)| (s <= t && t <= end_time).then(|| pos(t) as u64))
            .collect();
        let present: Vec<u64> = wanted.iter().flatten().copied().collect();
        let mut read = f.read_each(&present)?.into_iter();
        for (&(t, _), w) in wins.iter().zip(wanted) {
            keep(
                t,
                match w {
                    Some(_) => read.next().filter(|v| !v.is_nan()).map(f64::from),
                    None => None,
                },
            );
        }
    }
    Ok(Piece {
        points: out,
        next,
        held: None,
        records: 0,
    })
}

fn variable_series(
    f: &VariableFeed,
    start: i64,
    end: i64,
    interval: Interval,
    req: &DataRequest,
    cap: u64,
) -> Result<Piece, QueryError> {
    variable_series_in(f, start, end, interval, req, cap, CHUNK, usize::MAX, None)
}

/// [`variable_series`], reading `chunk` records at a time, up to `take` windows. A piece that
/// goes on from an earlier one starts at its `next` with its `held` (`resume`), and so
/// averages exactly as the whole series would.
#[allow(clippy::too_many_arguments)]
fn variable_series_in(
    f: &VariableFeed,
    start: i64,
    end: i64,
    interval: Interval,
    req: &DataRequest,
    cap: u64,
    chunk: usize,
    take: usize,
    resume: Option<Held>,
) -> Result<Piece, QueryError> {
    let interval = match interval {
        Interval::Seconds(i) => Interval::Seconds(i.max(1)),
        // emoncms's PHPTimeSeries reads nothing for `original` (its loop does not run for it,
        // and no limit applies to a word): the answer is empty.
        Interval::Original => {
            return Ok(Piece {
                points: Vec::new(),
                next: None,
                held: None,
                records: 0,
            });
        }
        c => c,
    };
    let wins = windows_take(start, end, interval, req.tz, cap, take)?;
    let next = next_start(&wins, take);
    let (Some(first), Some(last)) = (wins.first(), wins.last()) else {
        return Ok(Piece {
            points: Vec::new(),
            next: None,
            held: None,
            records: 0,
        });
    };
    let clamp = |t: i64| t.clamp(0, i64::from(u32::MAX)) as u32;
    // Without averaging, each window reads from its start to its first record: a chunk of
    // that size at a window start, not a whole chunk (a coarse series over a dense feed
    // would otherwise read all of it).
    let chunk = if req.average {
        chunk
    } else {
        chunk.min(SPARSE_CHUNK)
    };
    // A piece that ends before the series does reads one record past its last window, as
    // the whole series would, to know where that window's last record belongs.
    let mut recs = Records::new(f, clamp(first.0), clamp(last.1), chunk, req.max_records)?;
    let mut held: Held = None;
    let mut out = Vec::with_capacity(wins.len());
    if req.average {
        // emoncms's averaging window ends at the last record *before* the first record at or
        // after the window's end, unless that record is exactly at the end: a record just
        // before a boundary counts in the next window. Reproduced for identical answers, with
        // the newest record read *held* until the next one shows which window it belongs to.
        // Records before `start` are not averaged, but when the first window is empty and the
        // next record lies past its end, emoncms's index steps back and the last of them counts
        // in the second window: it is held, marked not to count unless that happens.
        while let Some(r) = recs.peek()?
            && i64::from(r.0) < start
        {
            held = Some((r.1, false));
            recs.advance();
        }
        if let Some(h) = resume {
            held = h;
        }
        for &(a, b) in &wins {
            let mut acc = Mean::default();
            while let Some(r) = recs.peek()?
                && i64::from(r.0) < b
            {
                if let Some((v, true)) = held {
                    acc.add(v);
                }
                held = Some((r.1, true));
                recs.advance();
            }
            match recs.peek()? {
                Some(r) if i64::from(r.0) > b => {
                    if let Some(h) = held.as_mut() {
                        h.1 = true;
                    }
                }
                _ => {
                    if let Some((v, true)) = held.take() {
                        acc.add(v);
                    }
                }
            }
            let value = acc.value();
            if value.is_some() || !req.skipmissing {
                out.push((a, value));
            }
        }
    } else {
        for &(a, b) in &wins {
            recs.skip_before(a)?;
            let value = recs
                .peek()?
                .filter(|r| i64::from(r.0) < b && !r.1.is_nan())
                .map(|r| f64::from(r.1));
            if value.is_some() || !req.skipmissing {
                out.push((a, value));
            }
        }
    }
    Ok(Piece {
        points: out,
        next,
        held,
        records: recs.read,
    })
}

/// Records a variable feed's series walks, in time order: the last one before `from`, those
/// from `from` to `to`, and the first one after `to` (emoncms's averaging reaches one record
/// past each end). The middle is read a chunk at a time, so a request over a long, dense
/// feed holds [`CHUNK`] records, not the whole range (10 years of 10 s data is 31.5 million).
struct Records<'a> {
    f: &'a VariableFeed,
    buf: Vec<(u32, f32)>,
    pos: usize,
    /// Where the next chunk of the middle starts; `None` once it is read.
    next: Option<u32>,
    to: u32,
    /// The record after `to` is still to be read.
    after: bool,
    chunk: usize,
    /// Records read from the middle so far, and the most that may be.
    read: u64,
    limit: u64,
}

/// Records per chunk: 512 KiB in memory.
const CHUNK: usize = 1 << 16;
/// Records per chunk of a series without averaging, which needs each window's first only.
const SPARSE_CHUNK: usize = 256;

impl<'a> Records<'a> {
    fn new(
        f: &'a VariableFeed,
        from: u32,
        to: u32,
        chunk: usize,
        limit: u64,
    ) -> Result<Self, StorageError> {
        let buf = f.last_before(from)?.into_iter().collect();
        Ok(Self {
            f,
            buf,
            pos: 0,
            next: Some(from),
            to,
            after: true,
            chunk,
            read: 0,
            limit,
        })
    }

    /// The next record, read from the file if needed; `None` at the end. Reading past the
    /// limit of records fails.
    fn peek(&mut self) -> Result<Option<(u32, f32)>, QueryError> {
        while self.pos == self.buf.len() {
            self.pos = 0;
            self.buf.clear();
            if let Some(from) = self.next {
                let (chunk, next) = self.f.read_chunk(from, self.to, self.chunk)?;
                self.read += chunk.len() as u64;
                if self.read > self.limit {
                    return Err(QueryError::TooManyRecords { limit: self.limit });
                }
                self.buf = chunk;
                self.next = next;
            } else if self.after {
                self.after = false;
                self.buf.extend(self.f.first_after(self.to)?);
            } else {
                return Ok(None);
            }
        }
        Ok(self.buf.get(self.pos).copied())
    }

    fn advance(&mut self) {
        self.pos += 1;
    }

    /// Moves past every record before `t`; a chunk read that would lie wholly before it is
    /// not made (a coarse series over a dense feed reads near its window starts only).
    fn skip_before(&mut self, t: i64) -> Result<(), QueryError> {
        loop {
            if self.buf.last().is_some_and(|r| i64::from(r.0) < t) {
                self.pos = self.buf.len();
            }
            if self.pos == self.buf.len()
                && let Some(from) = self.next
                && i64::from(from) < t
            {
                self.next = u32::try_from(t).ok();
            }
            match self.peek()? {
                Some(r) if i64::from(r.0) < t => self.advance(),
                _ => return Ok(()),
            }
        }
    }
}

/// A mean of the values that are not missing, summed in the order they come.
#[derive(Default)]
struct Mean {
    sum: f64,
    n: u64,
}

impl Mean {
    fn add(&mut self, v: f32) {
        if !v.is_nan() {
            self.sum += f64::from(v);
            self.n += 1;
        }
    }

    fn value(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// emoncms's delta: a missing right-hand value is taken from the feed's last value when that
/// falls inside the window; each value becomes next minus current; the last point goes.
fn delta(
    mut points: Vec<(i64, Option<f64>)>,
    last: Option<(i64, Option<f64>)>,
) -> Vec<(i64, Option<f64>)> {
    for i in 0..points.len().saturating_sub(1) {
        if points[i + 1].1.is_none()
            && let Some((lt, lv)) = last
            && points[i].0 < lt
            && lt <= points[i + 1].0
        {
            points[i + 1].1 = lv;
        }
        points[i].1 = match (points[i].1, points[i + 1].1) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
    }
    points.pop();
    points
}

/// The feed's last time and value.
pub fn last_value(feed: &Feed) -> Result<Option<(i64, Option<f64>)>, StorageError> {
    Ok(match feed {
        Feed::Fixed(f) => f.last_value()?.map(|(t, v)| (t as i64, v.map(f64::from))),
        Feed::Variable(f) => f
            .last_value()?
            .map(|(t, v)| (i64::from(t), v.map(f64::from))),
    })
}

/// The value at time `t`: a fixed feed's nearest slot (rounded, as emoncms), a variable feed's
/// first record at or after `t`.
pub fn value_at(feed: &Feed, t: i64) -> Result<Option<f64>, StorageError> {
    match feed {
        Feed::Fixed(f) => {
            let m = f.meta();
            if m.npoints == 0 {
                return Ok(None);
            }
            let t = t.clamp(-TIME_LIMIT, TIME_LIMIT);
            let pos = php_round(
                (t - i64::from(m.start_time)) as f64 / f64::from(m.interval),
                0,
            ) as i64;
            if pos < 0 || pos >= m.npoints as i64 {
                return Ok(None);
            }
            let v = f.read_slots(pos as u64, pos as u64 + 1)?;
            Ok(v.first().filter(|v| !v.is_nan()).map(|&v| f64::from(v)))
        }
        Feed::Variable(f) => {
            let Ok(t) = u32::try_from(t.max(0)) else {
                return Ok(None);
            };
            let found = f.read_range(t, t)?.into_iter().next().or(f.first_after(t)?);
            Ok(found.filter(|r| !r.1.is_nan()).map(|r| f64::from(r.1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series as computed before it was read in chunks: the whole range in memory.
    fn variable_series_whole(
        f: &VariableFeed,
        start: i64,
        end: i64,
        interval: Interval,
        req: &DataRequest,
    ) -> Vec<(i64, Option<f64>)> {
        let interval = match interval {
            Interval::Seconds(i) => Interval::Seconds(i.max(1)),
            Interval::Original => Interval::Seconds(1),
            c => c,
        };
        let wins = windows(start, end, interval, req.tz, 100_000).expect("windows");
        let (Some(first), Some(last)) = (wins.first(), wins.last()) else {
            return Vec::new();
        };
        let clamp = |t: i64| t.clamp(0, i64::from(u32::MAX)) as u32;
        let last_end = clamp(last.1);
        let mut recs = Vec::new();
        recs.extend(f.last_before(clamp(first.0)).expect("read"));
        recs.extend(f.read_range(clamp(first.0), last_end).expect("read"));
        recs.extend(f.first_after(last_end).expect("read"));
        let lower = |t: i64| recs.partition_point(|r| i64::from(r.0) < t);
        let mean = |vals: &[(u32, f32)]| {
            let mut m = Mean::default();
            vals.iter().for_each(|r| m.add(r.1));
            m.value()
        };
        let mut out = Vec::new();
        let mut sd = lower(start);
        for &(a, b) in &wins {
            let value = if req.average {
                let mut nd = lower(b);
                if nd < recs.len() && i64::from(recs[nd].0) > b {
                    nd = nd.saturating_sub(1);
                }
                let v = if sd < nd { mean(&recs[sd..nd]) } else { None };
                sd = nd;
                v
            } else {
                recs.get(lower(a))
                    .filter(|r| i64::from(r.0) < b && !r.1.is_nan())
                    .map(|r| f64::from(r.1))
            };
            if value.is_some() || !req.skipmissing {
                out.push((a, value));
            }
        }
        out
    }

    /// Points from `start` on, each `gap` seconds after the one before.
    fn after_gaps(start: u32, gaps: &[(u32, Option<f32>)]) -> Vec<(i64, Option<f64>)> {
        let mut t = start;
        gaps.iter()
            .map(|&(g, v)| {
                t += g;
                (i64::from(t), v.map(f64::from))
            })
            .collect()
    }

    /// A CSV download in pieces of `lines`, joined.
    fn csv_in_pieces(feed: &Feed, req: &DataRequest, lines: usize) -> String {
        let mut export = CsvExport::new(req).expect("request");
        let mut out = String::new();
        while let Some(p) = export.piece(feed, lines).expect("piece") {
            out.push_str(&p);
        }
        assert!(export.done());
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// A CSV download written in pieces is the download written at once, for both kinds
        /// of feed, averaged or not, on fixed and calendar intervals in a zone with DST.
        #[test]
        fn csv_in_pieces_equals_csv_at_once(
            gaps in proptest::collection::vec((1u32..30_000, proptest::option::weighted(0.9, -50f32..50.0)), 1..80),
            start in 1_700_000_000i64..1_700_400_000,
            span in 1i64..2_000_000,
            step in 0i64..200_000,
            calendar in proptest::option::weighted(0.3, 0usize..4),
            average in proptest::bool::ANY,
            skipmissing in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let points = after_gaps(1_700_000_000u32, &gaps);
            let mut fixed = FixedFeed::create(dir.path(), 1, 600, 600).expect("create");
            fixed.write(&points, false).expect("write");
            let mut variable = VariableFeed::create(dir.path(), 2).expect("create");
            variable.write(&points);
            let feeds = [Feed::Fixed(fixed), Feed::Variable(variable)];
            let interval = match calendar {
                Some(c) => Interval::Calendar(
                    [Calendar::Daily, Calendar::Weekly, Calendar::Monthly, Calendar::Annual][c],
                ),
                None => Interval::Seconds(step),
            };
            let req = DataRequest {
                average,
                skipmissing,
                timeformat: "unix".into(),
                tz: chrono_tz::Europe::London,
                ..DataRequest::new(start, start + span, interval)
            };
            for feed in &feeds {
                let whole = csv(feed, &req).expect("csv");
                for lines in [1, 2, 5, 64] {
                    proptest::prop_assert_eq!(&csv_in_pieces(feed, &req, lines), &whole, "pieces of {}", lines);
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Reading a variable feed in chunks answers exactly what reading the whole range did,
        /// for every chunk size, with points on disk and unflushed, gaps and missing values.
        #[test]
        fn variable_series_in_chunks_equals_the_whole_range(
            gaps in proptest::collection::vec((1u32..40, proptest::option::weighted(0.9, -50f32..50.0)), 0..120),
            flushed in 0usize..120,
            late in proptest::collection::vec((0u32..3000, proptest::option::of(-5f32..5.0)), 0..8),
            start in 900i64..3500,
            span in 1i64..3000,
            step in 1i64..400,
            average in proptest::bool::ANY,
            skipmissing in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut f = VariableFeed::create(dir.path(), 1).expect("create");
            let points = after_gaps(1000u32, &gaps);
            let cut = flushed.min(points.len());
            f.write(&points[..cut]);
            f.flush().expect("flush");
            f.write(&points[cut..]);
            // Unflushed points anywhere, some on the times of flushed ones.
            let late: Vec<(i64, Option<f64>)> = late
                .iter()
                .map(|&(t, v)| (i64::from(1000 + t), v.map(f64::from)))
                .collect();
            f.write(&late);
            let interval = Interval::Seconds(step);
            let req = DataRequest {
                average,
                skipmissing,
                ..DataRequest::new(start, start + span, interval)
            };
            let whole = variable_series_whole(&f, start, start + span, interval, &req);
            for chunk in [1, 2, 3, 7, 64, CHUNK] {
                let got = variable_series_in(&f, start, start + span, interval, &req, 100_000, chunk, usize::MAX, None)
                    .expect("series")
                    .points;
                proptest::prop_assert_eq!(&got, &whole, "chunk {}", chunk);
            }
        }
    }

    /// An average reads every record in its range, and a request may read at most its
    /// `max_records`; a series without averaging reads near its window starts only.
    #[test]
    fn variable_reads_are_held_to_their_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = VariableFeed::create(dir.path(), 1).expect("create");
        let points: Vec<(i64, Option<f64>)> = (0..100_000)
            .map(|k| (1_000 + 10 * k, Some(k as f64)))
            .collect();
        f.write(&points);
        f.flush().expect("flush");
        let feed = Feed::Variable(f);
        let (start, end) = (1_000, 1_000 + 10 * 100_000);
        let mut req = DataRequest::new(start, end, Interval::Seconds(100_000));
        req.average = true;
        let whole = data(&feed, &req).expect("average");
        assert!(whole.points.len() >= 10, "{}", whole.points.len());
        assert!(whole.records >= 100_000, "{}", whole.records);
        req.max_records = 50_000;
        assert!(matches!(
            data(&feed, &req),
            Err(QueryError::TooManyRecords { limit: 50_000 })
        ));
        req.average = false;
        let sparse = data(&feed, &req).expect("no average");
        assert_eq!(sparse.points.len(), whole.points.len());
        let windows = whole.points.len() as u64;
        assert!(
            sparse.records <= windows * SPARSE_CHUNK as u64,
            "{}",
            sparse.records
        );
        assert_eq!(sparse.points[1], (101_000, Some(10_000.0)));
    }

    #[test]
    fn interval_and_time_parsing() {
        assert_eq!(Interval::parse(None).expect("ok"), Interval::Seconds(0));
        assert_eq!(
            Interval::parse(Some("60")).expect("ok"),
            Interval::Seconds(60)
        );
        assert_eq!(
            Interval::parse(Some("1e8")).expect("ok"),
            Interval::Seconds(100_000_000)
        );
        assert_eq!(
            Interval::parse(Some("daily")).expect("ok"),
            Interval::Calendar(Calendar::Daily)
        );
        assert!(matches!(
            Interval::parse(Some("abc")),
            Err(QueryError::InvalidInterval)
        ));
        assert_eq!(parse_time("1699999200000", Tz::UTC, 0), Some(1_699_999_200));
        assert_eq!(parse_time("1699999200", Tz::UTC, 0), Some(1_699_999_200));
        assert_eq!(
            parse_time("2023-11-14 22:00:00", Tz::UTC, 0),
            Some(1_699_999_200)
        );
        assert_eq!(
            parse_time("2023-11-14 23:00:00", chrono_tz::Europe::Berlin, 0),
            Some(1_699_999_200)
        );
        assert_eq!(parse_time("next tuesday-ish", Tz::UTC, 0), None);
    }

    #[test]
    fn calendar_boundaries_follow_local_time_and_dst() {
        let london = chrono_tz::Europe::London;
        // 2023-03-26: clocks go forward; that day is 23 hours long.
        let day = align(Calendar::Daily, 1_679_800_000, london);
        assert_eq!(day, 1_679_788_800); // 2023-03-26 00:00 GMT
        assert_eq!(advance(Calendar::Daily, day, london) - day, 23 * 3600);
        // Sunday 2023-11-05 aligns forward to Monday 2023-11-06, as PHP's "this monday".
        assert_eq!(
            align(Calendar::Weekly, 1_699_142_400, Tz::UTC),
            1_699_228_800
        );
        assert_eq!(
            align(Calendar::Monthly, 1_696_291_200, Tz::UTC),
            1_696_118_400
        );
        assert_eq!(
            align(Calendar::Annual, 1_665_187_200, Tz::UTC),
            1_640_995_200
        );
    }

    #[test]
    fn php_rounding_and_number_format() {
        // CSV values: 0 and -0 compare loosely equal to null in PHP, and are written so.
        assert_eq!(csv_value(Some(0.0)), "null");
        assert_eq!(csv_value(Some(-0.0)), "null");
        assert_eq!(csv_value(None), "null");
        assert_eq!(csv_value(Some(0.004)), "0.00");
        assert_eq!(csv_value(Some(-1.005)), "-1.01");
        assert_eq!(php_round(1.005, 2), 1.01);
        assert_eq!(php_round(3297.5, 0), 3298.0);
        assert_eq!(php_round(-2.5, 0), -3.0);
        assert_eq!(php_round(1234.5678, -2), 1200.0);
        assert_eq!(php_round(1.5, 400), 1.5);
        assert_eq!(number_format_2(1000.125), "1000.13");
        assert_eq!(number_format_2(-0.001), "0.00");
        assert_eq!(number_format_2(1000.0), "1000.00");
    }

    /// emoncms refuses only when the rounded span over the interval passes the limit, and its
    /// loop then runs to the end inclusive: exactly 20,000 intervals give 20,001 points.
    #[test]
    fn the_datapoint_limit_is_emoncms_s() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let f = crate::fixed::FixedFeed::create(tmp.path(), 1, 10, 10).expect("create");
        let feed = Feed::Fixed(f);
        let t = 1_700_000_000;
        let r = DataRequest::new(t, t + 200_000, Interval::Seconds(10));
        assert_eq!(data(&feed, &r).expect("at the limit").points.len(), 20_001);
        let r = DataRequest::new(t, t + 200_004, Interval::Seconds(10));
        assert_eq!(data(&feed, &r).expect("rounds down").points.len(), 20_001);
        let r = DataRequest::new(t, t + 200_005, Interval::Seconds(10));
        assert!(matches!(
            data(&feed, &r),
            Err(QueryError::TooManyPoints {
                limit: 20_000,
                requested: 20_001
            })
        ));
        assert_eq!(
            grid(&DataRequest::new(t, t + 200_000, Interval::Seconds(10)))
                .expect("at the limit")
                .0
                .len(),
            20_001
        );
        // A calendar interval past the limit names the limit itself.
        let r = DataRequest::new(0, 60 * 366 * 86_400, Interval::Calendar(Calendar::Daily));
        assert!(matches!(
            data(&feed, &r),
            Err(QueryError::TooManyPoints { limit: 20_000, .. })
        ));
        assert!(matches!(
            grid(&r),
            Err(QueryError::TooManyPoints { limit: 20_000, .. })
        ));
    }

    /// A variable-interval feed asked for `original` answers nothing, as emoncms's
    /// PHPTimeSeries does (it has no interval of its own to read at).
    #[test]
    fn a_variable_feed_read_at_its_original_interval_is_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut f = VariableFeed::create(tmp.path(), 1).expect("create");
        f.write(&[(1_700_000_000, Some(1.0)), (1_700_000_010, Some(2.0))]);
        let feed = Feed::Variable(f);
        let r = DataRequest::new(1_699_999_990, 1_700_100_000, Interval::Original);
        assert_eq!(data(&feed, &r).expect("empty").points, Vec::new());
    }

    #[test]
    fn huge_ranges_and_intervals_are_refused_not_allocated() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let f = crate::fixed::FixedFeed::create(tmp.path(), 1, 10, 10).expect("create");
        let feed = Feed::Fixed(f);
        let mut r = DataRequest::new(-(1 << 62), 1 << 62, Interval::Seconds(1));
        assert!(matches!(
            data(&feed, &r),
            Err(QueryError::TooManyPoints { .. })
        ));
        r.interval = Interval::parse(Some("1e19")).expect("interval");
        assert_eq!(data(&feed, &r).expect("few windows").points.len(), 5);
        r.interval = Interval::Original;
        assert!(matches!(
            data(&feed, &r),
            Err(QueryError::TooManyPoints { .. })
        ));
        r.interval = Interval::Calendar(Calendar::Daily);
        assert!(matches!(
            data(&feed, &r),
            Err(QueryError::TooManyPoints { .. })
        ));
        r.interval = Interval::Seconds(1);
        assert!(matches!(
            csv(&feed, &r),
            Err(QueryError::TooManyPoints { .. })
        ));
        assert_eq!(value_at(&feed, i64::MIN).expect("value"), None);
    }

    #[test]
    fn grid_resolves_intervals_like_data() {
        let r = DataRequest::new(1_700_000_000, 1_700_008_000, Interval::Seconds(0));
        let (times, interval, format) = grid(&r).expect("grid");
        assert_eq!(
            (interval, format),
            (Interval::Seconds(10), TimeFormat::UnixMs),
            "about 800 points"
        );
        assert_eq!(times.len(), 801);
        let r = DataRequest::new(
            1_699_747_200,
            1_700_092_800,
            Interval::Calendar(Calendar::Daily),
        );
        assert_eq!(grid(&r).expect("grid").0.len(), 5);
        let r = DataRequest::new(0, 1 << 30, Interval::Seconds(1));
        assert!(matches!(grid(&r), Err(QueryError::TooManyPoints { .. })));
        let r = DataRequest::new(0, 100, Interval::Original);
        assert!(matches!(grid(&r), Err(QueryError::InvalidInterval)));
        let r = DataRequest::new(100, 100, Interval::Seconds(10));
        assert!(matches!(grid(&r), Err(QueryError::EndBeforeStart)));
    }

    #[test]
    fn time_formats() {
        let t = 1_699_999_200;
        assert_eq!(
            render_time(t, TimeFormat::UnixMs, Tz::UTC),
            Some(TimeValue::Int(t * 1000))
        );
        assert_eq!(
            render_time(t, TimeFormat::Excel, Tz::UTC),
            Some(TimeValue::Text("14/11/2023 22:00:00".into()))
        );
        assert_eq!(
            render_time(t, TimeFormat::Iso8601, Tz::UTC),
            Some(TimeValue::Text("2023-11-14T22:00:00+00:00".into()))
        );
        assert_eq!(render_time(t, TimeFormat::NoTime, Tz::UTC), None);
    }

    #[test]
    fn delta_uses_the_last_value_inside_the_final_window() {
        let pts = vec![(0, Some(1.0)), (10, Some(3.0)), (20, None)];
        assert_eq!(
            delta(pts.clone(), Some((15, Some(4.0)))),
            vec![(0, Some(2.0)), (10, Some(1.0))]
        );
        assert_eq!(delta(pts, None), vec![(0, Some(2.0)), (10, None)]);
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config(24))]

        /// `feed/data` with `average=1`, over any range and interval (the averaged levels
        /// answer the long windows), equals the plain mean of each window's values present.
        #[test]
        fn averaged_data_equals_the_plain_mean_of_each_window(
            values in proptest::collection::vec(
                proptest::option::weighted(0.7, -1000f64..1000f64), 1..12_000),
            start_slot in 0i64..3_000,
            span in 1i64..12_000,
            window in 1i64..3_000,
        ) {
            const T0: i64 = 1_699_999_200;
            let dir = tempfile::tempdir().expect("tempdir");
            let mut f = FixedFeed::create(dir.path(), 1, 10, 10).expect("create");
            let points: Vec<(i64, Option<f64>)> =
                values.iter().enumerate().map(|(k, v)| (T0 + k as i64 * 10, *v)).collect();
            f.write(&points, false).expect("write");
            f.flush().expect("flush");
            let feed = Feed::Fixed(f);
            let start = T0 + start_slot * 10;
            let end = start + span * 10;
            let mut req = DataRequest::new(start, end, Interval::Seconds(window * 10));
            req.average = true;
            let got = data(&feed, &req).expect("data").points;
            let Feed::Fixed(f) = &feed else { unreachable!() };
            let slots = f.read_slots(0, f.npoints()).expect("read");
            for (t, v) in got {
                let from = ((t - T0) / 10).max(0) as usize;
                let to = (((t - T0) / 10 + window).max(0) as usize).min(slots.len());
                let present: Vec<f64> = slots.get(from.min(to)..to).unwrap_or(&[])
                    .iter().filter(|x| !x.is_nan()).map(|x| f64::from(*x)).collect();
                let want = (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64);
                match (v, want) {
                    (Some(a), Some(b)) => proptest::prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "at {}: {} vs {}", t, a, b),
                    (a, b) => proptest::prop_assert_eq!(a, b, "at {}", t),
                }
            }
        }
    }
}
