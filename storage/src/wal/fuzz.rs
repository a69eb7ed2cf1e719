//! The log's recovery from damaged files, checked against what the module documentation
//! promises. A log is written through [`Wal`]'s own API (with small segments, so that there
//! are several), one segment is damaged (cut short, bytes changed, garbage appended), and the
//! log is opened again:
//!
//! - opening and replaying never panic, log statements included (they run under a
//!   subscriber that evaluates every field);
//! - damage in the last segment is a torn tail: opening succeeds and cuts it off; replay
//!   gives every record written before the damage, in order, and nothing else; new records
//!   then follow them;
//! - damage in an earlier segment means acknowledged records were lost: opening fails with
//!   [`StorageError::CorruptWal`]. A cut exactly between two records cannot be seen in the
//!   segment itself, only in the gap before the next one
//!   (`an_earlier_segment_cut_between_records_is_reported`); the property checks at least that
//!   no record is invented and none before the cut is lost.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{HEADER, Lsn, MAGIC, Wal, WalConfig, list_segments};
use crate::error::StorageError;

fn config(segment_bytes: u64) -> WalConfig {
    WalConfig {
        commit_window: Duration::ZERO,
        segment_bytes,
    }
}

fn fail(e: impl fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// A subscriber that takes every event and formats its fields, as a real one does. With no
/// subscriber `tracing` evaluates no field at all, and a panic in one would go unseen.
struct EveryEvent;

impl tracing::Subscriber for EveryEvent {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Format(String);
        impl tracing::field::Visit for Format {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                self.0.push_str(&format!("{field}={value:?} "));
            }
        }
        let mut text = Format(String::new());
        event.record(&mut text);
        assert!(!text.0.is_empty() || event.fields().next().is_none());
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Opens the log in `dir` with every log statement evaluated.
fn open(dir: &Path, segment_bytes: u64) -> crate::error::Result<Wal> {
    tracing::subscriber::with_default(EveryEvent, || Wal::open(dir, 0, config(segment_bytes)))
}

/// Every record of the log, as replay gives them.
fn replayed(wal: &Wal) -> Result<Vec<(Lsn, Vec<u8>)>, TestCaseError> {
    let mut out = Vec::new();
    wal.replay(0, |lsn, payload| {
        out.push((lsn, payload.to_vec()));
        Ok(())
    })
    .map_err(fail)?;
    Ok(out)
}

/// One segment file as written.
struct Written {
    path: PathBuf,
    first_lsn: Lsn,
    /// Where its header and each of its records end: the offsets at which a cut loses whole
    /// records only.
    boundaries: Vec<usize>,
}

/// Writes `payloads` through the API, then lists the segments and where their records end
/// (checked against the files' lengths, so the model of the format here stays true).
fn write_log(
    dir: &Path,
    payloads: &[Vec<u8>],
    segment_bytes: u64,
) -> Result<Vec<Written>, TestCaseError> {
    {
        let wal = Wal::open(dir, 0, config(segment_bytes)).map_err(fail)?;
        for (i, p) in payloads.iter().enumerate() {
            prop_assert_eq!(wal.append(p.clone()).map_err(fail)?, i as Lsn);
        }
    }
    let segments = list_segments(dir).map_err(fail)?;
    let mut written = Vec::new();
    for (k, seg) in segments.iter().enumerate() {
        let end = segments
            .get(k + 1)
            .map_or(payloads.len() as Lsn, |next| next.first_lsn);
        let mut boundaries = vec![MAGIC.len()];
        let mut at = MAGIC.len();
        for lsn in seg.first_lsn..end {
            at += HEADER + payloads[lsn as usize].len();
            boundaries.push(at);
        }
        let len = fs::metadata(&seg.path).map_err(fail)?.len();
        prop_assert_eq!(len, at as u64, "segment {} as written", k);
        written.push(Written {
            path: seg.path.clone(),
            first_lsn: seg.first_lsn,
            boundaries,
        });
    }
    Ok(written)
}

/// Damage to one segment file.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut shorter (a power cut, a partial copy).
    Truncate(Index),
    /// Bytes changed in place, each XORed with a non-zero mask (a bad sector, a stray write).
    Flip(Vec<(Index, u8)>),
    /// Bytes after the end (a record whose length was written but not its payload, another
    /// program's data).
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        vec((any::<Index>(), 1u8..=255), 1..4).prop_map(Damage::Flip),
        vec(any::<u8>(), 1..48).prop_map(Damage::Append),
    ]
}

/// Damages `bytes`; returns the offset of the first damaged byte, and whether the damage is a
/// cut between whole records (which the segment alone cannot show).
fn apply(bytes: &mut Vec<u8>, damage: &Damage, boundaries: &[usize]) -> (usize, bool) {
    match damage {
        Damage::Truncate(at) => {
            let cut = at.index(bytes.len());
            bytes.truncate(cut);
            (cut, boundaries.contains(&cut))
        }
        Damage::Flip(flips) => {
            // One mask per byte: two flips of the same byte could cancel out.
            let mut masks = BTreeMap::new();
            for (at, mask) in flips {
                masks.entry(at.index(bytes.len())).or_insert(*mask);
            }
            for (&i, mask) in &masks {
                bytes[i] ^= mask;
            }
            (masks.keys().next().copied().unwrap_or(bytes.len()), false)
        }
        Damage::Append(garbage) => {
            let end = bytes.len();
            bytes.extend_from_slice(garbage);
            (end, false)
        }
    }
}

