//! Many users graphing at once, without HTTP (`cargo bench -p ynni-storage --bench graphs`):
//! 50 feeds of a year of 10 s data each, averaged into 1,000 points one feed after another,
//! so that every read finds its window ends cold in the CPU's caches, as when 50 users graph
//! their years at once. Prints microseconds per read on one core, and the same with one feed
//! (warm) for the arithmetic alone. `FEEDS` sets the number of feeds.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use ynni_storage::fixed::FixedFeed;
use ynni_storage::query::{self, DataRequest, Interval};
use ynni_storage::store::Feed;

const T0: i64 = 1_672_531_200; // 2023-01-01
const YEAR_POINTS: i64 = 3_153_600;
const READS: usize = 20_000;

fn main() {
    let feeds: u32 = std::env::var("FEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let made = Instant::now();
    let all: Vec<Feed> = (1..=feeds)
        .map(|id| {
            let mut f = FixedFeed::create(dir.path(), id, 10, 10).expect("create");
            // A wobble (a sine of the slot number), a slow ramp, and a gap of an hour every
            // ten days.
            let points: Vec<(i64, Option<f64>)> = (0..YEAR_POINTS)
                .map(|i| {
                    let v = f64::from(id) + i as f64 * 1e-4 + ((i % 8_640) as f64).sin();
                    (T0 + 10 * i, (i % 86_400 >= 360).then_some(v))
                })
                .collect();
            f.write(&points, false).expect("write");
            f.flush().expect("flush");
            Feed::Fixed(f)
        })
        .collect();
    eprintln!(
        "{feeds} feeds of a year of 10 s data written in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    let end = T0 + 10 * (YEAR_POINTS - 1);
    let mut r = DataRequest::new(T0 + 7, end, Interval::Seconds((end - T0) / 1000));
    r.average = true;
    for (label, count) in [("cold, feeds in turn", all.len()), ("warm, one feed", 1)] {
        // The first read of each feed builds its levels; not part of the figure.
        for f in &all[..count] {
            black_box(query::data(f, &r).expect("data"));
        }
        let t = Instant::now();
        for k in 0..READS {
            // A stride coprime with the count: consecutive reads hit different feeds.
            let f = &all[(k * 7) % count];
            black_box(query::data(f, &r).expect("data"));
        }
        println!(
            "a year averaged into 1,000 points, {label}: {:.1} us per read",
            t.elapsed().as_secs_f64() * 1e6 / READS as f64
        );
    }
}
