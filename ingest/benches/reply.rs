//! A graph reply's text (`cargo bench -p ynni-ingest --bench reply`): a thousand
//! `[time,value]` pairs as `feed/data` writes them for a year of 10 s data averaged into
//! windows of 31,536 s, times in milliseconds. The values are means of `f32` readings, so most
//! need the full 17 significant digits, as in a real reply. Measured 2026-12-06: 25.0 µs per
//! reply, of which formatting the values alone takes 12.7 µs and the times 4.1 µs.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ynni_ingest::number::write_pairs;

fn pairs() -> Vec<(i64, Option<f64>)> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..1000)
        .map(|i| {
            let t = 1_669_852_800 + i * 31_536;
            // A window with no readings is `null`.
            if i % 97 == 5 {
                return (t, None);
            }
            let n = 3153;
            let sum: f64 = (0..n).map(|_| f64::from(next() * 3000.0)).sum();
            (t, Some(sum / f64::from(n)))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let points = pairs();
    let mut g = c.benchmark_group("reply");
    g.throughput(Throughput::Elements(points.len() as u64));
    g.bench_function("write_pairs_1000_ms", |b| {
        let mut out = String::with_capacity(64 << 10);
        b.iter(|| {
            out.clear();
            write_pairs(&mut out, black_box(&points), 1000);
            black_box(out.len())
        })
    });
    g.finish();
}

/// The two formatters alone, for what the rest of `write_pairs` adds.
fn parts(c: &mut Criterion) {
    let points = pairs();
    let mut g = c.benchmark_group("reply_parts");
    g.throughput(Throughput::Elements(points.len() as u64));
    g.bench_function("zmij_values_1000", |b| {
        let mut text = zmij::Buffer::new();
        b.iter(|| {
            black_box(&points)
                .iter()
                .filter_map(|&(_, v)| v)
                .map(|v| text.format_finite(v).len())
                .sum::<usize>()
        })
    });
    g.bench_function("itoa_times_ms_1000", |b| {
        let mut text = itoa::Buffer::new();
        b.iter(|| {
            black_box(&points)
                .iter()
                .map(|&(t, _)| text.format(t * 1000).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench, parts);
criterion_main!(benches);
