//! Golden tests against the files a real emoncms 11.16.8 left on disk
//! (`tests/fixtures/emoncms/emoncms-data/`, decoded in `tests/fixtures/emoncms/emoncms-files.txt`).

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ynni_storage::fixed::{FixedFeed, FixedMeta};
use ynni_storage::variable::VariableFeed;

const T0: i64 = 1_699_999_200;

fn reference() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/emoncms/emoncms-data");
    assert!(dir.is_dir(), "reference data missing at {}", dir.display());
    dir
}

/// Copies the reference files into a scratch directory so nothing can touch the originals.
fn scratch(sub: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(reference().join(sub)).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
    }
    tmp
}

fn opt(v: f32) -> Option<f32> {
    (!v.is_nan()).then_some(v)
}

#[test]
fn emoncms_fixed_feeds_open_unchanged() {
    let dir = scratch("phpfina");
    let f1 = FixedFeed::open(dir.path(), 1).expect("feed 1");
    assert_eq!(
        f1.meta(),
        FixedMeta {
            interval: 10,
            start_time: T0 as u32,
            npoints: 47
        }
    );
    assert_eq!(f1.meta().end_time(), 1_699_999_660);
    let v: Vec<Option<f32>> = f1
        .read_slots(0, 47)
        .expect("read")
        .into_iter()
        .map(opt)
        .collect();
    let head = [
        1000.0, 1010.0, 2020.0, 1030.0, 1040.0, 5555.0, 1060.0, 1070.0, 1080.0, 1090.0,
    ];
    for (i, want) in head.iter().enumerate() {
        assert_eq!(v[i], Some(*want), "slot {i}");
    }
    assert!(v[10..16].iter().all(Option::is_none));
    for (i, slot) in v.iter().enumerate().take(32).skip(16) {
        assert_eq!(*slot, Some(1000.0 + 10.0 * i as f32), "slot {i}");
    }
    assert!(v[32..40].iter().all(Option::is_none));
    assert_eq!(
        &v[40..47],
        &[
            Some(1400.0),
            Some(99.0),
            Some(44.0),
            Some(45.0),
            Some(46.0),
            Some(47.0),
            Some(0.0)
        ]
    );
    assert_eq!(
        f1.last_value().expect("last"),
        Some((1_699_999_660, Some(0.0)))
    );

    let f7 = FixedFeed::open(dir.path(), 7).expect("feed 7");
    assert_eq!(
        f7.meta(),
        FixedMeta {
            interval: 3600,
            start_time: 1_699_747_200,
            npoints: 96
        }
    );
    let v7 = f7.read_slots(0, 96).expect("read");
    assert!(v7.iter().enumerate().all(|(k, &v)| v == k as f32 / 2.0));

    for (id, interval) in [(4, 60), (6, 10)] {
        let f = FixedFeed::open(dir.path(), id).expect("empty feed");
        assert_eq!(
            f.meta(),
            FixedMeta {
                interval,
                start_time: 0,
                npoints: 0
            }
        );
        assert_eq!(f.last_value().expect("last"), None);
    }
    let f8 = FixedFeed::open(dir.path(), 8).expect("feed 8");
    assert_eq!(
        f8.meta(),
        FixedMeta {
            interval: 10,
            start_time: 1_795_829_510,
            npoints: 1
        }
    );
    assert_eq!(f8.read_slots(0, 1).expect("read"), vec![12.0]);
}

#[test]
fn ynni_writes_the_same_fixed_bytes_as_emoncms() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut f = FixedFeed::create(tmp.path(), 7, 3600, 10).expect("create");
    let points: Vec<(i64, Option<f64>)> = (0..96)
        .map(|k| (1_699_747_200 + 3600 * k, Some(k as f64 / 2.0)))
        .collect();
    f.write(&points, false).expect("write");
    f.flush().expect("flush");
    for name in ["7.meta", "7.dat"] {
        let ours = std::fs::read(tmp.path().join(name)).expect("ours");
        let theirs = std::fs::read(reference().join("phpfina").join(name)).expect("theirs");
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn emoncms_variable_feed_opens_unchanged_and_round_trips() {
    let dir = scratch("phptimeseries");
    let f = VariableFeed::open(dir.path(), 2).expect("feed 2");
    assert_eq!(f.meta().npoints, 38);
    let recs = f.read_range(0, u32::MAX).expect("read");
    let rel: Vec<(i64, f32)> = recs.iter().map(|&(t, v)| (i64::from(t) - T0, v)).collect();
    assert_eq!(
        &rel[..6],
        &[
            (0, 2000.0),
            (10, 2010.0),
            (20, 2121.0),
            (30, 2030.0),
            (40, 2040.0),
            (50, 6666.0)
        ]
    );
    assert!(rel.contains(&(205, 2200.0)));
    assert_eq!(rel[rel.len() - 2..], [(600, 3.25), (610, 16.5)]);
    assert_eq!(
        f.last_value().expect("last"),
        Some(((T0 + 610) as u32, Some(16.5)))
    );

    // Writing the same records into a new feed gives the same bytes.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut g = VariableFeed::create(tmp.path(), 2).expect("create");
    let points: Vec<(i64, Option<f64>)> = recs
        .iter()
        .map(|&(t, v)| (i64::from(t), Some(f64::from(v))))
        .collect();
    g.write(&points);
    g.flush().expect("flush");
    let ours = std::fs::read(tmp.path().join("feed_2.MYD")).expect("ours");
    let theirs = std::fs::read(reference().join("phptimeseries/feed_2.MYD")).expect("theirs");
    assert_eq!(ours, theirs);
}
