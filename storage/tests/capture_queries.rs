//! `feed/data` semantics checked against the replies a real emoncms 11.16.8 gave
//! (`tests/fixtures/emoncms/emoncms-capture.jsonl`, sequence numbers in the test names), on the feed
//! files as they were at the time of those requests: the reference files cut back to the
//! first 32 slots (feed 1) and 26 records (feed 2).

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ynni_storage::query::{self, DataRequest, Interval, QueryError, TimeFormat};
use ynni_storage::store::Feed;
use ynni_storage::{FeedStore, StoreConfig};

const T0: i64 = 1_699_999_200;

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/emoncms/emoncms-data")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: FeedStore,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (fina, ts) = (tmp.path().join("phpfina"), tmp.path().join("phptimeseries"));
    std::fs::create_dir_all(&fina).expect("mkdir");
    std::fs::create_dir_all(&ts).expect("mkdir");
    let r = reference();
    std::fs::copy(r.join("phpfina/1.meta"), fina.join("1.meta")).expect("copy");
    let dat = std::fs::read(r.join("phpfina/1.dat")).expect("read");
    std::fs::write(fina.join("1.dat"), &dat[..32 * 4]).expect("write");
    for f in ["7.meta", "7.dat", "4.meta", "4.dat"] {
        std::fs::copy(r.join("phpfina").join(f), fina.join(f)).expect("copy");
    }
    let myd = std::fs::read(r.join("phptimeseries/feed_2.MYD")).expect("read");
    std::fs::write(ts.join("feed_2.MYD"), &myd[..26 * 9]).expect("write");
    let store =
        FeedStore::open(&fina, &ts, &tmp.path().join("wal"), StoreConfig::default()).expect("open");
    Fixture { _tmp: tmp, store }
}

fn run(
    fx: &mut Fixture,
    id: u32,
    req: &DataRequest,
) -> Result<Vec<(i64, Option<f64>)>, QueryError> {
    let feed = fx.store.feed(id).expect("feed");
    query::data(feed, req).map(|r| r.points)
}

fn req(start: i64, end: i64, interval: &str) -> DataRequest {
    DataRequest::new(
        start,
        end,
        Interval::parse(Some(interval)).expect("interval"),
    )
}

fn rel(points: Vec<(i64, Option<f64>)>) -> Vec<(i64, Option<f64>)> {
    points.into_iter().map(|(t, v)| (t - T0, v)).collect()
}

fn s(v: f64) -> Option<f64> {
    Some(v)
}

fn feed1_slot(k: i64) -> Option<f64> {
    const HEAD: [f64; 10] = [
        1000.0, 1010.0, 2020.0, 1030.0, 1040.0, 5555.0, 1060.0, 1070.0, 1080.0, 1090.0,
    ];
    match k {
        0..=9 => Some(HEAD[k as usize]),
        10..=15 => None,
        16..=31 => Some(1000.0 + 10.0 * k as f64),
        _ => None,
    }
}

#[test]
fn seq163_full_resolution() {
    let mut fx = fixture();
    let got = rel(run(&mut fx, 1, &req(T0, T0 + 300, "10")).expect("data"));
    let want: Vec<(i64, Option<f64>)> = (0..=30).map(|k| (10 * k, feed1_slot(k))).collect();
    assert_eq!(got, want);
}

#[test]
fn seq166_167_170_sampling_and_averaging() {
    let mut fx = fixture();
    let got = rel(run(&mut fx, 1, &req(T0, T0 + 300, "60")).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(1000.0)),
            (60, s(1060.0)),
            (120, None),
            (180, s(1180.0)),
            (240, s(1240.0)),
            (300, s(1300.0))
        ]
    );
    let mut r = req(T0, T0 + 300, "60");
    r.average = true;
    let got = rel(run(&mut fx, 1, &r).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(1942.5)),
            (60, s(1075.0)),
            (120, s(1165.0)),
            (180, s(1205.0)),
            (240, s(1265.0)),
            (300, s(1305.0))
        ]
    );
    // Averaging is off when the interval is below the feed's.
    let mut r = req(T0, T0 + 60, "5");
    r.average = true;
    let got: Vec<Option<f64>> = run(&mut fx, 1, &r)
        .expect("data")
        .into_iter()
        .map(|p| p.1)
        .collect();
    let want = [
        1000.0, 1000.0, 1010.0, 1010.0, 2020.0, 2020.0, 1030.0, 1030.0, 1040.0, 1040.0, 5555.0,
        5555.0, 1060.0,
    ];
    assert_eq!(got, want.iter().map(|&v| Some(v)).collect::<Vec<_>>());
}

