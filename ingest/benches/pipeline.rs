//! The ingest pipeline alone (`cargo bench -p ynni-ingest --bench pipeline`): decoded
//! `input/bulk` payloads in, feed points out into the storage engines' in-memory buffers, with
//! the list `log_to_feed` + `power_to_kwh` on every input. Target: ≥ 500 k input values/s.
//! No WAL and no catalog: those are measured in the storage benches and the end-to-end bench.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;

use chrono_tz::Tz;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ynni_ingest::Value;
use ynni_ingest::decode::{BulkParams, decode_bulk};
use ynni_ingest::process::catalog::Context;
use ynni_ingest::process::{Host, Outcome, ProcessList, StateKind, run_list};
use ynni_storage::fixed::FixedFeed;

const NODES: u32 = 100;
const INPUTS_PER_NODE: u32 = 10;
const ROUNDS: i64 = 10;
const T0: i64 = 1_700_000_000;

struct Feeds {
    feeds: HashMap<u32, FixedFeed>,
    last: HashMap<u32, (i64, Value)>,
}

impl Host for Feeds {
    fn tz(&self) -> Tz {
        Tz::UTC
    }
    fn feed_post(&mut self, feed: u32, update_time: i64, feed_time: i64, value: Value, join: bool) {
        if let Some(f) = self.feeds.get_mut(&feed) {
            let _ = f.write(&[(feed_time, value)], join);
        }
        self.last.insert(feed, (update_time, value));
    }
    fn feed_last(&mut self, feed: u32) -> Option<(i64, Value)> {
        self.last.get(&feed).copied()
    }
    fn feed_exists(&mut self, feed: u32) -> bool {
        self.feeds.contains_key(&feed)
    }
    fn input_last(&mut self, _input: u32) -> Option<Value> {
        None
    }
    fn state(&self, _kind: StateKind, _feed: u32) -> Option<(i64, Value)> {
        None
    }
    fn set_state(&mut self, _kind: StateKind, _feed: u32, _time: i64, _value: Value) {}
    fn publish(&mut self, _topic: &str, _value: Value) {}
    fn source_value(&mut self, _feed: u32) -> Value {
        None
    }
}

fn payload(round: i64) -> String {
    let rows: Vec<String> = (0..NODES)
        .map(|n| {
            let values: Vec<String> = (0..INPUTS_PER_NODE)
                .map(|i| format!("{}", 100 + i + n))
                .collect();
            format!("[{},\"node{n}\",{}]", T0 + 10 * round, values.join(","))
        })
        .collect();
    format!("[{}]", rows.join(","))
}

fn pipeline(c: &mut Criterion) {
    let payloads: Vec<String> = (0..ROUNDS).map(payload).collect();
    // Input (node, position) → its list: log to one feed, integrate into another.
    // Parsed once, as the shard does when it loads an input.
    let lists: HashMap<(String, String), ProcessList> = (0..NODES)
        .flat_map(|n| {
            (0..INPUTS_PER_NODE).map(move |i| {
                let base = (n * INPUTS_PER_NODE + i) * 2 + 1;
                (
                    (format!("node{n}"), (i + 1).to_string()),
                    ProcessList::parse(&format!("1:{},4:{}", base, base + 1)),
                )
            })
        })
        .collect();
    let values = u64::from(NODES * INPUTS_PER_NODE) * ROUNDS as u64;
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(values));
    g.sample_size(20);
    g.bench_function("bulk_decode_log_and_power_to_kwh", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let feeds = (1..=NODES * INPUTS_PER_NODE * 2)
                    .map(|id| {
                        (
                            id,
                            FixedFeed::create(dir.path(), id, 10, 10).expect("create"),
                        )
                    })
                    .collect();
                (
                    dir,
                    Feeds {
                        feeds,
                        last: HashMap::new(),
                    },
                )
            },
            |(dir, mut host)| {
                for p in &payloads {
                    let params = BulkParams {
                        data: Some(p),
                        time: Some("0"),
                        ..Default::default()
                    };
                    let decoded = decode_bulk(&params, T0).expect("decode");
                    for batch in decoded.batches {
                        for (name, v) in &batch.values {
                            let list = &lists[&(batch.node.clone(), name.clone())];
                            let out = run_list(list, batch.time, *v, Context::Input, &mut host);
                            black_box(matches!(out, Outcome::Done(_)));
                        }
                    }
                }
                (dir, host)
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
