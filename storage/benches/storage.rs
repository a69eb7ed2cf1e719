//! Storage benchmarks (`cargo bench -p ynni-storage --bench storage`), with the targets of the
//! feed storage issue:
//!
//! - a year of a 10 s feed (3,153,600 points) read as 1,000 averaged points: ≤ 5 ms warm;
//!   as 800 sampled points: ≤ 0.2 ms;
//! - `daily` + `delta` over that year: ≤ 5 ms;
//! - ingest into the in-memory buffers: ≥ 5 M points/s on one core;
//! - WAL append with group commit: ≥ 200 k points/s durable.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ynni_storage::fixed::FixedFeed;
use ynni_storage::query::{self, DataRequest, Interval};
use ynni_storage::store::Feed;
use ynni_storage::wal::{Wal, WalConfig};

const T0: i64 = 1_672_531_200; // 2023-01-01
const YEAR_POINTS: i64 = 3_153_600;

fn year_feed(dir: &std::path::Path) -> Feed {
    let mut f = FixedFeed::create(dir, 1, 10, 10).expect("create");
    // A cumulative kWh-like ramp with a daily wobble.
    let points: Vec<(i64, Option<f64>)> = (0..YEAR_POINTS)
        .map(|i| {
            (
                T0 + 10 * i,
                Some(i as f64 * 0.001 + ((i % 8640) as f64).sin()),
            )
        })
        .collect();
    f.write(&points, false).expect("write");
    f.flush().expect("flush");
    Feed::Fixed(f)
}

fn queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = year_feed(dir.path());
    let end = T0 + 10 * (YEAR_POINTS - 1);
    let mut g = c.benchmark_group("query_year_10s");
    g.measurement_time(Duration::from_secs(5));
    let span = end - T0;
    g.bench_function("average_1000_points", |b| {
        let mut r = DataRequest::new(T0, end, Interval::Seconds(span / 1000));
        r.average = true;
        b.iter(|| black_box(query::data(&feed, &r).expect("data")));
    });
    g.bench_function("sampled_800_points", |b| {
        let r = DataRequest::new(T0, end, Interval::Seconds(0));
        b.iter(|| black_box(query::data(&feed, &r).expect("data")));
    });
    g.bench_function("daily_delta", |b| {
        let mut r = DataRequest::new(T0, end, Interval::parse(Some("daily")).expect("interval"));
        r.delta = true;
        r.tz = chrono_tz::Europe::London;
        b.iter(|| black_box(query::data(&feed, &r).expect("data")));
    });
    g.finish();
}

fn ingest(c: &mut Criterion) {
    // 1,000 feeds receiving 100 points each, one point per write call: what a shard worker does.
    const FEEDS: u32 = 1000;
    const PER_FEED: i64 = 100;
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(u64::from(FEEDS) * PER_FEED as u64));
    g.bench_function("buffer_write_1000_feeds", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let feeds: Vec<FixedFeed> = (1..=FEEDS)
                    .map(|id| FixedFeed::create(dir.path(), id, 10, 10).expect("create"))
                    .collect();
                (dir, feeds)
            },
            |(dir, mut feeds)| {
                for i in 0..PER_FEED {
                    for f in &mut feeds {
                        f.write(&[(T0 + 10 * i, Some(i as f64))], false)
                            .expect("write");
                    }
                }
                black_box(&feeds);
                (dir, feeds)
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();

    // Durable WAL appends: records of 100 points (2.1 kB, as the store encodes them), 1,000
    // records in flight, so group commit shares each fdatasync.
    const RECORDS: u64 = 1000;
    const POINTS_PER_RECORD: u64 = 100;
    let mut g = c.benchmark_group("wal");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS * POINTS_PER_RECORD));
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("wal");
    let payload = vec![0x5Au8; (5 + 21 * POINTS_PER_RECORD) as usize];
    g.bench_function("group_commit_100k_points", |b| {
        b.iter(|| {
            let tickets: Vec<_> = (0..RECORDS)
                .map(|_| wal.submit(payload.clone()).expect("submit"))
                .collect();
            for t in tickets {
                t.wait().expect("durable");
            }
        });
    });
    // The worst case for the log: one point per record.
    g.throughput(Throughput::Elements(10_000));
    let small = vec![0x5Au8; 5 + 21];
    g.bench_function("group_commit_1_point_records", |b| {
        b.iter(|| {
            let tickets: Vec<_> = (0..10_000)
                .map(|_| wal.submit(small.clone()).expect("submit"))
                .collect();
            for t in tickets {
                t.wait().expect("durable");
            }
        });
    });
    g.finish();

    // A store written by one caller that waits for each write to be durable before the next
    // (no pipelining): bounded by fdatasync latency, not by the log's throughput.
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100 * 100));
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["phpfina", "phptimeseries"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    let mut store = ynni_storage::FeedStore::open(
        &dir.path().join("phpfina"),
        &dir.path().join("phptimeseries"),
        &dir.path().join("wal"),
        ynni_storage::StoreConfig::default(),
    )
    .expect("store");
    for id in 1..=100 {
        store.create_fixed(id, 10).expect("create");
    }
    let mut round = 0i64;
    g.bench_function("sequential_writes_100_points_each", |b| {
        b.iter(|| {
            for _ in 0..100 {
                let batch: Vec<ynni_storage::Point> = (1..=100)
                    .map(|feed| ynni_storage::Point {
                        feed,
                        time: T0 + 10 * round,
                        value: Some(1.0),
                        join: false,
                    })
                    .collect();
                store.write(&batch).expect("write");
                round += 1;
            }
        });
    });
    g.finish();
}

criterion_group!(benches, queries, ingest);
criterion_main!(benches);
