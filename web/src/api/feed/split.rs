//! `feed/data` with `split`: a feed's values at hour offsets after each local day, week or
//! month start, as emoncms's `get_data_DMY_time_of_day` answers them (feed_model.php and the
//! PHPFina engine). The reply is `[[time,[v1,v2,…]],…]`, times in the requested format.
//!
//! emoncms's order of checks per feed: the end must follow the start; the engine must be
//! PHPFina (or MySQL, whose interpolating version ynni has not built: 501); then the engine
//! answers `false` unless the interval is `daily`, `weekly` or `monthly` and `split` decodes
//! to a JSON list of at most 48 entries. Each entry is read with PHP's `(float)` cast and
//! turned into whole seconds as emoncms does (`(int)(h * 3600.0)`).

use serde_json::Value;
use ynni_core::catalog::FeedRow;
use ynni_ingest::decode::numbers::php_float_cast;
use ynni_ingest::shard::{FeedAnswer, FeedOp};
use ynni_storage::Engine;
use ynni_storage::query::{
    self, Calendar, DEFAULT_MAX_DATAPOINTS, MAX_SPLITS, SplitRequest, SplitRow,
};

use super::{Call, engine, run};
use crate::error::ApiError;

/// One feed's answer.
pub(super) enum Answer {
    Rows(Vec<SplitRow>),
    /// The engine's `false`: an interval it does not split or a `split` it cannot read.
    False,
    /// emoncms's refusal for an engine without time-of-use reads.
    WrongEngine,
}

/// The request's parameters once read.
pub(super) struct Wanted {
    pub start: i64,
    pub end: i64,
    pub tz: chrono_tz::Tz,
    /// `None` when the interval is not one the engine splits.
    pub calendar: Option<Calendar>,
    /// `None` when `split` is not a list of at most [`MAX_SPLITS`] entries.
    pub offsets: Option<Vec<i64>>,
}

impl Wanted {
    pub(super) fn new(
        start: i64,
        end: i64,
        tz: chrono_tz::Tz,
        interval: &str,
        split: &str,
    ) -> Self {
        let calendar = match interval {
            "daily" => Some(Calendar::Daily),
            "weekly" => Some(Calendar::Weekly),
            "monthly" => Some(Calendar::Monthly),
            _ => None,
        };
        Self {
            start,
            end,
            tz,
            calendar,
            offsets: offsets(split),
        }
    }

    /// The values one reply may hold for one feed: rows times offsets.
    pub(super) fn width(&self) -> usize {
        self.offsets.as_ref().map_or(0, Vec::len)
    }
}

/// The offsets in seconds of a `split` text, or `None` where emoncms's engine answers false.
fn offsets(text: &str) -> Option<Vec<i64>> {
    let Ok(Value::Array(hours)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if hours.len() > MAX_SPLITS {
        return None;
    }
    // `as` saturates where PHP's cast of an out-of-range float is undefined.
    Some(
        hours
            .iter()
            .map(|h| (php_float(h) * 3600.0) as i64)
            .collect(),
    )
}

/// PHP's `(float)` of a decoded JSON value.
fn php_float(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => php_float_cast(s),
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Null => 0.0,
        Value::Array(a) => f64::from(u8::from(!a.is_empty())),
        // PHP warns and gives 1 for an object.
        Value::Object(_) => 1.0,
    }
}

/// Reads one feed the caller may read.
pub(super) async fn read(
    call: &Call<'_>,
    row: &FeedRow,
    want: &Wanted,
    max_values: usize,
) -> Result<Answer, ApiError> {
    if want.end <= want.start {
        return Err(ApiError::fail(query::QueryError::EndBeforeStart));
    }
    match engine(row) {
        Some(Engine::Fixed) => {}
        Some(Engine::Mysql) => {
            return Err(ApiError::NotImplemented(
                "feed/data with split on a MySQL-engine feed".into(),
            ));
        }
        _ => return Ok(Answer::WrongEngine),
    }
    let (Some(calendar), Some(offsets)) = (want.calendar, want.offsets.clone()) else {
        return Ok(Answer::False);
    };
    let req = SplitRequest {
        start: want.start,
        end: want.end,
        calendar,
        offsets,
        tz: want.tz,
        max_rows: DEFAULT_MAX_DATAPOINTS,
        max_values: max_values as u64,
    };
    let op = FeedOp::Split {
        id: row.id as u32,
        req: Box::new(req),
    };
    match run(call, row, op).await? {
        FeedAnswer::Split(rows) => Ok(Answer::Rows(rows)),
        _ => Ok(Answer::Rows(Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_texts_are_read_as_emoncms_reads_them() {
        assert_eq!(offsets("[0,7,13.5]"), Some(vec![0, 25_200, 48_600]));
        // Strings are cast, with PHP's numeric prefix; null, false and empty lists are 0.
        assert_eq!(
            offsets(r#"["7","6.5h","x",null,false,true,[],[1],{}]"#),
            Some(vec![25_200, 23_400, 0, 0, 0, 3600, 0, 3600, 3600])
        );
        // (int) truncates toward zero.
        assert_eq!(offsets("[0.00001,-0.5]"), Some(vec![0, -1800]));
        assert_eq!(offsets("[]"), Some(vec![]));
        // Not a list, not JSON, or more than 48 entries: the engine's false.
        assert_eq!(offsets(r#"{"a":1}"#), None);
        assert_eq!(offsets("7"), None);
        assert_eq!(offsets("[1,"), None);
        let many = format!("[{}]", vec!["1"; 49].join(","));
        assert_eq!(offsets(&many), None);
        let most = format!("[{}]", vec!["1"; 48].join(","));
        assert_eq!(offsets(&most).map(|o| o.len()), Some(48));
    }

    #[test]
    fn only_daily_weekly_and_monthly_split() {
        let tz = chrono_tz::Tz::UTC;
        for (interval, ok) in [
            ("daily", true),
            ("weekly", true),
            ("monthly", true),
            ("annual", false),
            ("86400", false),
            ("", false),
        ] {
            assert_eq!(
                Wanted::new(0, 1, tz, interval, "[0]").calendar.is_some(),
                ok,
                "{interval}"
            );
        }
    }
}
