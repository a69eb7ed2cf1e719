//! Table-style tests of the process engine against a recording host.

use std::collections::HashMap;

use chrono_tz::Tz;

use super::catalog::Context;
use super::engine::{Host, Outcome, StateKind, run};
use crate::batch::Value;

#[derive(Default)]
struct Mock {
    tz: Option<Tz>,
    /// Points written per feed: (feed time, value, join).
    points: HashMap<u32, Vec<(i64, Value, bool)>>,
    last: HashMap<u32, (i64, Value)>,
    inputs: HashMap<u32, Value>,
    state: HashMap<(StateKind, u32), (i64, Value)>,
    published: Vec<(String, Value)>,
    sources: HashMap<u32, Value>,
    /// Feeds that exist but hold no data yet.
    empty_feeds: Vec<u32>,
}

impl Host for Mock {
    fn tz(&self) -> Tz {
        self.tz.unwrap_or(Tz::UTC)
    }
    fn feed_post(&mut self, feed: u32, update_time: i64, feed_time: i64, value: Value, join: bool) {
        self.points
            .entry(feed)
            .or_default()
            .push((feed_time, value, join));
        self.last.insert(feed, (update_time, value));
    }
    fn feed_last(&mut self, feed: u32) -> Option<(i64, Value)> {
        self.last.get(&feed).copied()
    }
    fn feed_exists(&mut self, feed: u32) -> bool {
        self.last.contains_key(&feed) || self.empty_feeds.contains(&feed)
    }
    fn input_last(&mut self, input: u32) -> Option<Value> {
        self.inputs.get(&input).copied()
    }
    fn state(&self, kind: StateKind, feed: u32) -> Option<(i64, Value)> {
        self.state.get(&(kind, feed)).copied()
    }
    fn set_state(&mut self, kind: StateKind, feed: u32, time: i64, value: Value) {
        self.state.insert((kind, feed), (time, value));
    }
    fn publish(&mut self, topic: &str, value: Value) {
        self.published.push((topic.to_string(), value));
    }
    fn source_value(&mut self, feed: u32) -> Value {
        self.sources.get(&feed).copied().flatten()
    }
}

const T: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

fn go(h: &mut Mock, list: &str, t: i64, v: Value) -> Value {
    match run(list, t, v, Context::Input, h) {
        Outcome::Done(v) => v,
        other => panic!("{list}: {other:?}"),
    }
}

fn vals(h: &Mock, feed: u32) -> Vec<(i64, Value)> {
    h.points
        .get(&feed)
        .map(|p| p.iter().map(|&(t, v, _)| (t, v)).collect())
        .unwrap_or_default()
}