#[test]
fn seq168_169_173_174_odd_grids() {
    let mut fx = fixture();
    let got: Vec<f64> = run(&mut fx, 1, &req(T0, T0 + 70, "7"))
        .expect("data")
        .into_iter()
        .filter_map(|p| p.1)
        .collect();
    assert_eq!(
        got,
        vec![
            1000.0, 1000.0, 1010.0, 2020.0, 2020.0, 1030.0, 1040.0, 1040.0, 5555.0, 1060.0, 1070.0
        ]
    );
    let got = run(&mut fx, 1, &req(T0, T0 + 30, "1")).expect("data");
    assert_eq!(got.len(), 31);
    assert_eq!(
        (got[9].1, got[10].1, got[29].1, got[30].1),
        (s(1000.0), s(1010.0), s(2020.0), s(1030.0))
    );
    let mut r = req(T0, T0 + 40, "1");
    r.limitinterval = true;
    let got = rel(run(&mut fx, 1, &r).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(1000.0)),
            (10, s(1010.0)),
            (20, s(2020.0)),
            (30, s(1030.0)),
            (40, s(1040.0))
        ]
    );
    let got = rel(run(&mut fx, 1, &req(T0 + 3, T0 + 63, "10")).expect("data"));
    assert_eq!(got[0], (3, s(1000.0)));
    assert_eq!(got[6], (63, s(1060.0)));
}

#[test]
fn seq171_172_175_176_skipmissing_and_out_of_range() {
    let mut fx = fixture();
    let mut r = req(T0, T0 + 300, "10");
    r.skipmissing = true;
    assert_eq!(run(&mut fx, 1, &r).expect("data").len(), 25);
    let mut r = req(T0, T0 + 300, "30");
    r.skipmissing = true;
    let times: Vec<i64> = rel(run(&mut fx, 1, &r).expect("data"))
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(times, vec![0, 30, 60, 90, 180, 210, 240, 270, 300]);
    let got = run(&mut fx, 1, &req(T0 - 100, T0 + 20, "10")).expect("data");
    assert_eq!(got.len(), 13);
    assert!(got[..10].iter().all(|p| p.1.is_none()));
    assert_eq!(got[12].1, s(2020.0));
    let got = run(&mut fx, 1, &req(T0 + 400, T0 + 460, "10")).expect("data");
    assert_eq!(got.len(), 7);
    assert!(got.iter().all(|p| p.1.is_none()));
}

#[test]
fn seq177_182_207_211_errors_in_emoncms_order() {
    let mut fx = fixture();
    for interval in ["", "0", "-10"] {
        let e = run(&mut fx, 1, &req(T0, T0 + 300, interval)).expect_err("invalid");
        assert_eq!(e.to_string(), "Invalid interval");
    }
    let mut r = req(T0, T0 + 60, "10");
    r.timeformat = "bogus".into();
    assert_eq!(
        run(&mut fx, 1, &r).expect_err("format").to_string(),
        "Invalid time format"
    );
    for end in [T0 - 10, T0] {
        let e = run(&mut fx, 1, &req(T0, end, "10")).expect_err("order");
        assert_eq!(e.to_string(), "Request end time before start time");
    }
    let e = run(&mut fx, 1, &req(T0, T0 + 10_000_000, "10")).expect_err("limit");
    assert_eq!(
        e.to_string(),
        "request datapoint limit reached (20000), increase request interval or reduce time range, requested datapoints = 1000000"
    );
    // A wide enough range with no interval gives about 800 points.
    let got = run(&mut fx, 1, &req(T0, T0 + 8000, "")).expect("auto");
    assert_eq!(got.len(), 801);
    assert!(matches!(
        Interval::parse(Some("abc")),
        Err(QueryError::InvalidInterval)
    ));
}

