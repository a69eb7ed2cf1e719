//! Writer half of the storage kill -9 test (`tests/crash_kill9.rs`); a test tool, also
//! usable by hand:
//!
//! ```text
//! crash_writer DIR START
//! ```
//!
//! Opens a feed store in DIR, creates feed 1 (fixed, 10 s) and feed 2 (variable) if missing,
//! then writes point `i` for i = START, START+1, … to both feeds and prints `ack i` once the
//! write has returned (is durable). Every 37th write it flushes (files, checkpoint, WAL trim).
//! Point `i` of feed 2 is written in the past for every fourth `i`, so flushes also exercise
//! the backfill rewrite. It stops after 100,000 points, or when killed.

use std::io::Write;
use std::path::Path;

use ynni_storage::store::Feed;
use ynni_storage::wal::WalConfig;
use ynni_storage::{FeedStore, Point, StoreConfig};

const T0: i64 = 1_699_999_200;

fn variable_time(i: i64) -> i64 {
    if i % 4 == 3 { T0 - 10 * i } else { T0 + 10 * i }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: crash_writer DIR START")?;
    let start: i64 = args
        .next()
        .ok_or("usage: crash_writer DIR START")?
        .parse()?;
    let dir = Path::new(&dir);
    for sub in ["phpfina", "phptimeseries"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let mut store = FeedStore::open(
        &dir.join("phpfina"),
        &dir.join("phptimeseries"),
        &dir.join("wal"),
        // Small segments, so kills also land around log rotation and segment trimming.
        StoreConfig {
            wal: WalConfig {
                segment_bytes: 4096,
                ..WalConfig::default()
            },
            ..StoreConfig::default()
        },
    )?;
    if store.feed(1).is_err() {
        store.create_fixed(1, 10)?;
    }
    if store.feed(2).is_err() {
        store.create_variable(2)?;
    }
    debug_assert!(matches!(store.feed(1)?, Feed::Fixed(_)));
    let stdout = std::io::stdout();
    for i in start..start + 100_000 {
        let value = Some(i as f64);
        store.write(&[
            Point {
                feed: 1,
                time: T0 + 10 * i,
                value,
                join: false,
            },
            Point {
                feed: 2,
                time: variable_time(i),
                value,
                join: false,
            },
        ])?;
        let mut out = stdout.lock();
        writeln!(out, "ack {i}")?;
        out.flush()?;
        if i % 37 == 0 {
            store.flush(&[])?;
        }
    }
    Ok(())
}
