//! Kill -9 test: a writer process (`src/bin/crash_writer.rs`) is killed at random moments;
//! after every kill the store is reopened (WAL replay) and every point the writer had
//! acknowledged must be there, exactly once and unchanged.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ynni_storage::store::Feed;
use ynni_storage::{FeedStore, StoreConfig};

const T0: i64 = 1_699_999_200;
const KILLS: usize = 100;

fn variable_time(i: i64) -> i64 {
    if i % 4 == 3 { T0 - 10 * i } else { T0 + 10 * i }
}

fn writer_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_crash_writer"))
}

/// A small deterministic generator, so every run kills at the same planned moments.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn verify(dir: &Path, acked: &BTreeSet<i64>) {
    let mut store = FeedStore::open(
        &dir.join("phpfina"),
        &dir.join("phptimeseries"),
        &dir.join("wal"),
        StoreConfig::default(),
    )
    .expect("reopen after kill");
    let Feed::Fixed(fixed) = store.feed(1).expect("feed 1") else {
        panic!("feed 1 is fixed")
    };
    let slots = fixed.read_slots(0, fixed.npoints()).expect("read");
    assert_eq!(i64::from(fixed.meta().start_time), T0);
    for &i in acked {
        assert_eq!(
            slots.get(i as usize).copied(),
            Some(i as f32),
            "fixed feed lost acknowledged point {i}"
        );
    }
    // Nothing but written values: every slot is NaN or its own index.
    for (k, v) in slots.iter().enumerate() {
        assert!(v.is_nan() || *v == k as f32, "slot {k} holds {v}");
    }
    let Feed::Variable(var) = store.feed(2).expect("feed 2") else {
        panic!("feed 2 is variable")
    };
    let records = var.read_range(0, u32::MAX).expect("read");
    let times: Vec<u32> = records.iter().map(|r| r.0).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "records must ascend with no duplicate"
    );
    let found: BTreeSet<i64> = records
        .iter()
        .map(|&(t, v)| {
            let i = v as i64;
            assert_eq!(variable_time(i), i64::from(t), "record {t} holds {v}");
            i
        })
        .collect();
    let missing: Vec<&i64> = acked.difference(&found).collect();
    assert!(
        missing.is_empty(),
        "variable feed lost acknowledged points {missing:?}"
    );
}

#[test]
fn acknowledged_points_survive_kill_9() {
    let bin = writer_binary();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut rng = Lcg(0x796e6e69);
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let mut next = 0i64;
    let mut total_replayed = 0u64;
    for round in 0..KILLS {
        let mut child = Command::new(&bin)
            .arg(dir)
            .arg(next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line
                    .strip_prefix("ack ")
                    .and_then(|n| n.parse::<i64>().ok())
                {
                    let _ = tx.send(i);
                }
            }
        });
        // Let it get going, then kill it after a random further delay.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("writer made no progress");
        acked.insert(first);
        let delay = Duration::from_micros(rng.next(60_000));
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if let Ok(i) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                acked.insert(i);
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        acked.extend(rx.try_iter());
        next = acked.last().copied().unwrap_or(0) + 1;

        verify(dir, &acked);
        let store = FeedStore::open(
            &dir.join("phpfina"),
            &dir.join("phptimeseries"),
            &dir.join("wal"),
            StoreConfig::default(),
        )
        .expect("open");
        total_replayed += store.replayed_records();
        drop(store);
        eprintln!("round {round}: {} acknowledged so far", acked.len());
    }
    assert!(acked.len() > KILLS, "the writer must have made progress");
    assert!(
        total_replayed > 0,
        "some kills must have hit unflushed, WAL-only points"
    );
}