#[test]
fn seq179_183_184_209_formats_dp_delta() {
    let mut fx = fixture();
    let mut r = req(T0, T0 + 60, "10");
    r.timeformat = "notime".into();
    let reply = query::data(fx.store.feed(1).expect("feed"), &r).expect("data");
    assert_eq!(reply.format, TimeFormat::NoTime);
    let mut r = req(T0, T0 + 60, "20");
    r.average = true;
    r.dp = Some(0);
    let got = rel(run(&mut fx, 1, &r).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(1005.0)),
            (20, s(1525.0)),
            (40, s(3298.0)),
            (60, s(1065.0))
        ]
    );
    let mut r = req(T0, T0 + 300, "60");
    r.delta = true;
    let got = rel(run(&mut fx, 1, &r).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(60.0)),
            (60, None),
            (120, None),
            (180, s(60.0)),
            (240, s(60.0)),
            (300, s(10.0))
        ]
    );
    for interval in ["100000000", "1000"] {
        let got = rel(run(&mut fx, 1, &req(T0, T0 + 300, interval)).expect("data"));
        assert_eq!(got, vec![(0, s(1000.0))]);
    }
}

#[test]
fn seq185_204_calendar_on_sparse_and_empty_feeds() {
    let mut fx = fixture();
    let got = run(&mut fx, 1, &req(1_699_912_800, 1_700_085_600, "daily")).expect("data");
    assert_eq!(
        got,
        vec![
            (1_699_833_600, None),
            (1_699_920_000, None),
            (1_700_006_400, None)
        ]
    );
    let got = run(&mut fx, 4, &req(T0, T0 + 300, "10")).expect("empty feed");
    assert_eq!(got.len(), 31);
    assert!(got.iter().all(|p| p.1.is_none()));
}

#[test]
fn seq193_to_199_variable_interval() {
    let mut fx = fixture();
    let got = rel(run(&mut fx, 2, &req(T0, T0 + 300, "10")).expect("data"));
    assert_eq!(got.len(), 31);
    assert_eq!(
        &got[..3],
        &[(0, s(2000.0)), (10, s(2010.0)), (20, s(2121.0))]
    );
    assert!(got[10..16].iter().all(|p| p.1.is_none()));
    assert_eq!(got[20], (200, s(2200.0)), "taken from the record at +205");
    let got = rel(run(&mut fx, 2, &req(T0, T0 + 300, "60")).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(2000.0)),
            (60, s(2060.0)),
            (120, s(2160.0)),
            (180, s(2180.0)),
            (240, s(2240.0)),
            (300, s(2300.0))
        ]
    );
    let mut r = req(T0, T0 + 300, "60");
    r.average = true;
    let got = rel(run(&mut fx, 2, &r).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(2811.1666666666665)),
            (60, s(2070.0)),
            (120, s(2140.0)),
            (180, s(2205.0)),
            (240, s(2265.0)),
            (300, s(2305.0))
        ]
    );
    let mut r = req(T0, T0 + 300, "10");
    r.skipmissing = true;
    assert_eq!(run(&mut fx, 2, &r).expect("data").len(), 25);
    let got = run(&mut fx, 2, &req(T0, T0 + 30, "1")).expect("data");
    assert_eq!(got.len(), 31);
    assert_eq!(got.iter().filter(|p| p.1.is_some()).count(), 4);
    let mut r = req(T0, T0 + 300, "60");
    r.delta = true;
    let got = rel(run(&mut fx, 2, &r).expect("data"));
    assert_eq!(
        got,
        vec![
            (0, s(60.0)),
            (60, s(100.0)),
            (120, s(20.0)),
            (180, s(60.0)),
            (240, s(60.0)),
            (300, s(10.0))
        ]
    );
}