proptest! {
    // Each case writes, syncs and reopens a log on disk.
    #![proptest_config(crate::proptest_config(64))]

    #[test]
    fn damaged_logs_recover_as_documented(
        payloads in vec(vec(any::<u8>(), 0..40), 1..10),
        segment_bytes in 40u64..200,
        which in any::<Index>(),
        damage in damage(),
    ) {
        let dir = tempfile::tempdir().map_err(fail)?;
        let segments = write_log(dir.path(), &payloads, segment_bytes)?;
        let k = which.index(segments.len());
        let seg = &segments[k];
        let last = k + 1 == segments.len();
        let mut bytes = fs::read(&seg.path).map_err(fail)?;
        let (first_bad, clean_cut) = apply(&mut bytes, &damage, &seg.boundaries);
        // Bytes after every record of a segment that is not the last are what a former writer
        // appended after the log was taken over (see the module docs): ignored, never refused.
        let beyond = !last && seg.boundaries.last().is_some_and(|&end| first_bad >= end);
        fs::write(&seg.path, &bytes).map_err(fail)?;
        // The records that end before the first damaged byte.
        let intact = seg.first_lsn as usize
            + seg.boundaries[1..].iter().filter(|&&end| end <= first_bad).count();
        let written: Vec<(Lsn, Vec<u8>)> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (i as Lsn, p.clone()))
            .collect();

        match open(dir.path(), segment_bytes) {
            Ok(wal) => {
                prop_assert!(
                    last || clean_cut || beyond,
                    "damage to segment {} of {} went unnoticed", k + 1, segments.len()
                );
                let got = replayed(&wal)?;
                // Nothing invented: each record replayed was written, with that LSN, and
                // they come in order.
                for pair in got.windows(2) {
                    prop_assert!(pair[0].0 < pair[1].0, "out of order: {:?}", pair);
                }
                for (lsn, payload) in &got {
                    prop_assert_eq!(
                        written.get(*lsn as usize).map(|w| &w.1), Some(payload),
                        "record {} was not written so", lsn
                    );
                }
                // Nothing before the damage lost.
                prop_assert!(got.len() >= intact, "{} of {} intact records", got.len(), intact);
                prop_assert_eq!(&got[..intact], &written[..intact]);
                if last {
                    // A torn tail: exactly the records before it, and the log goes on after
                    // them.
                    prop_assert_eq!(&got[..], &written[..intact]);
                    prop_assert_eq!(wal.first_new_lsn(), intact as Lsn);
                    prop_assert_eq!(wal.append(b"after".to_vec()).map_err(fail)?, intact as Lsn);
                    drop(wal);
                    let wal = open(dir.path(), segment_bytes).map_err(fail)?;
                    let mut want = written[..intact].to_vec();
                    want.push((intact as Lsn, b"after".to_vec()));
                    prop_assert_eq!(replayed(&wal)?, want);
                }
            }
            Err(StorageError::CorruptWal { reason, .. }) => {
                prop_assert!(!last, "the torn tail of the last segment was refused: {}", reason);
                prop_assert!(!beyond, "bytes after a segment's records were refused: {}", reason);
            }
            Err(e) => return Err(fail(format!("unexpected error: {e}"))),
        }
    }
}

/// A last segment shorter than its own header (a crash just after the file was created) is
/// reset to an empty segment, with the warning about it logged.
#[test]
fn a_last_segment_shorter_than_its_header_is_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segments = write_log(dir.path(), &[vec![1; 10], vec![2; 10]], 30).expect("written");
    assert_eq!(segments.len(), 2, "one record per segment");
    for len in 0..MAGIC.len() as u64 {
        let wal = open(dir.path(), 30).expect("open");
        drop(wal);
        let last = list_segments(dir.path())
            .expect("list")
            .pop()
            .expect("a segment");
        fs::OpenOptions::new()
            .write(true)
            .open(&last.path)
            .expect("open segment")
            .set_len(len)
            .expect("cut");
        let wal = open(dir.path(), 30).expect("reopen");
        let lsns: Vec<Lsn> = replayed(&wal)
            .expect("replay")
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(lsns, [0, 1], "cut to {len} bytes");
        assert_eq!(wal.first_new_lsn(), 2, "cut to {len} bytes");
    }
}

/// The module documentation: damage in an earlier segment "means acknowledged records were
/// lost and is reported as an error". A cut exactly between two records leaves a segment that
/// scans cleanly: `Wal::open` sees the loss in the gap before the next segment (a gap below
/// `min_next_lsn` is allowed: a checkpoint covers it).
#[test]
fn an_earlier_segment_cut_between_records_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payloads: Vec<Vec<u8>> = (0..6).map(|_| vec![7; 30]).collect();
    let segments = write_log(dir.path(), &payloads, 100).expect("written");
    assert!(segments.len() > 1, "several segments");
    let first = &segments[0];
    assert!(
        first.boundaries.len() > 2,
        "the first segment holds two records"
    );
    fs::OpenOptions::new()
        .write(true)
        .open(&first.path)
        .expect("open segment")
        .set_len(first.boundaries[1] as u64)
        .expect("cut");
    assert!(matches!(
        open(dir.path(), 100),
        Err(StorageError::CorruptWal { .. })
    ));
}