fn close(a: Value, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn chain_scale_offset_log() {
    let mut h = Mock::default();
    assert_eq!(go(&mut h, "2:0.1,3:5,1:9", T, Some(100.0)), Some(15.0));
    assert_eq!(vals(&h, 9), vec![(T, Some(15.0))]);
    // A missing value stays missing through arithmetic and is logged as missing.
    assert_eq!(go(&mut h, "2:0.1,3:5,1:9", T + 10, None), None);
    assert_eq!(vals(&h, 9)[1], (T + 10, None));
    // Stored keys may be names; `log_to_feed_join` asks for a join.
    go(&mut h, "process__log_to_feed_join:4", T, Some(1.0));
    assert!(h.points[&4][0].2);
}

#[test]
fn power_to_kwh_integrates_and_ignores_long_gaps_and_duplicates() {
    let mut h = Mock::default();
    assert_eq!(go(&mut h, "4:1", T, Some(1000.0)), Some(1000.0));
    assert!(close(h.last[&1].1, 0.0));
    go(&mut h, "4:1", T + 10, Some(1800.0));
    assert!(close(h.last[&1].1, 0.005), "{:?}", h.last[&1]);
    // The same packet again (emonhub resend) adds nothing.
    go(&mut h, "4:1", T + 10, Some(1800.0));
    assert!(close(h.last[&1].1, 0.005));
    // A gap of 2 h or more adds nothing; the next reading after it integrates normally.
    go(&mut h, "4:1", T + 10 + 7200, Some(3600.0));
    assert!(close(h.last[&1].1, 0.005));
    go(&mut h, "4:1", T + 7210 + 3600, Some(1000.0));
    assert!(close(h.last[&1].1, 1.005));
    // A missing reading writes nothing.
    let n = h.points[&1].len();
    assert_eq!(go(&mut h, "4:1", T + 20000, None), None);
    assert_eq!(h.points[&1].len(), n);
    assert!(h.points[&1].iter().all(|p| p.2), "written with join");
}

#[test]
fn power_to_kwhd_restarts_at_local_midnight_including_dst_days() {
    let london: Tz = chrono_tz::Europe::London;
    let mut h = Mock {
        tz: Some(london),
        ..Default::default()
    };
    // 2023-03-26 is 23 hours long in London; local midnight 2023-03-27 is 1679871600 (23:00 UTC).
    let before = 1_679_871_600 - 60;
    go(&mut h, "5:2", before - 60, Some(3600.0));
    go(&mut h, "5:2", before, Some(3600.0));
    assert_eq!(
        vals(&h, 2).last().map(|p| p.0),
        Some(1_679_788_800),
        "2023-03-26 00:00 GMT"
    );
    assert!(close(vals(&h, 2).last().and_then(|p| p.1), 0.06));
    go(&mut h, "5:2", before + 120, Some(3600.0));
    let last = *vals(&h, 2).last().expect("point");
    assert_eq!(last.0, 1_679_871_600, "the new day starts at 00:00 BST");
    assert!(
        close(last.1, 0.12),
        "the increment since the last reading counts in the new day"
    );
}

#[test]
fn kwh_to_kwhd_ignores_meter_resets() {
    let mut h = Mock::default();
    let day = T - T.rem_euclid(86_400);
    go(&mut h, "23:3", T, Some(100.0));
    assert!(
        !h.points.contains_key(&3),
        "first reading only sets the reference"
    );
    go(&mut h, "23:3", T + 60, Some(100.5));
    assert_eq!(vals(&h, 3), vec![(day, Some(0.5))]);
    assert_eq!(
        go(&mut h, "23:3", T + 120, Some(3.0)),
        Some(100.5),
        "a reset passes the reference on"
    );
    assert!(close(h.last[&3].1, 0.5));
    go(&mut h, "23:3", T + 180, Some(101.0));
    assert!(close(h.last[&3].1, 1.0));
    // Next day starts from zero.
    go(&mut h, "23:3", day + 86_400 + 10, Some(102.0));
    assert_eq!(
        *vals(&h, 3).last().expect("point"),
        (day + 86_400, Some(1.0))
    );
}

#[test]
fn wh_and_kwh_accumulators_continue_through_resets_and_skip_spikes() {
    let mut h = Mock::default();
    assert_eq!(
        go(&mut h, "34:5", T, Some(1000.0)),
        Some(1000.0),
        "first call returns the input"
    );
    assert!(!h.points.contains_key(&5));
    // The feed is still empty: emoncms counts from time 0, so this first increase is kept.
    assert_eq!(go(&mut h, "34:5", T + 10, Some(1010.0)), Some(10.0));
    assert_eq!(
        go(&mut h, "34:5", T + 20, Some(5.0)),
        Some(10.0),
        "a reset adds nothing"
    );
    assert_eq!(
        go(&mut h, "34:5", T + 30, Some(15.0)),
        Some(20.0),
        "counting resumes"
    );
    // 10,000 Wh in 10 s is 3.6 MW: skipped.
    assert_eq!(go(&mut h, "34:5", T + 40, Some(10_015.0)), Some(20.0));
    let mut k = Mock::default();
    go(&mut k, "64:6", T, Some(50.0));
    k.last.insert(6, (T, Some(50.0)));
    assert_eq!(go(&mut k, "64:6", T + 3600, Some(51.5)), Some(51.5));
    assert_eq!(
        go(&mut k, "64:6", T + 3610, Some(100.0)),
        Some(51.5),
        "48.5 kWh in 10 s is skipped"
    );
}

#[test]
fn accumulator_ratechange_pulse_diff_kwh_to_power() {
    let mut h = Mock::default();
    assert_eq!(go(&mut h, "14:7", T, Some(2.0)), Some(2.0));
    assert_eq!(go(&mut h, "14:7", T + 10, Some(3.0)), Some(5.0));
    assert_eq!(
        go(&mut h, "14:7", T + 20, None),
        None,
        "a missing value adds and writes nothing"
    );
    assert_eq!(vals(&h, 7).len(), 2);
    assert_eq!(
        go(&mut h, "15:8", T, Some(10.0)),
        None,
        "first rate is missing"
    );
    assert_eq!(go(&mut h, "15:8", T + 10, Some(14.0)), Some(4.0));
    assert_eq!(vals(&h, 8), vec![(T + 10, Some(4.0))]);
    assert_eq!(
        go(&mut h, "20:9", T, Some(100.0)),
        Some(0.0),
        "no feed data yet"
    );
    assert_eq!(go(&mut h, "20:9", T + 10, Some(130.0)), Some(30.0));
    assert_eq!(
        go(&mut h, "20:9", T + 20, Some(-65526.0)),
        Some(10.0),
        "16-bit wrap: 10 is below 130"
    );
    assert_eq!(go(&mut h, "20:9", T + 30, Some(0.0)), None);
    assert_eq!(go(&mut h, "21:10", T, Some(1.0)), Some(0.0));
    assert!(close(go(&mut h, "21:10", T + 3600, Some(2.5)), 1500.0));
}

#[test]
fn conditionals_goto_and_loop_guard() {
    let mut h = Mock::default();
    assert_eq!(go(&mut h, "42:0,2:10", T, Some(0.0)), Some(0.0));
    assert_eq!(go(&mut h, "42:0,2:10", T, Some(1.0)), Some(10.0));
    // PHP loose comparison: a missing value equals 0 and is below any non-zero number.
    assert_eq!(go(&mut h, "42:0,33:0", T, None), None);
    assert_eq!(go(&mut h, "48:5,33:0", T, None), None, "null < 5 skips");
    assert_eq!(
        go(&mut h, "46:5,33:0", T, None),
        Some(0.0),
        "null > 5 is false"
    );
    assert_eq!(go(&mut h, "44:0,33:0", T, None), None);
    assert_eq!(go(&mut h, "45:0,33:0", T, Some(1.0)), Some(1.0));
    assert_eq!(go(&mut h, "47:5,3:1", T, Some(5.0)), Some(5.0));
    assert_eq!(go(&mut h, "49:5,3:1", T, Some(6.0)), Some(7.0));
    assert_eq!(go(&mut h, "50:5,3:1", T, Some(5.0)), Some(5.0));
    assert_eq!(go(&mut h, "51:5,3:1", T, Some(5.0)), Some(6.0));
    assert_eq!(
        go(&mut h, "52:3,2:100,3:1", T, Some(1.0)),
        Some(2.0),
        "goto step 3"
    );
    assert_eq!(
        run("3:1,52:1", T, Some(0.0), Context::Input, &mut h),
        Outcome::LoopGuard
    );
    assert_eq!(
        run("2:2,999:1,3:1", T, Some(1.0), Context::Input, &mut h),
        Outcome::Aborted {
            step: 1,
            key: "999".into()
        }
    );
    assert!(matches!(
        run("53:1", T, Some(1.0), Context::Input, &mut h),
        Outcome::Aborted { .. }
    ));
    assert_eq!(
        go(&mut h, "process__error_found:0,2:10", T, Some(1.0)),
        Some(1.0),
        "error_found stops the list"
    );
    // A user argument of 0 compares as the string "0": a missing value is below it, never equal.
    assert_eq!(
        go(&mut h, "50:0,33:0", T, None),
        Some(0.0),
        "null == \"0\" is false"
    );
    assert_eq!(go(&mut h, "48:0,33:0", T, None), None, "null < \"0\" skips");
    assert_eq!(go(&mut h, "62:0", T, None), Some(0.0));
    // A skipped step is neither counted nor looked up: a conditional that skips an unknown key
    // goes on, and this list runs its 10 steps without tripping the loop guard.
    assert_eq!(go(&mut h, "42:0,999:1,3:1", T, Some(0.0)), Some(1.0));
    assert_eq!(go(&mut h, "2:1,3:1,46:2,52:2,1:5", T, Some(0.0)), Some(3.0));
    // Retired processes pass the value through.
    assert_eq!(go(&mut h, "16:5,2:2", T, Some(4.0)), Some(8.0));
    assert_eq!(
        run("1:5,", T, Some(1.0), Context::Input, &mut h),
        Outcome::Aborted {
            step: 1,
            key: String::new()
        }
    );
}

#[test]
fn limits_and_resets() {
    let mut h = Mock::default();
    for (list, v, want) in [
        ("24:0", Some(-5.0), Some(0.0)),
        ("24:0", Some(5.0), Some(5.0)),
        ("25:0", Some(5.0), Some(0.0)),
        ("26:0", Some(-1.0), Some(65535.0)),
        ("61:100", Some(150.0), Some(100.0)),
        ("62:10", Some(5.0), Some(10.0)),
        ("63:0", Some(-4.5), Some(4.5)),
        ("33:0", Some(7.0), Some(0.0)),
        ("36:0", Some(7.0), None),
        ("2:3,37:0", Some(7.0), Some(7.0)),
        ("24:0", None, None),
    ] {
        assert_eq!(go(&mut h, list, T, v), want, "{list} {v:?}");
    }
}

#[test]
fn inputs_and_feeds_as_operands() {
    let mut h = Mock::default();
    h.inputs.insert(1, Some(4.0));
    h.inputs.insert(2, Some(0.0));
    h.inputs.insert(3, None);
    h.last.insert(5, (T, Some(2.0)));
    h.last.insert(6, (T, Some(0.0)));
    h.empty_feeds.push(7);
    for (list, v, want) in [
        ("6:1", Some(3.0), Some(12.0)),
        ("11:1", Some(3.0), Some(7.0)),
        ("22:1", Some(3.0), Some(-1.0)),
        ("12:1", Some(3.0), Some(0.75)),
        ("12:2", Some(3.0), None),
        ("6:3", Some(3.0), None),
        ("66:1", Some(9.0), Some(4.0)),
        ("67:1", Some(1.0), Some(4.0)),
        ("29:5", Some(1.0), Some(3.0)),
        ("30:5", Some(1.0), Some(-1.0)),
        ("31:5", Some(3.0), Some(6.0)),
        ("32:5", Some(3.0), Some(1.5)),
        ("32:6", Some(3.0), None),
        ("29:99", Some(3.0), Some(3.0)),
        ("68:5", Some(9.0), Some(2.0)),
        ("69:5", Some(1.0), Some(2.0)),
        // Loose null comparisons: capping by a missing last value gives missing; a missing
        // value is raised to a non-zero floor.
        ("66:3", Some(9.0), None),
        ("67:1", None, Some(4.0)),
        // An existing feed with no data is a missing operand (emoncms's test "add_feed null"),
        // but as a limit it is 0 (`max_feed`/`min_feed` multiply the feed's value by 1).
        ("29:7", Some(1.0), None),
        ("68:7", Some(9.0), Some(0.0)),
        ("68:7", Some(-9.0), Some(-9.0)),
        ("69:7", Some(-5.0), Some(0.0)),
        ("69:7", Some(5.0), Some(5.0)),
        ("68:7", None, None),
    ] {
        assert_eq!(go(&mut h, list, T, v), want, "{list} {v:?}");
    }
}

#[test]
fn daily_processes() {
    let mut h = Mock::default();
    let day = T - T.rem_euclid(86_400);
    go(&mut h, "27:1,28:2", T, Some(5.0));
    go(&mut h, "27:1,28:2", T + 10, Some(7.0));
    go(&mut h, "27:1,28:2", T + 20, Some(3.0));
    assert_eq!(vals(&h, 1), vec![(day, Some(5.0)), (day, Some(7.0))]);
    assert_eq!(vals(&h, 2), vec![(day, Some(5.0)), (day, Some(3.0))]);
    go(&mut h, "8:3", T, Some(500.0));
    go(&mut h, "8:3", T + 10, Some(250.0));
    assert_eq!(*vals(&h, 3).last().expect("point"), (day, Some(0.75)));
    go(&mut h, "7:4", T, Some(1.0));
    go(&mut h, "7:4", T + 30, Some(1.0));
    go(&mut h, "7:4", T + 60, Some(0.0));
    assert_eq!(*vals(&h, 4).last().expect("point"), (day, Some(30.0)));
    go(&mut h, "10:11", T, Some(42.0));
    assert_eq!(vals(&h, 11), vec![(day, Some(42.0))]);
}

#[test]
fn power_to_kwh_per_period_writes_at_slot_end() {
    let mut h = Mock::default();
    let slot = T - T.rem_euclid(900);
    go(&mut h, "70:12", slot + 10, Some(3600.0));
    go(&mut h, "70:12", slot + 70, Some(3600.0));
    assert_eq!(vals(&h, 12).last().map(|p| p.0), Some(slot + 900));
    assert!(close(vals(&h, 12).last().and_then(|p| p.1), 0.06));
    go(&mut h, "70:12", slot + 910, Some(3600.0));
    assert_eq!(vals(&h, 12).last().map(|p| p.0), Some(slot + 1800));
    assert!(
        close(vals(&h, 12).last().and_then(|p| p.1), 0.84),
        "{:?}",
        vals(&h, 12)
    );
    let mut c = Mock::default();
    go(&mut c, "71:30:13", T, Some(1000.0));
    assert_eq!(vals(&c, 13)[0].0, T - T.rem_euclid(1800) + 1800);
}

#[test]
fn publish_and_virtual_feed_processes() {
    let mut h = Mock::default();
    go(&mut h, "35:house/power", T, Some(5.0));
    assert_eq!(h.published, vec![("house/power".to_string(), Some(5.0))]);
    h.sources.insert(1, Some(4.0));
    h.sources.insert(2, Some(0.0));
    let virt = |h: &mut Mock, list: &str, v: Value| match run(list, T, v, Context::VirtualFeed, h) {
        Outcome::Done(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(virt(&mut h, "53:1", None), Some(4.0));
    assert_eq!(virt(&mut h, "53:1,55:1", None), Some(8.0));
    assert_eq!(virt(&mut h, "53:1,57:1,56:1", None), Some(12.0));
    assert_eq!(virt(&mut h, "53:1,58:2", None), None);
    assert_eq!(virt(&mut h, "59:1", Some(3.0)), Some(0.25));
    assert_eq!(
        virt(&mut h, "59:1", None),
        None,
        "a missing value gives missing"
    );
    assert!(matches!(
        run("1:1", T, Some(1.0), Context::VirtualFeed, &mut h),
        Outcome::Aborted { .. }
    ));
}
