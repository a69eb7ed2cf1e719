//! Restart cost (`cargo bench -p ynni-storage --bench replay`): 10,000 fixed-interval feeds with
//! unflushed points in the WAL; prints how fast [`FeedStore::open`] replays them and the
//! process's peak memory. Not a criterion bench: a restart happens once, so one measured run
//! of each size is the honest figure.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use ynni_storage::{FeedStore, Point, StoreConfig};

const FEEDS: u32 = 10_000;
const T0: i64 = 1_672_531_200;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; nothing to parse.
    for per_feed in [6i64, 60] {
        let dir = tempfile::tempdir()?;
        let (fina, ts, wal) = (
            dir.path().join("phpfina"),
            dir.path().join("phptimeseries"),
            dir.path().join("wal"),
        );
        std::fs::create_dir_all(&fina)?;
        std::fs::create_dir_all(&ts)?;
        {
            let mut store = FeedStore::open(&fina, &ts, &wal, StoreConfig::default())?;
            for id in 1..=FEEDS {
                store.create_fixed(id, 10)?;
            }
            // One WAL record per 10 s round, holding one point for every feed (what a busy
            // shard logs between flushes).
            for i in 0..per_feed {
                let batch: Vec<Point> = (1..=FEEDS)
                    .map(|feed| Point {
                        feed,
                        time: T0 + 10 * i,
                        value: Some(i as f64),
                        join: false,
                    })
                    .collect();
                store.write(&batch)?;
            }
            // Dropped unflushed: the next open must replay everything.
        }
        let points = u64::from(FEEDS) * per_feed as u64;
        // Reset the peak-memory mark so it covers the reopen alone.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let started = Instant::now();
        let store = FeedStore::open(&fina, &ts, &wal, StoreConfig::default())?;
        let took = started.elapsed();
        assert_eq!(store.pending_points() as u64, points);
        println!(
            "replay: {FEEDS} feeds x {per_feed} points = {points} points in {:.1} ms = {:.2} M points/s; peak RSS during replay {} MiB",
            took.as_secs_f64() * 1e3,
            points as f64 / took.as_secs_f64() / 1e6,
            peak_rss_kib() / 1024
        );
    }
    Ok(())
}