#[test]
fn seq256_to_264_daily_weekly_monthly_annual_on_a_kwh_feed() {
    let mut fx = fixture();
    let (a, b) = (1_699_747_200, 1_700_092_800);
    let got = run(&mut fx, 7, &req(a, b, "daily")).expect("data");
    assert_eq!(
        got,
        vec![
            (a, s(0.0)),
            (a + 86_400, s(12.0)),
            (a + 2 * 86_400, s(24.0)),
            (a + 3 * 86_400, s(36.0)),
            (b, None)
        ]
    );
    let mut r = req(a, b, "daily");
    r.delta = true;
    let got: Vec<Option<f64>> = run(&mut fx, 7, &r)
        .expect("data")
        .into_iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(got, vec![s(12.0), s(12.0), s(12.0), s(11.5), None]);
    let mut r = req(a, b, "daily");
    r.tz = chrono_tz::Europe::Berlin;
    let got = run(&mut fx, 7, &r).expect("data");
    assert_eq!(
        got,
        vec![
            (1_699_743_600, None),
            (1_699_830_000, s(11.5)),
            (1_699_916_400, s(23.5)),
            (1_700_002_800, s(35.5)),
            (1_700_089_200, s(47.5))
        ]
    );
    let got = run(&mut fx, 7, &req(1_699_142_400, 1_700_956_800, "weekly")).expect("data");
    assert_eq!(
        got,
        vec![
            (1_699_228_800, None),
            (1_699_833_600, s(12.0)),
            (1_700_438_400, None)
        ]
    );
    let got = run(&mut fx, 7, &req(1_696_291_200, 1_703_203_200, "monthly")).expect("data");
    assert_eq!(
        got,
        vec![
            (1_696_118_400, None),
            (1_698_796_800, None),
            (1_701_388_800, None)
        ]
    );
    let got = run(&mut fx, 7, &req(1_665_187_200, 1_703_203_200, "annual")).expect("data");
    assert_eq!(got, vec![(1_640_995_200, None), (1_672_531_200, None)]);
    let mut r = req(a, 1_699_768_800, "3600");
    r.delta = true;
    let got = run(&mut fx, 7, &r).expect("data");
    assert_eq!(got.len(), 7);
    assert!(got.iter().all(|p| p.1 == s(0.5)));
    let mut r = req(a, b, "daily");
    r.average = true;
    let got: Vec<Option<f64>> = run(&mut fx, 7, &r)
        .expect("data")
        .into_iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(got, vec![s(5.75), s(17.75), s(29.75), s(41.75), None]);
}

#[test]
fn seq147_to_157_values_at_times_and_last_values() {
    let mut fx = fixture();
    let feed: &Feed = fx.store.feed(1).expect("feed");
    assert_eq!(query::value_at(feed, T0 + 50).expect("v"), s(5555.0));
    assert_eq!(
        query::value_at(feed, T0 + 55).expect("v"),
        s(1060.0),
        "rounds to the nearest slot"
    );
    assert_eq!(query::value_at(feed, T0 + 120).expect("v"), None);
    assert_eq!(query::value_at(feed, T0 - 1000).expect("v"), None);
    assert_eq!(
        query::last_value(feed).expect("last"),
        Some((T0 + 310, s(1310.0)))
    );
    let feed: &Feed = fx.store.feed(2).expect("feed");
    assert_eq!(query::value_at(feed, T0 + 55).expect("v"), s(2060.0));
    assert_eq!(
        query::last_value(feed).expect("last"),
        Some((T0 + 310, s(2310.0)))
    );
}

#[test]
fn seq189_csv_export() {
    let mut fx = fixture();
    let csv = query::csv(fx.store.feed(1).expect("feed"), &req(T0, T0 + 60, "10")).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0], "1699999200,1000.00");
    assert_eq!(lines[6], "1699999260,1060.00");
    let csv = query::csv(
        fx.store.feed(1).expect("feed"),
        &req(T0 + 100, T0 + 110, "10"),
    )
    .expect("csv");
    assert_eq!(csv, "1699999300,null\n1699999310,null\n");
}

#[test]
fn unflushed_points_are_visible_to_queries() {
    let mut fx = fixture();
    fx.store
        .write(&[ynni_storage::Point {
            feed: 1,
            time: T0 + 320,
            value: Some(7.0),
            join: false,
        }])
        .expect("write");
    let got = rel(run(&mut fx, 1, &req(T0 + 300, T0 + 320, "10")).expect("data"));
    assert_eq!(got, vec![(300, s(1300.0)), (310, s(1310.0)), (320, s(7.0))]);
}
