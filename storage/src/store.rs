//! A shard's feed store: the write-ahead log in front of the feed engines.
//!
//! [`FeedStore::write`] returns once the points are in the WAL (durable) and applied to the
//! engines' in-memory pending writes, where reads already see them. [`FeedStore::flush`] moves
//! pending writes into the feed files, records a checkpoint, and trims the WAL.
//! [`FeedStore::open`] replays every WAL record after the checkpoint, so nothing acknowledged
//! is lost by a crash, and replaying a record twice leaves the same state (writes are
//! overwrites of a slot or a timestamp).
//!
//! Operations that remove data (clear, delete) flush and checkpoint first, so a replay can
//! never bring back points written before them.
//!
//! A store is owned by one task (the shard's single writer); it is not shared.
//!
//! # Caller records and state
//!
//! The shard worker logs its own records (input batches) in the same WAL with
//! [`FeedStore::log`], applies their effects with [`FeedStore::apply_points`] and marks them
//! done with [`FeedStore::record_applied`]. Every call that checkpoints takes the caller's
//! state (process state) as of that moment; [`FeedStore::open_with`] hands the checkpointed
//! state to a [`Replay`] handler and then every later record, in log order, so the handler
//! rebuilds exactly what a crash lost.
//!
//! A caller that reads something from the feed files while processing (a process list reading
//! a feed's last value) learns a fact about the files as the last checkpoint covers them. A
//! replay from that checkpoint must not read it from the files again: a crash in the middle of
//! a flush leaves some files ahead of the checkpoint. [`FeedStore::amend_before_flush`] takes
//! such facts and writes them into the last checkpoint (same LSN) before the next flush changes
//! any feed file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::checkpoint::{self, Checkpoint};
use crate::error::{Result, StorageError};
use crate::fixed::{self, FixedFeed, FixedMeta};
use crate::variable::{self, VariableFeed};
use crate::wal::{Lsn, Wal, WalConfig};

/// One value for one feed. `value: None` stores a missing value (NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub feed: u32,
    pub time: i64,
    pub value: Option<f64>,
    /// Fixed-interval feeds only: fill a gap before this point with a straight line.
    pub join: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    pub wal: WalConfig,
    /// How often [`FeedStore::flush_if_due`] writes buffered points to the feed files; long
    /// enough that an SD card sees a few writes a minute, not one per point.
    pub flush_interval: std::time::Duration,
    /// New fixed-interval feeds get at least this interval (emoncms's `min_feed_interval`).
    pub min_interval: u32,
    /// Bytes of averaged levels ([`crate::levels`]) all stores of the process may hold in
    /// memory; past it a store drops the levels its reads used longest ago.
    pub levels_memory: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            wal: WalConfig::default(),
            flush_interval: std::time::Duration::from_secs(60),
            min_interval: 10,
            levels_memory: 1 << 30,
        }
    }
}

/// A feed of either engine.
// Nearly every feed is fixed-interval: boxing that variant would add a pointer to follow on
// every write and read to save a few hundred bytes on each of the rare variable-interval ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Feed {
    Fixed(FixedFeed),
    Variable(VariableFeed),
}

impl Feed {
    fn flush(&mut self) -> Result<bool> {
        match self {
            Feed::Fixed(f) => f.flush(),
            Feed::Variable(f) => f.flush(),
        }
    }

    fn pending_len(&self) -> usize {
        match self {
            Feed::Fixed(f) => f.pending_len(),
            Feed::Variable(f) => f.pending_len(),
        }
    }

    fn is_dirty(&self) -> bool {
        match self {
            Feed::Fixed(f) => f.is_dirty(),
            Feed::Variable(f) => f.is_dirty(),
        }
    }
}

/// What a write did beyond storing points: per-feed refusals (e.g. the padding limit).
#[derive(Debug, Default)]
pub struct WriteReport {
    pub lsn: Option<Lsn>,
    pub stored: usize,
    pub refused: Vec<(u32, StorageError)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    pub feeds: usize,
    pub points: usize,
}

pub struct FeedStore {
    fixed_dir: PathBuf,
    variable_dir: PathBuf,
    wal_dir: PathBuf,
    wal: Wal,
    feeds: HashMap<u32, Feed>,
    /// The LSN after the last record applied to `feeds`.
    applied: Lsn,
    cfg: StoreConfig,
    replayed: u64,
    last_flush: std::time::Instant,
    /// When [`FeedStore::backup_running`] last asked, and the answer.
    backup_asked: Option<(std::time::Instant, bool)>,
    /// Set when memory may no longer match the log; every later call fails.
    poisoned: bool,
    /// What the last checkpoint on disk holds (its LSN and the caller's state), when the state
    /// is small enough to keep: a flush that would write the same again writes nothing, so an
    /// idle store (a cluster node has a store per vshard it owns) costs no synced writes.
    checkpointed: Option<(Lsn, Vec<u8>)>,
    /// The LSN the last checkpoint on disk starts the replay at.
    checkpoint_lsn: Lsn,
    /// A cluster node's lease: asked before feed files and checkpoints are written, and by the
    /// WAL writer before each append (see [`crate::wal::Guard`]).
    guard: Option<crate::wal::Guard>,
    /// Padding slots the current record may still add to fixed feeds ([`FeedStore::begin_record`]).
    padding_left: u64,
    /// Points waiting in memory, counted as writes add them; reset when they are written out.
    pending: usize,
    /// Changes to the last checkpoint's state to write before a flush changes feed files
    /// ([`FeedStore::amend_before_flush`]).
    amends: Vec<Amend>,
    /// What this store's feeds' levels hold in memory, as last counted.
    levels: LevelsAccount,
}

/// Each of a store's fixed feeds with levels in memory and their bytes, as last counted, and
/// their sum, which is part of [`crate::levels::IN_MEMORY`] until the store is dropped.
#[derive(Default)]
struct LevelsAccount {
    by_feed: HashMap<u32, usize>,
    total: usize,
}

impl LevelsAccount {
    /// Records `bytes` as feed `id`'s levels.
    fn set(&mut self, id: u32, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.by_feed.get(&id).copied().unwrap_or(0) == bytes {
            // Most reads change nothing: the shared count is left alone.
            return;
        }
        let before = if bytes == 0 {
            self.by_feed.remove(&id)
        } else {
            self.by_feed.insert(id, bytes)
        }
        .unwrap_or(0);
        self.total = self.total - before + bytes;
        crate::levels::IN_MEMORY.fetch_sub(before, Relaxed);
        crate::levels::IN_MEMORY.fetch_add(bytes, Relaxed);
    }
}

impl Drop for LevelsAccount {
    fn drop(&mut self) {
        crate::levels::IN_MEMORY.fetch_sub(self.total, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Makes a checkpoint's state into the amended one; `None` leaves it as it is.
pub type Amend = Box<dyn FnOnce(&[u8]) -> Option<Vec<u8>> + Send>;

/// Padding slots one record may add to all its fixed feeds together: emoncms's limit for one
/// point (five years of 10 s slots, 63 MB), so a request of a few hundred bytes that steps far
/// ahead on many feeds cannot write gigabytes.
pub const RECORD_PADDING: u64 = crate::fixed::MAX_PADDING;

/// Points waiting in memory past which a flush is due at once ([`FeedStore::flush_due`]; 16
/// MiB of appended slots, overwrites a few times more), not at the end of the flush interval:
/// writes that pad far ahead or overwrite much of a feed would otherwise hold all of it in
/// memory until then.
pub const MAX_PENDING_POINTS: usize = 4 << 20;

/// A feed's levels in memory, as [`evictions`] weighs them.
#[derive(Debug, Clone, Copy)]
struct Held {
    id: u32,
    bytes: usize,
    used: Option<std::time::Instant>,
    /// Points not yet in the file: unsaved levels would be rebuilt from the whole `.dat`.
    dirty: bool,
    /// Already to go at the feed's next flush.
    leaving: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evict {
    Now,
    AfterFlush,
}

/// Which levels go, and when, to bring `in_memory` bytes under the budget `cap`: the least
/// recently read first, of feeds with nothing unflushed first (saved, they load again from
/// their file). A feed being written loses its levels at its next flush, saved, unless
/// memory is past the budget by a quarter, when they go now, unsaved (to be rebuilt).
fn evictions(mut held: Vec<Held>, mut in_memory: usize, cap: usize) -> Vec<(u32, Evict)> {
    // Those already leaving at their flush are as good as gone, unless memory is past the
    // ceiling (then the loop below takes them now).
    let ceiling = cap.saturating_add(cap / 4);
    let mut deferred: usize = if in_memory <= ceiling {
        held.iter().filter(|h| h.leaving).map(|h| h.bytes).sum()
    } else {
        0
    };
    if deferred > 0 {
        held.retain(|h| !h.leaving);
    }
    held.sort_unstable_by_key(|h| (h.dirty, h.used));
    let mut out = Vec::new();
    for h in held {
        if in_memory.saturating_sub(deferred) <= cap {
            break;
        }
        if h.dirty && in_memory <= ceiling {
            // Still counted until the flush: the next read does not take more for it.
            deferred += h.bytes;
            out.push((h.id, Evict::AfterFlush));
        } else {
            in_memory = in_memory.saturating_sub(h.bytes);
            out.push((h.id, Evict::Now));
        }
    }
    out
}

/// How long [`FeedStore::backup_running`]'s answer is used before it asks again.
pub const BACKUP_ASKED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// States up to this size are kept to recognise an unchanged checkpoint.
const KEEP_STATE: usize = 64 << 10;

const RECORD_VERSION: u8 = 1;
/// First byte of a caller record (the rest is the caller's).
const CALLER_RECORD: u8 = 2;

/// Rebuilds a caller's state on open: `restore` gets the checkpointed state, then `replay` gets
/// each caller record logged after the checkpoint, in order with the store's own records.
pub trait Replay {
    fn restore(&mut self, state: &[u8]) -> Result<()>;
    fn replay(&mut self, store: &mut FeedStore, lsn: Lsn, record: &[u8]) -> Result<()>;
}

/// For stores without caller records: finding one is an error, not something to skip.
struct NoCallerRecords;

impl Replay for NoCallerRecords {
    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }
    fn replay(&mut self, _store: &mut FeedStore, lsn: Lsn, _record: &[u8]) -> Result<()> {
        Err(StorageError::CorruptWal {
            path: PathBuf::from("wal"),
            reason: format!("record {lsn} belongs to a shard worker, but none is replaying"),
        })
    }
}

enum Logged {
    Points(Vec<Point>),
    Caller(Vec<u8>),
}
const POINT_BYTES: usize = 4 + 1 + 8 + 8;

/// The points whose time both engines can store (1..=u32::MAX), in their order: writes and
/// applied caller points leave the others out the same way, so a replay matches the original.
fn storable(points: &[Point]) -> Vec<Point> {
    points
        .iter()
        .filter(|p| p.time > 0 && p.time <= i64::from(u32::MAX))
        .copied()
        .collect()
}

fn encode(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + points.len() * POINT_BYTES);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    for p in points {
        out.extend_from_slice(&p.feed.to_le_bytes());
        out.push(u8::from(p.join));
        out.extend_from_slice(&p.time.to_le_bytes());
        out.extend_from_slice(&p.value.unwrap_or(f64::NAN).to_le_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Vec<Point>> {
    let (&version, rest) = bytes.split_first()?;
    if version != RECORD_VERSION || rest.len() < 4 {
        return None;
    }
    let n = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
    let body = &rest[4..];
    if body.len() != n.checked_mul(POINT_BYTES)? {
        return None;
    }
    Some(
        body.chunks_exact(POINT_BYTES)
            .map(|c| {
                let value = f64::from_le_bytes(c[13..21].try_into().unwrap_or_default());
                Point {
                    feed: u32::from_le_bytes(c[0..4].try_into().unwrap_or_default()),
                    join: c[4] != 0,
                    time: i64::from_le_bytes(c[5..13].try_into().unwrap_or_default()),
                    value: (!value.is_nan()).then_some(value),
                }
            })
            .collect(),
    )
}

impl FeedStore {
    /// Opens the store of the feed directories and the WAL in `wal_dir`, replaying the WAL
    /// after the last checkpoint.
    pub fn open(
        fixed_dir: &Path,
        variable_dir: &Path,
        wal_dir: &Path,
        cfg: StoreConfig,
    ) -> Result<Self> {
        Self::open_with(fixed_dir, variable_dir, wal_dir, cfg, &mut NoCallerRecords)
    }

    /// Opens the store and replays the WAL after the last checkpoint, handing the checkpointed
    /// state and the caller's records to `handler`.
    pub fn open_with(
        fixed_dir: &Path,
        variable_dir: &Path,
        wal_dir: &Path,
        cfg: StoreConfig,
        handler: &mut dyn Replay,
    ) -> Result<Self> {
        if !wal_dir.is_dir() {
            std::fs::create_dir_all(wal_dir).map_err(crate::error::io_err("creating", wal_dir))?;
            if let Some(parent) = wal_dir.parent() {
                crate::atomic_file::sync_dir(parent)?;
            }
        }
        let cp = checkpoint::read(wal_dir)?.unwrap_or_default();
        handler.restore(&cp.state)?;
        let wal = Wal::open(wal_dir, cp.next_lsn, cfg.wal)?;
        let mut store = Self {
            fixed_dir: fixed_dir.to_path_buf(),
            variable_dir: variable_dir.to_path_buf(),
            wal_dir: wal_dir.to_path_buf(),
            wal,
            feeds: HashMap::new(),
            applied: cp.next_lsn,
            cfg,
            replayed: 0,
            last_flush: std::time::Instant::now(),
            backup_asked: None,
            poisoned: false,
            checkpointed: None,
            checkpoint_lsn: cp.next_lsn,
            guard: None,
            padding_left: RECORD_PADDING,
            pending: 0,
            amends: Vec::new(),
            levels: LevelsAccount::default(),
        };
        let mut records: Vec<(Lsn, Logged)> = Vec::new();
        store.wal.replay(cp.next_lsn, |lsn, payload| {
            match payload.split_first() {
                Some((&CALLER_RECORD, rest)) => records.push((lsn, Logged::Caller(rest.to_vec()))),
                _ => match decode(payload) {
                    Some(points) => records.push((lsn, Logged::Points(points))),
                    None => {
                        return Err(StorageError::CorruptWal {
                            path: PathBuf::from(format!("record {lsn}")),
                            reason: "a record with a valid checksum does not decode".into(),
                        });
                    }
                },
            }
            Ok(())
        })?;
        for (lsn, record) in records {
            match record {
                Logged::Points(points) => {
                    store.begin_record();
                    let report = store.apply(&points)?;
                    for (feed, e) in report.refused {
                        tracing::warn!(lsn, feed, error = %e, "replayed write refused");
                    }
                }
                Logged::Caller(bytes) => handler.replay(&mut store, lsn, &bytes)?,
            }
            store.applied = lsn + 1;
            store.replayed += 1;
        }
        store.applied = store.applied.max(store.wal.first_new_lsn());
        if store.replayed == 0 && store.applied == cp.next_lsn && cp.state.len() <= KEEP_STATE {
            store.checkpointed = Some((cp.next_lsn, cp.state));
        }
        Ok(store)
    }

    /// Queues a caller record in the WAL; it is durable once the ticket resolves. Apply its
    /// effects with [`FeedStore::apply_points`], then call [`FeedStore::record_applied`].
    pub fn log(&mut self, record: &[u8]) -> Result<crate::wal::Ticket> {
        if self.poisoned {
            return Err(StorageError::StoreFailed);
        }
        let mut payload = Vec::with_capacity(record.len() + 1);
        payload.push(CALLER_RECORD);
        payload.extend_from_slice(record);
        self.wal.submit(payload)
    }

    /// The caller records logged from now until [`FeedStore::end_group`] share one log sync
    /// (see [`crate::wal::Wal::begin_group`]).
    pub fn begin_group(&self) {
        self.wal.begin_group();
    }

    /// Ends the group [`FeedStore::begin_group`] began.
    pub fn end_group(&self) {
        self.wal.end_group();
    }

    /// Starts a record: its writes together may pad at most [`RECORD_PADDING`] slots. Call it
    /// before applying each logged record, live and in replay alike, so refusals repeat.
    pub fn begin_record(&mut self) {
        self.padding_left = RECORD_PADDING;
    }

    /// Applies points that a logged caller record produced (no WAL write of their own).
    pub fn apply_points(&mut self, points: &[Point]) -> Result<WriteReport> {
        if self.poisoned {
            return Err(StorageError::StoreFailed);
        }
        let points = storable(points);
        self.apply(&points).inspect_err(|_| self.poisoned = true)
    }

    /// Stops the store: every later write, log and flush fails, so no checkpoint can cover a
    /// record whose effects were only partly applied. A restart replays from the last
    /// checkpoint.
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Whether the store was stopped by [`FeedStore::poison`] or a failed write.
    pub fn failed(&self) -> bool {
        self.poisoned
    }

    /// Marks every record up to `lsn` as applied: the next checkpoint covers it.
    /// The LSN after the last record applied (after an open, the last one replayed).
    pub fn applied_lsn(&self) -> Lsn {
        self.applied
    }

    /// Records before this LSN are covered by the last checkpoint: no replay runs them again.
    pub fn checkpoint_lsn(&self) -> Lsn {
        self.checkpoint_lsn
    }

    pub fn record_applied(&mut self, lsn: Lsn) {
        self.applied = self.applied.max(lsn + 1);
    }

    /// How many WAL records the last open replayed.
    pub fn replayed_records(&self) -> u64 {
        self.replayed
    }

    /// Creates a fixed-interval feed (durably: its files exist when this returns).
    pub fn create_fixed(&mut self, id: u32, interval: u32) -> Result<FixedMeta> {
        self.ensure_absent(id)?;
        let f = FixedFeed::create(&self.fixed_dir, id, interval, self.cfg.min_interval)?;
        let meta = f.meta();
        self.feeds.insert(id, Feed::Fixed(f));
        Ok(meta)
    }

    /// Creates a variable-interval feed.
    pub fn create_variable(&mut self, id: u32) -> Result<()> {
        self.ensure_absent(id)?;
        let f = VariableFeed::create(&self.variable_dir, id)?;
        self.feeds.insert(id, Feed::Variable(f));
        Ok(())
    }

    fn ensure_absent(&self, id: u32) -> Result<()> {
        if self.feeds.contains_key(&id)
            || fixed::exists(&self.fixed_dir, id)
            || variable::exists(&self.variable_dir, id)
        {
            return Err(StorageError::FeedExists { id });
        }
        Ok(())
    }

    /// The feed with `id`, opened from disk on first use.
    pub fn feed(&mut self, id: u32) -> Result<&mut Feed> {
        if !self.feeds.contains_key(&id) {
            let feed = if fixed::exists(&self.fixed_dir, id) {
                Feed::Fixed(FixedFeed::open(&self.fixed_dir, id)?)
            } else if variable::exists(&self.variable_dir, id) {
                Feed::Variable(VariableFeed::open(&self.variable_dir, id)?)
            } else {
                return Err(StorageError::NoSuchFeed { id });
            };
            self.feeds.insert(id, feed);
        }
        self.feeds
            .get_mut(&id)
            .ok_or(StorageError::NoSuchFeed { id })
    }

    /// Makes `points` durable in the WAL, then applies them. Every feed must exist; otherwise
    /// nothing is written. Points whose time cannot be stored (outside 1..=u32::MAX) are left
    /// out before logging.
    ///
    /// Blocks on the WAL's sync: call it from the shard's worker thread, not from async code.
    pub fn write(&mut self, points: &[Point]) -> Result<WriteReport> {
        if self.poisoned {
            return Err(StorageError::StoreFailed);
        }
        let points = storable(points);
        if points.is_empty() {
            return Ok(WriteReport::default());
        }
        for p in &points {
            self.feed(p.feed)?;
        }
        self.begin_record();
        let lsn = self.wal.append(encode(&points))?;
        // The record is durable: if applying it fails for a reason other than the data itself,
        // memory no longer matches the log, so the store stops until a restart replays it.
        let mut report = match self.apply(&points) {
            Ok(r) => r,
            Err(e) => {
                self.poisoned = true;
                tracing::error!(error = %e, lsn, "applying a logged write failed; store stopped until restart");
                return Err(e);
            }
        };
        report.lsn = Some(lsn);
        self.applied = lsn + 1;
        Ok(report)
    }

    /// Applies points to the engines. Refusals that depend only on the data (the padding
    /// limit) are reported per feed and are the same on every replay; any other failure is an
    /// error for the whole call.
    fn apply(&mut self, points: &[Point]) -> Result<WriteReport> {
        let mut report = WriteReport::default();
        // Points of one feed go to its engine together, in their order.
        let mut order: Vec<u32> = Vec::new();
        let mut by_feed: HashMap<u32, Vec<(i64, Option<f64>, bool)>> = HashMap::new();
        for p in points {
            by_feed
                .entry(p.feed)
                .or_insert_with(|| {
                    order.push(p.feed);
                    Vec::new()
                })
                .push((p.time, p.value, p.join));
        }
        let mut budget = self.padding_left;
        for id in order {
            let batch = by_feed.remove(&id).unwrap_or_default();
            let feed = match self.feed(id) {
                Ok(f) => f,
                // A feed deleted after the record was logged: nothing left to write to.
                Err(StorageError::NoSuchFeed { .. }) => continue,
                Err(e) => return Err(e),
            };
            let pts: Vec<(i64, Option<f64>)> = batch.iter().map(|b| (b.0, b.1)).collect();
            let before = feed.pending_len();
            let result = match feed {
                Feed::Fixed(f) => f.write_within(&pts, batch.iter().any(|b| b.2), &mut budget),
                Feed::Variable(f) => Ok(f.write(&pts)),
            };
            let added = feed.pending_len().saturating_sub(before);
            self.padding_left = budget;
            self.pending += added;
            match result {
                Ok(n) => report.stored += n,
                Err(e @ StorageError::PaddingLimit { .. }) => report.refused.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Whether more points wait in memory than [`MAX_PENDING_POINTS`]: the caller should flush
    /// (a checkpoint, with its state as of the last record applied) before the next record.
    /// Feed files change only at a checkpoint, so a replay after it starts from files that
    /// hold exactly what the checkpoint covers.
    pub fn flush_due(&self) -> bool {
        self.pending > MAX_PENDING_POINTS
    }

    /// Points waiting in memory for the next flush.
    pub fn pending_points(&self) -> usize {
        self.feeds.values().map(Feed::pending_len).sum()
    }

    /// Makes every later write (log, feed files, checkpoint) first ask `guard`, refusing with
    /// [`StorageError::Fenced`] once it says no.
    pub fn set_guard(&mut self, guard: crate::wal::Guard) {
        self.wal.set_guard(guard.clone());
        self.guard = Some(guard);
    }

    fn fenced(&self) -> Result<()> {
        match &self.guard {
            Some(may_write) if !may_write() => Err(StorageError::Fenced),
            _ => Ok(()),
        }
    }

    /// Flushes if `flush_interval` has passed since the last flush, or [`FeedStore::flush_due`];
    /// the shard's worker calls this after writes and on a timer.
    /// A timed flush waits while a backup runs ([`crate::backup`]); one for a full memory
    /// buffer does not.
    pub fn flush_if_due(&mut self, state: impl FnOnce() -> Vec<u8>) -> Result<Option<FlushStats>> {
        if self.flush_due() {
            return self.flush(&state()).map(Some);
        }
        if self.last_flush.elapsed() < self.cfg.flush_interval || self.backup_running() {
            return Ok(None);
        }
        self.flush(&state()).map(Some)
    }

    /// Whether a backup of this data directory runs now, asked of the filesystem at most once
    /// per [`BACKUP_ASKED_EVERY`] (a due flush asks on every write until it runs).
    pub fn backup_running(&mut self) -> bool {
        match self.backup_asked {
            Some((at, running)) if at.elapsed() < BACKUP_ASKED_EVERY => running,
            _ => {
                let running = crate::backup::running(&self.wal_dir);
                self.backup_asked = Some((std::time::Instant::now(), running));
                running
            }
        }
    }

    /// Writes all pending points to the feed files, then checkpoints (with the caller's `state`
    /// as of now) and trims the WAL.
    pub fn flush(&mut self, state: &[u8]) -> Result<FlushStats> {
        let started = std::time::Instant::now();
        let stats = self.flush_feeds(state)?;
        metrics::counter!(crate::metrics::FLUSHES).increment(1);
        metrics::counter!(crate::metrics::FLUSHED_POINTS).increment(stats.points as u64);
        metrics::histogram!(crate::metrics::FLUSH_SECONDS).record(started.elapsed());
        Ok(stats)
    }

    fn flush_feeds(&mut self, state: &[u8]) -> Result<FlushStats> {
        if self.poisoned {
            return Err(StorageError::StoreFailed);
        }
        self.fenced()?;
        if !self.amends.is_empty() && self.feeds.values().any(Feed::is_dirty) {
            self.amend_checkpoint()?;
        }
        self.last_flush = std::time::Instant::now();
        let mut stats = FlushStats::default();
        // Over the process's budget for levels, a store lets go of those not read for a
        // minute, not ten: the store over it may not be this one, which only drops its own.
        let idle = if crate::levels::IN_MEMORY.load(std::sync::atomic::Ordering::Relaxed)
            > self.cfg.levels_memory
        {
            crate::levels::IDLE_OVER_BUDGET
        } else {
            crate::levels::IDLE
        };
        for feed in self.feeds.values_mut() {
            let n = feed.pending_len();
            if let Some(may_write) = &self.guard
                && !may_write()
            {
                return Err(StorageError::Fenced);
            }
            if feed.flush()? {
                stats.feeds += 1;
                stats.points += n;
            }
            if let Feed::Fixed(f) = feed {
                let idle = if f.take_eviction() {
                    std::time::Duration::ZERO
                } else {
                    idle
                };
                f.release_idle_levels(idle);
                f.release_idle_map();
                if self.levels.by_feed.contains_key(&f.id()) {
                    self.levels.set(f.id(), f.levels_memory().0);
                }
            }
        }
        self.pending = 0;
        let unchanged = self
            .checkpointed
            .as_ref()
            .is_some_and(|(lsn, kept)| *lsn == self.applied && kept.as_slice() == state);
        if stats.feeds == 0 && unchanged {
            return Ok(stats);
        }
        self.fenced()?;
        checkpoint::write(
            &self.wal_dir,
            &Checkpoint {
                next_lsn: self.applied,
                state: state.to_vec(),
            },
        )?;
        self.checkpointed = (state.len() <= KEEP_STATE).then(|| (self.applied, state.to_vec()));
        self.checkpoint_lsn = self.applied;
        // The caller's state as of now holds what the amends would have added.
        self.amends.clear();
        self.wal.trim(self.applied)?;
        Ok(stats)
    }

    /// Counts feed `id`'s levels after a read of it (which may have built them) and, past the
    /// process's budget for levels, drops this store's others, those used longest ago first
    /// (saved first: they load again when next read).
    pub fn after_read(&mut self, id: u32) {
        self.count_levels(id);
        let cap = self.cfg.levels_memory;
        let over = || crate::levels::IN_MEMORY.load(std::sync::atomic::Ordering::Relaxed) > cap;
        if !over() {
            return;
        }
        let mut held: Vec<Held> = Vec::new();
        for &other in self.levels.by_feed.keys() {
            if other != id
                && let Some(Feed::Fixed(f)) = self.feeds.get(&other)
            {
                let (bytes, used) = f.levels_memory();
                held.push(Held {
                    id: other,
                    bytes,
                    used,
                    dirty: f.is_dirty(),
                    leaving: f.levels_leaving(),
                });
            }
        }
        let in_memory = crate::levels::IN_MEMORY.load(std::sync::atomic::Ordering::Relaxed);
        for (other, when) in evictions(held, in_memory, cap) {
            if let Some(Feed::Fixed(f)) = self.feeds.get_mut(&other) {
                match when {
                    Evict::Now => f.evict_levels(),
                    Evict::AfterFlush => f.evict_levels_after_flush(),
                }
            }
            self.count_levels(other);
        }
    }

    /// Records what feed `id`'s levels hold in memory now.
    fn count_levels(&mut self, id: u32) {
        let bytes = match self.feeds.get(&id) {
            Some(Feed::Fixed(f)) => f.levels_memory().0,
            _ => 0,
        };
        self.levels.set(id, bytes);
    }

    /// Queues `amend` for the last checkpoint's state: applied and written, at the same LSN,
    /// before the next flush writes a feed file, and dropped once a newer checkpoint is
    /// written (the caller's state passed to it must hold the same facts). For what the caller
    /// read from the feed files since that checkpoint, which are unchanged until that flush.
    pub fn amend_before_flush(&mut self, amend: Amend) {
        self.amends.push(amend);
    }

    /// Rewrites the last checkpoint with the queued amends applied.
    fn amend_checkpoint(&mut self) -> Result<()> {
        let old = match self.checkpointed.take() {
            Some((lsn, state)) if lsn == self.checkpoint_lsn => state,
            _ => match checkpoint::read(&self.wal_dir)? {
                Some(cp) if cp.next_lsn == self.checkpoint_lsn => cp.state,
                Some(cp) => {
                    return Err(StorageError::CorruptCheckpoint {
                        path: self.wal_dir.clone(),
                        reason: format!(
                            "the last checkpoint starts at LSN {}, this store's at {}",
                            cp.next_lsn, self.checkpoint_lsn
                        ),
                    });
                }
                None => Vec::new(),
            },
        };
        let mut state = old;
        for amend in self.amends.drain(..) {
            if let Some(new) = amend(&state) {
                state = new;
            }
        }
        let written = self.fenced().and_then(|()| {
            checkpoint::write(
                &self.wal_dir,
                &Checkpoint {
                    next_lsn: self.checkpoint_lsn,
                    state: state.clone(),
                },
            )
        });
        if let Err(e) = written {
            // Kept for the next flush, which must not write feed files without it either.
            self.amends.push(Box::new(move |_| Some(state)));
            return Err(e);
        }
        self.checkpointed = (state.len() <= KEEP_STATE).then_some((self.checkpoint_lsn, state));
        Ok(())
    }

    /// Empties a feed. Pending writes are flushed and checkpointed first, so no replay can
    /// bring old points back.
    pub fn clear(&mut self, id: u32, state: &[u8]) -> Result<()> {
        self.feed(id)?;
        self.flush(state)?;
        // The flush's writes and syncs take time, on a shared filesystem much of it: ask again
        // right before the file is changed.
        self.fenced()?;
        let cleared = match self.feed(id)? {
            Feed::Fixed(f) => f.clear(),
            Feed::Variable(f) => f.clear(),
        };
        self.count_levels(id);
        cleared?;
        self.checkpoint_again(state)
    }

    /// Writes the last checkpoint again (its LSN, `state`) after a feed file changed outside
    /// a flush (cleared, trimmed, a record deleted, its files deleted): a running backup
    /// ([`crate::backup`]) sees the feed files change only through the checkpoint files, and
    /// the flush before such a change writes none when nothing was logged since the last.
    fn checkpoint_again(&mut self, state: &[u8]) -> Result<()> {
        self.fenced()
            .and_then(|()| {
                checkpoint::write(
                    &self.wal_dir,
                    &Checkpoint {
                        next_lsn: self.checkpoint_lsn,
                        state: state.to_vec(),
                    },
                )
            })
            // The file changed already, and the caller takes an error for "nothing happened"
            // (it puts back what the change removed from its state): nothing more is written
            // until the shard starts again from the checkpoint on disk.
            .inspect_err(|_| self.poisoned = true)?;
        self.checkpointed =
            (state.len() <= KEEP_STATE).then(|| (self.checkpoint_lsn, state.to_vec()));
        Ok(())
    }

    /// Drops a feed's data before `start_time` (after a flush and checkpoint, as for
    /// [`FeedStore::clear`]). Returns the bytes written, or emoncms's message when refused.
    pub fn trim(
        &mut self,
        id: u32,
        start_time: i64,
        state: &[u8],
    ) -> Result<std::result::Result<u64, String>> {
        self.feed(id)?;
        self.flush(state)?;
        self.fenced()?;
        let trimmed = match self.feed(id)? {
            Feed::Fixed(f) => match f.trim(start_time) {
                Ok(n) => Ok(Ok(n)),
                Err(crate::fixed::TrimError::Storage(e)) => Err(e),
                Err(e) => Ok(Err(e.to_string())),
            },
            Feed::Variable(f) => {
                let t = u32::try_from(start_time.max(0)).unwrap_or(u32::MAX);
                f.trim(t)
                    .map(|n| n.ok_or_else(|| "Invalid start time".to_string()))
            }
        };
        self.count_levels(id);
        if matches!(trimmed, Ok(Ok(_))) {
            self.checkpoint_again(state)?;
        }
        trimmed
    }

    /// Removes a variable feed's record at exactly `time` (after a flush and checkpoint, as for
    /// [`FeedStore::clear`], so no replay brings it back). Returns whether a record was there;
    /// a fixed-interval feed has no records to remove and answers `false`.
    pub fn delete_point(&mut self, id: u32, time: u32, state: &[u8]) -> Result<bool> {
        self.feed(id)?;
        self.flush(state)?;
        self.fenced()?;
        let deleted = match self.feed(id)? {
            Feed::Fixed(_) => return Ok(false),
            Feed::Variable(f) => f.delete_point(time)?,
        };
        if deleted {
            self.checkpoint_again(state)?;
        }
        Ok(deleted)
    }

    /// The feed's data file from a byte offset (emoncms's `export`; see the engines), after
    /// a flush (see [`FeedStore::export_span`]).
    pub fn export(&mut self, id: u32, offset: u64, state: &[u8]) -> Result<Vec<u8>> {
        self.export_span(id, offset, Some(state))?.read()
    }

    /// Whether the feed has points in memory not yet in its file.
    pub fn is_dirty(&mut self, id: u32) -> Result<bool> {
        Ok(self.feed(id)?.is_dirty())
    }

    /// Where [`FeedStore::export`]'s bytes are. With `fresh` (the caller's state), a feed with
    /// points in memory is first flushed with everything else and checkpointed: feed files
    /// change only at a checkpoint, so a replay finds in them exactly what the checkpoint
    /// covers. Without, the file as it is (emoncms's export with its write buffer on): a
    /// flush of the whole store costs a sync per feed written, not for anyone to ask for.
    pub fn export_span(&mut self, id: u32, offset: u64, fresh: Option<&[u8]>) -> Result<FileSpan> {
        if let Some(state) = fresh
            && self.feed(id)?.is_dirty()
        {
            self.flush(state)?;
        }
        Ok(match self.feed(id)? {
            Feed::Fixed(f) => f.disk_span(offset),
            Feed::Variable(f) => f.disk_span(offset),
        })
    }

    /// Deletes a feed's files (after a flush and checkpoint, as for [`FeedStore::clear`]).
    pub fn delete(&mut self, id: u32, state: &[u8]) -> Result<()> {
        self.feed(id)?;
        self.flush(state)?;
        self.fenced()?;
        let deleted = match self.feeds.remove(&id) {
            Some(Feed::Fixed(f)) => f.delete(),
            Some(Feed::Variable(f)) => f.delete(),
            None => Err(StorageError::NoSuchFeed { id }),
        };
        self.count_levels(id);
        deleted?;
        self.checkpoint_again(state)
    }
}

/// `len` bytes of the file at `path` from byte `from`: a feed's data as it was when the span
/// was taken. Data files only grow at their end between flushes, so reading the span later
/// gives those bytes, unless the feed is cleared, trimmed or deleted meanwhile (the read then
/// ends short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpan {
    pub path: PathBuf,
    pub from: u64,
    pub len: u64,
}

impl FileSpan {
    /// The span's bytes, all at once (for small files and tests; a server sends them on in
    /// pieces).
    pub fn read(&self) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        if self.len == 0 {
            return Ok(Vec::new());
        }
        let f =
            std::fs::File::open(&self.path).map_err(crate::error::io_err("opening", &self.path))?;
        let len = usize::try_from(self.len).map_err(|_| {
            crate::error::io_err("reading", &self.path)(std::io::Error::from(
                std::io::ErrorKind::OutOfMemory,
            ))
        })?;
        let mut out = vec![0u8; len];
        f.read_exact_at(&mut out, self.from)
            .map_err(crate::error::io_err("reading", &self.path))?;
        Ok(out)
    }
}

impl Drop for FeedStore {
    /// A store whose lease has ended leaves the feeds' files to the next owner, their levels'
    /// files included (a feed dropped otherwise saves its levels).
    fn drop(&mut self) {
        if self.fenced().is_err() {
            for feed in self.feeds.values_mut() {
                if let Feed::Fixed(f) = feed {
                    f.stop_saving_levels();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_699_999_200;

    struct Dirs(tempfile::TempDir);

    impl Dirs {
        fn new() -> Self {
            let d = tempfile::tempdir().expect("tempdir");
            for sub in ["phpfina", "phptimeseries"] {
                std::fs::create_dir(d.path().join(sub)).expect("mkdir");
            }
            Self(d)
        }

        fn open(&self) -> FeedStore {
            self.open_with(StoreConfig::default())
        }

        fn open_with(&self, cfg: StoreConfig) -> FeedStore {
            let p = self.0.path();
            FeedStore::open(
                &p.join("phpfina"),
                &p.join("phptimeseries"),
                &p.join("wal"),
                cfg,
            )
            .expect("open store")
        }
    }

    fn pt(feed: u32, time: i64, value: f64) -> Point {
        Point {
            feed,
            time,
            value: Some(value),
            join: false,
        }
    }

    fn fixed_values(store: &mut FeedStore, id: u32) -> Vec<f32> {
        match store.feed(id).expect("feed") {
            Feed::Fixed(f) => f.read_slots(0, f.npoints()).expect("read"),
            Feed::Variable(_) => panic!("fixed expected"),
        }
    }

    /// The checkpoint file's identity: a rewrite replaces it (a new inode).
    fn checkpoint_inode(dirs: &Dirs) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let newest = checkpoint::files(&dirs.0.path().join("wal"))
            .expect("list")
            .into_iter()
            .next()?;
        std::fs::metadata(newest.0).ok().map(|m| m.ino())
    }

    #[test]
    fn a_guard_that_says_no_stops_every_write() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dirs = Dirs::new();
        let mut store = dirs.open();
        store.create_fixed(1, 10).expect("create");
        let allowed = Arc::new(AtomicBool::new(true));
        let a = allowed.clone();
        store.set_guard(Arc::new(move || a.load(Ordering::SeqCst)));
        store.write(&[pt(1, T0, 1.0)]).expect("allowed");
        allowed.store(false, Ordering::SeqCst);
        assert!(matches!(
            store.write(&[pt(1, T0 + 10, 2.0)]),
            Err(StorageError::Fenced)
        ));
        assert!(matches!(store.flush(b"s"), Err(StorageError::Fenced)));
        assert_eq!(checkpoint_inode(&dirs), None, "no checkpoint written");
        drop(store);
        // Only what was written while allowed is in the log.
        let mut store = dirs.open();
        assert_eq!(fixed_values(&mut store, 1), vec![1.0]);
    }

    /// A kill between a flush's feed files and its checkpoint: the checkpoint replayed from
    /// holds the amends queued before that flush, and no amend is written when no feed file
    /// would change.
    #[test]
    fn amends_reach_the_checkpoint_before_any_feed_file_changes() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dirs = Dirs::new();
        let wal = dirs.0.path().join("wal");
        let mut store = dirs.open();
        store.create_fixed(1, 10).expect("create");
        store.write(&[pt(1, T0, 1.0)]).expect("write");
        store.flush(b"A").expect("flush");
        let read_state = || checkpoint::read(&wal).expect("read").expect("one").state;

        // Nothing to write to the files: the amend waits for a flush that writes some.
        store.amend_before_flush(Box::new(|old: &[u8]| Some([old, b"B"].concat())));
        store.flush(b"A").expect("flush");
        assert_eq!(read_state(), b"A".to_vec(), "no feed file changed");

        // The dat file growing past one slot tells the guard the flush wrote it: the
        // checkpoint after it is refused, as a kill would stop it.
        let dat = dirs.0.path().join("phpfina").join("1.dat");
        let allowed = Arc::new(AtomicBool::new(true));
        let a = allowed.clone();
        store.set_guard(Arc::new(move || {
            a.load(Ordering::SeqCst) && std::fs::metadata(&dat).map_or(true, |m| m.len() <= 4)
        }));
        store.write(&[pt(1, T0 + 10, 2.0)]).expect("write");
        store.amend_before_flush(Box::new(|old: &[u8]| Some([old, b"C"].concat())));
        assert!(matches!(store.flush(b"ABC2"), Err(StorageError::Fenced)));
        allowed.store(false, Ordering::SeqCst);
        drop(store);
        assert_eq!(read_state(), b"ABC".to_vec(), "amended at the old LSN");
        let mut store = dirs.open();
        assert_eq!(
            fixed_values(&mut store, 1),
            vec![1.0, 2.0],
            "the file ran ahead"
        );

        // A flush that gets its checkpoint written drops the amends it covers: a kill in the
        // next flush finds that checkpoint as written.
        store.amend_before_flush(Box::new(|_: &[u8]| Some(b"stale".to_vec())));
        store.write(&[pt(1, T0 + 20, 3.0)]).expect("write");
        store.flush(b"D").expect("flush");
        let dat = dirs.0.path().join("phpfina").join("1.dat");
        store.set_guard(Arc::new(move || {
            std::fs::metadata(&dat).map_or(true, |m| m.len() <= 12)
        }));
        store.write(&[pt(1, T0 + 30, 4.0)]).expect("write");
        assert!(matches!(store.flush(b"E"), Err(StorageError::Fenced)));
        assert_eq!(read_state(), b"D".to_vec());
    }

    /// An export without the caller's state sends the file as it is and flushes nothing; with
    /// it, the points in memory are written first (and checkpointed).
    #[test]
    fn an_export_flushes_only_when_asked_to() {
        let dirs = Dirs::new();
        let mut store = dirs.open();
        store.create_fixed(1, 10).expect("create");
        store.create_fixed(2, 10).expect("create");
        store.write(&[pt(1, T0, 1.0)]).expect("write");
        store.flush(b"s").expect("flush");
        store
            .write(&[pt(1, T0 + 10, 2.0), pt(2, T0, 3.0)])
            .expect("write");
        let before = checkpoint_inode(&dirs);
        let span = store.export_span(1, 0, None).expect("span");
        assert_eq!(span.read().expect("read"), 1.0f32.to_le_bytes().to_vec());
        assert!(store.is_dirty(1).expect("feed") && store.is_dirty(2).expect("feed"));
        assert_eq!(checkpoint_inode(&dirs), before, "no checkpoint written");
        let span = store.export_span(1, 0, Some(b"t")).expect("span");
        assert_eq!(span.len, 8);
        assert!(
            !store.is_dirty(2).expect("feed"),
            "flushed with everything else"
        );
        assert_ne!(checkpoint_inode(&dirs), before);
    }

    /// Makes fixed feed `id` with 256 slots of 1.0 from `T0`, flushed.
    fn flushed_ones(store: &mut FeedStore, id: u32) {
        store.create_fixed(id, 10).expect("create");
        let points: Vec<Point> = (0..256).map(|i| pt(id, T0 + 10 * i, 1.0)).collect();
        store.write(&points).expect("write");
        store.flush(b"s").expect("flush");
    }

    /// The sum and count of feed 1's first 256 slots, through its levels.
    fn window_sum(store: &mut FeedStore) -> (f64, u64) {
        match store.feed(1).expect("feed") {
            Feed::Fixed(f) => f.sum_windows(&[(0, 256)]).expect("sum")[0],
            Feed::Variable(_) => panic!("fixed expected"),
        }
    }

    /// Past the process's budget for levels, a read drops the store's other feeds' levels
    /// (the one read keeps its own), and they load again from their file when next read.
    #[test]
    fn levels_past_the_budget_are_dropped_oldest_first() {
        let dirs = Dirs::new();
        let cfg = StoreConfig {
            levels_memory: 1,
            ..StoreConfig::default()
        };
        let mut store = dirs.open_with(cfg);
        for id in [1, 2] {
            store.create_fixed(id, 10).expect("create");
            let points: Vec<Point> = (0..256).map(|i| pt(id, T0 + 10 * i, 1.0)).collect();
            store.write(&points).expect("write");
        }
        store.flush(b"s").expect("flush");
        let average = |store: &mut FeedStore, id: u32| {
            let sum = match store.feed(id).expect("feed") {
                Feed::Fixed(f) => f.sum_windows(&[(0, 256)]).expect("sum")[0],
                Feed::Variable(_) => panic!("fixed expected"),
            };
            store.after_read(id);
            sum
        };
        let held = |store: &mut FeedStore, id: u32| match store.feed(id).expect("feed") {
            Feed::Fixed(f) => f.levels_memory().0,
            Feed::Variable(_) => 0,
        };
        assert_eq!(average(&mut store, 1), (256.0, 256));
        assert!(held(&mut store, 1) > 0, "the feed read keeps its levels");
        // Feed 1 has a point in memory (a live feed nearly always has): dropped all the same.
        store.write(&[pt(1, T0 + 10 * 256, 1.0)]).expect("write");
        assert_eq!(average(&mut store, 2), (256.0, 256));
        assert!(held(&mut store, 2) > 0);
        assert_eq!(held(&mut store, 1), 0, "dropped: over the budget");
        assert_eq!(average(&mut store, 1), (256.0, 256));
        assert_eq!(held(&mut store, 2), 0);
    }

    /// A store whose lease ended (a paused node) is dropped after the next owner rewrote a
    /// block its levels had summed: it leaves the next owner's levels file alone.
    #[test]
    fn a_fenced_store_leaves_the_levels_file_to_the_next_owner() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dirs = Dirs::new();
        let mut old = dirs.open();
        flushed_ones(&mut old, 1);
        let allowed = Arc::new(AtomicBool::new(true));
        let a = allowed.clone();
        old.set_guard(Arc::new(move || a.load(Ordering::SeqCst)));
        assert_eq!(window_sum(&mut old), (256.0, 256), "levels built");
        allowed.store(false, Ordering::SeqCst);
        let mut next = dirs.open();
        next.write(&[pt(1, T0 + 50, 100.0)]).expect("write");
        next.flush(b"s").expect("flush");
        assert_eq!(window_sum(&mut next), (355.0, 256));
        drop(next);
        drop(old);
        assert_eq!(window_sum(&mut dirs.open()), (355.0, 256));
    }

    /// A slot rewritten in place keeps the `.dat` length, and within one tick of a coarse
    /// clock its time too: the levels file saved before must not be believed after.
    #[test]
    fn an_overwrite_removes_the_levels_file_it_makes_stale() {
        let dirs = Dirs::new();
        let mut store = dirs.open();
        store.create_fixed(1, 10).expect("create");
        let points: Vec<Point> = (0..256).map(|i| pt(1, T0 + 10 * i, 1.0)).collect();
        store.write(&points).expect("write");
        store.flush(b"s").expect("flush");
        assert_eq!(window_sum(&mut store), (256.0, 256));
        drop(store);
        let levels = crate::levels::levels_path(&dirs.0.path().join("phpfina"), 1);
        assert!(levels.exists(), "saved on close");
        let mut store = dirs.open();
        store.write(&[pt(1, T0 + 50, 100.0)]).expect("write");
        store.flush(b"s").expect("flush");
        assert!(
            !levels.exists(),
            "stale: removed with the overwrite's flush"
        );
        assert_eq!(window_sum(&mut store), (355.0, 256));
    }

    #[test]
    fn an_unchanged_store_writes_no_checkpoint_and_a_change_does() {
        let dirs = Dirs::new();
        let mut store = dirs.open();
        store.flush(b"").expect("flush");
        assert_eq!(
            checkpoint_inode(&dirs),
            None,
            "empty and idle: nothing written"
        );
        store.create_fixed(1, 10).expect("create");
        store.write(&[pt(1, T0, 1.0)]).expect("write");
        store.flush(b"s1").expect("flush");
        let first = checkpoint_inode(&dirs).expect("written");
        store.flush(b"s1").expect("flush");
        assert_eq!(
            checkpoint_inode(&dirs),
            Some(first),
            "unchanged: not rewritten"
        );
        store.flush(b"s2").expect("flush");
        let second = checkpoint_inode(&dirs).expect("written");
        assert_ne!(second, first, "a new caller state is checkpointed");
        store.write(&[pt(1, T0 + 10, 2.0)]).expect("write");
        store.flush(b"s2").expect("flush");
        assert_ne!(
            checkpoint_inode(&dirs),
            Some(second),
            "new points are checkpointed"
        );
        drop(store);
        // Reopened with nothing to replay: the checkpoint on disk is recognised.
        let third = checkpoint_inode(&dirs);
        let mut store = dirs.open();
        store.flush(b"s2").expect("flush");
        assert_eq!(checkpoint_inode(&dirs), third);
        assert_eq!(fixed_values(&mut store, 1), vec![1.0, 2.0]);
    }

    #[test]
    fn unflushed_writes_survive_reopen_through_the_wal() {
        let dirs = Dirs::new();
        {
            let mut s = dirs.open();
            s.create_fixed(1, 10).expect("create");
            s.create_variable(2).expect("create");
            s.write(&[pt(1, T0, 1.0), pt(2, T0, 2.0)]).expect("write");
            s.write(&[pt(1, T0 + 10, 3.0), pt(2, T0 + 5, 4.0)])
                .expect("write");
            // Dropped without flushing, like a crash.
        }
        let mut s = dirs.open();
        assert_eq!(s.replayed_records(), 2);
        assert_eq!(fixed_values(&mut s, 1), vec![1.0, 3.0]);
        s.flush(&[]).expect("flush");
        drop(s);
        let mut s = dirs.open();
        assert_eq!(s.replayed_records(), 0, "checkpoint covers everything");
        assert_eq!(fixed_values(&mut s, 1), vec![1.0, 3.0]);
        match s.feed(2).expect("feed") {
            Feed::Variable(f) => assert_eq!(f.meta().npoints, 2),
            Feed::Fixed(_) => panic!("variable expected"),
        }
    }

    /// One record stepping far ahead on several feeds pads them from one budget: the feeds
    /// after it is spent are refused, and refused again when the record is replayed. Past
    /// `MAX_PENDING_POINTS` pending points a flush is due at once; feed files change only then.
    #[test]
    fn a_records_feeds_share_one_padding_budget_and_a_flush_is_due_past_the_bound() {
        let dirs = Dirs::new();
        let half = (RECORD_PADDING / 2) as i64;
        let far = T0 + 10 * (half + 1);
        let dat_len = |id: u32| {
            std::fs::metadata(dirs.0.path().join(format!("phpfina/{id}.dat")))
                .expect("dat")
                .len()
        };
        let npoints = |s: &mut FeedStore, id: u32| match s.feed(id).expect("feed") {
            Feed::Fixed(f) => f.npoints(),
            Feed::Variable(_) => panic!("fixed expected"),
        };
        {
            let mut s = dirs.open();
            for id in 1..=3 {
                s.create_fixed(id, 10).expect("create");
            }
            s.write(&[pt(1, T0, 1.0), pt(2, T0, 1.0), pt(3, T0, 1.0)])
                .expect("write");
            s.flush(&[]).expect("checkpoint");
            let r = s
                .write(&[pt(1, far, 2.0), pt(2, far, 2.0), pt(3, far, 2.0)])
                .expect("write");
            assert_eq!(r.stored, 2);
            assert!(
                matches!(r.refused[..], [(3, StorageError::PaddingLimit { .. })]),
                "{:?}",
                r.refused
            );
            assert!(s.flush_due(), "past MAX_PENDING_POINTS");
            assert_eq!(dat_len(1), 4, "nothing written before the checkpoint");
            // Dropped without a checkpoint, like a crash.
        }
        let mut s = dirs.open();
        assert_eq!(s.replayed_records(), 1);
        assert_eq!(
            (npoints(&mut s, 1), npoints(&mut s, 2), npoints(&mut s, 3)),
            (half as u64 + 2, half as u64 + 2, 1),
            "the same refusal on replay"
        );
        assert!(s.flush_due());
        assert!(
            s.flush_if_due(Vec::new).expect("flush").is_some(),
            "due at once"
        );
        assert!(!s.flush_due());
        assert_eq!(dat_len(1), 4 * (half as u64 + 2));
        // The next record has a budget of its own.
        let r = s.write(&[pt(3, far, 2.0)]).expect("write");
        assert_eq!((r.stored, r.refused.len()), (1, 0));
        drop(s);
        let mut s = dirs.open();
        assert_eq!(s.replayed_records(), 1);
        for id in 1..=3 {
            let Feed::Fixed(f) = s.feed(id).expect("feed") else {
                panic!("fixed expected");
            };
            assert_eq!(f.npoints(), half as u64 + 2, "feed {id}");
            let end = f.npoints();
            assert_eq!(f.read_slots(end - 1, end).expect("read"), vec![2.0]);
            assert!(f.read_slots(1, 2).expect("read")[0].is_nan());
        }
    }

    #[test]
    fn unknown_feed_writes_nothing_and_refusals_are_reported() {
        let dirs = Dirs::new();
        let mut s = dirs.open();
        s.create_fixed(1, 10).expect("create");
        assert!(matches!(
            s.write(&[pt(1, T0, 1.0), pt(9, T0, 1.0)]),
            Err(StorageError::NoSuchFeed { id: 9 })
        ));
        assert_eq!(s.pending_points(), 0);
        s.write(&[pt(1, T0, 1.0)]).expect("write");
        let far = T0 + 10 * (crate::fixed::MAX_PADDING as i64 + 5);
        let r = s.write(&[pt(1, far, 2.0)]).expect("write");
        assert_eq!(r.stored, 0);
        assert!(matches!(
            r.refused[..],
            [(1, StorageError::PaddingLimit { .. })]
        ));
    }

    #[test]
    fn flush_if_due_waits_for_the_interval() {
        let dirs = Dirs::new();
        let cfg = StoreConfig {
            flush_interval: std::time::Duration::from_secs(3600),
            ..StoreConfig::default()
        };
        let mut s = dirs.open_with(cfg);
        s.create_fixed(1, 10).expect("create");
        s.write(&[pt(1, T0, 1.0)]).expect("write");
        assert_eq!(s.flush_if_due(Vec::new).expect("flush"), None);
        assert_eq!(s.pending_points(), 1);
        s.cfg.flush_interval = std::time::Duration::ZERO;
        assert_eq!(
            s.flush_if_due(Vec::new).expect("flush"),
            Some(FlushStats {
                feeds: 1,
                points: 1
            })
        );
        assert_eq!(s.pending_points(), 0);
    }

    /// Clearing, trimming or deleting a feed, or a record of one, writes the checkpoint again
    /// even when nothing was logged since the last: a running backup sees feed files change
    /// only through the checkpoint files.
    #[test]
    fn changing_a_feed_file_outside_a_flush_writes_the_checkpoint_again() {
        use std::os::unix::fs::MetadataExt;
        let dirs = Dirs::new();
        let mut s = dirs.open();
        s.create_fixed(1, 10).expect("create");
        s.create_variable(2).expect("create");
        let points: Vec<Point> = (0..10)
            .flat_map(|i| [pt(1, T0 + 10 * i, 1.0), pt(2, T0 + 10 * i, 1.0)])
            .collect();
        s.write(&points).expect("write");
        s.flush(b"s").expect("flush");
        let wal = dirs.0.path().join("wal");
        let seen = || -> Vec<(u64, u64)> {
            checkpoint::files(&wal)
                .expect("files")
                .iter()
                .map(|(p, _)| {
                    let m = std::fs::metadata(p).expect("stat");
                    (m.ino(), m.len())
                })
                .collect()
        };
        let mut before = seen();
        s.flush(b"s").expect("flush");
        assert_eq!(seen(), before, "nothing to write: the checkpoint stands");
        assert!(
            s.delete_point(2, (T0 + 10) as u32, b"s")
                .expect("delete point")
        );
        assert_ne!(seen(), before, "a record deleted");
        before = seen();
        assert!(s.trim(1, T0 + 50, b"s").expect("trim").is_ok());
        assert_ne!(seen(), before, "trimmed");
        before = seen();
        s.clear(1, b"s").expect("clear");
        assert_ne!(seen(), before, "cleared");
        before = seen();
        s.delete(2, b"s").expect("delete");
        assert_ne!(seen(), before, "deleted");
    }

    /// Levels go least recently read first, of feeds with nothing unflushed first; a feed
    /// being written loses its levels at its next flush, unless memory is past the budget by a
    /// quarter.
    #[test]
    fn evictions_take_idle_clean_levels_first_and_defer_written_ones() {
        let now = std::time::Instant::now();
        let ago = |s: u64| Some(now - std::time::Duration::from_secs(s));
        let h = |id, used, dirty| Held {
            id,
            bytes: 100,
            used,
            dirty,
            leaving: false,
        };
        let held = vec![
            h(1, ago(50), true),
            h(2, ago(10), false),
            h(3, ago(30), false),
            h(4, ago(40), true),
        ];
        // 100 over: one clean feed goes, the least recently read.
        assert_eq!(evictions(held.clone(), 1_100, 1_000), [(3, Evict::Now)]);
        // 250 over (within a quarter): both clean ones, then a written one at its flush.
        assert_eq!(
            evictions(held.clone(), 1_250, 1_000),
            [(3, Evict::Now), (2, Evict::Now), (1, Evict::AfterFlush)]
        );
        // Levels already leaving at their flush count as gone: nothing more goes.
        let leaving = vec![
            Held {
                bytes: 600,
                leaving: true,
                ..h(1, ago(50), true)
            },
            h(2, ago(10), false),
        ];
        assert_eq!(evictions(leaving.clone(), 1_200, 1_000), []);
        // Past the ceiling, they go now after the clean ones.
        assert_eq!(
            evictions(leaving, 1_300, 700),
            [(2, Evict::Now), (1, Evict::Now)]
        );
        // Still past a quarter over once the clean ones are gone: written ones go now too.
        assert_eq!(
            evictions(held, 1_600, 1_000),
            [
                (3, Evict::Now),
                (2, Evict::Now),
                (1, Evict::Now),
                (4, Evict::Now)
            ]
        );
    }

    /// A feed being written whose levels are to go at its next flush keeps them until then,
    /// and leaves them saved, so its next read loads them instead of rebuilding them.
    #[test]
    fn levels_evicted_after_a_flush_are_saved_first() {
        let dirs = Dirs::new();
        let mut store = dirs.open();
        flushed_ones(&mut store, 1);
        assert_eq!(window_sum(&mut store), (256.0, 256), "levels built");
        store.write(&[pt(1, T0 + 10 * 256, 1.0)]).expect("write");
        let held = |store: &mut FeedStore| match store.feed(1).expect("feed") {
            Feed::Fixed(f) => f.levels_memory().0,
            Feed::Variable(_) => 0,
        };
        match store.feed(1).expect("feed") {
            Feed::Fixed(f) => f.evict_levels_after_flush(),
            Feed::Variable(_) => panic!("fixed expected"),
        }
        assert!(held(&mut store) > 0, "kept until the flush");
        store.flush(b"s").expect("flush");
        assert_eq!(held(&mut store), 0, "gone at the flush");
        let p = dirs.0.path().join("phpfina");
        let saved = crate::levels::Levels::load(&p.join("1.levels"), &p.join("1.dat"));
        assert!(saved.is_built(), "saved, to load instead of a rebuild");
    }

    /// A checkpoint that cannot be written again after a feed file changed stops the store:
    /// its caller takes the error for "nothing happened" and would carry on from a state the
    /// files no longer match.
    #[test]
    fn a_failed_checkpoint_after_a_clear_stops_the_store() {
        let dirs = Dirs::new();
        let mut s = dirs.open();
        s.create_fixed(1, 10).expect("create");
        s.write(&[pt(1, T0, 1.0)]).expect("write");
        s.flush(b"s").expect("flush");
        let wal = dirs.0.path().join("wal");
        std::fs::rename(&wal, dirs.0.path().join("wal.away")).expect("move");
        std::fs::write(&wal, b"not a directory").expect("file");
        assert!(s.clear(1, b"s").is_err());
        assert!(s.failed(), "stopped");
    }

    /// A timed flush waits while a backup holds the data directory, and runs once it ends.
    #[test]
    fn a_timed_flush_waits_for_a_running_backup() {
        let dirs = Dirs::new();
        let p = dirs.0.path();
        let cfg = StoreConfig {
            flush_interval: std::time::Duration::ZERO,
            ..StoreConfig::default()
        };
        let mut s = dirs.open_with(cfg);
        s.create_fixed(1, 10).expect("create");
        s.write(&[pt(1, T0, 1.0)]).expect("write");
        let hold = crate::backup::hold(p).expect("hold");
        assert_eq!(s.flush_if_due(Vec::new).expect("flush"), None);
        assert_eq!(s.pending_points(), 1);
        drop(hold);
        // Asked again after `BACKUP_ASKED_EVERY`.
        assert_eq!(s.flush_if_due(Vec::new).expect("flush"), None);
        s.backup_asked = None;
        assert!(s.flush_if_due(Vec::new).expect("flush").is_some());
        assert_eq!(s.pending_points(), 0);
    }

    #[test]
    fn trimmed_points_do_not_come_back_on_replay() {
        let dirs = Dirs::new();
        {
            let mut s = dirs.open();
            s.create_fixed(1, 10).expect("create");
            s.create_variable(2).expect("create");
            s.write(&[pt(1, T0, 1.0), pt(1, T0 + 10, 2.0), pt(1, T0 + 20, 3.0)])
                .expect("write");
            s.write(&[pt(2, T0, 1.0), pt(2, T0 + 10, 2.0), pt(2, T0 + 20, 3.0)])
                .expect("write");
            assert_eq!(s.trim(1, T0 + 10, &[]).expect("trim"), Ok(8));
            assert_eq!(
                s.trim(1, T0 + 10, &[]).expect("trim"),
                Err("Feed already starts at trim time".into())
            );
            // A variable feed would take replayed old points back in: the checkpoint before
            // the trim must prevent that.
            assert_eq!(s.trim(2, T0 + 10, &[]).expect("trim"), Ok(18));
        }
        let mut s = dirs.open();
        assert_eq!(fixed_values(&mut s, 1), vec![2.0, 3.0]);
        assert_eq!(s.export(1, 0, &[]).expect("export").len(), 8);
        match s.feed(2).expect("feed") {
            Feed::Variable(f) => assert_eq!(f.meta().npoints, 2),
            Feed::Fixed(_) => panic!("variable expected"),
        }
    }

    #[test]
    fn out_of_range_times_are_left_out_before_logging() {
        let dirs = Dirs::new();
        let mut s = dirs.open();
        s.create_fixed(1, 10).expect("create");
        let r = s
            .write(&[pt(1, i64::MIN, 1.0), pt(1, -5, 1.0), pt(1, i64::MAX, 1.0)])
            .expect("write");
        assert_eq!((r.lsn, r.stored), (None, 0));
        drop(s);
        assert_eq!(dirs.open().replayed_records(), 0);
    }

    /// A caller that logs "add N to a counter and write the counter to feed 1".
    #[derive(Default)]
    struct Counter {
        total: f64,
    }

    impl Counter {
        fn handle(&mut self, store: &mut FeedStore, record: &[u8]) -> Result<()> {
            let (t, n) = (
                i64::from_le_bytes(record[..8].try_into().expect("8 bytes")),
                f64::from(record[8]),
            );
            self.total += n;
            store.apply_points(&[pt(1, t, self.total)])?;
            Ok(())
        }
    }

    impl Replay for Counter {
        fn restore(&mut self, state: &[u8]) -> Result<()> {
            self.total = if state.is_empty() {
                0.0
            } else {
                f64::from_le_bytes(state.try_into().expect("8 bytes"))
            };
            Ok(())
        }
        fn replay(&mut self, store: &mut FeedStore, _lsn: Lsn, record: &[u8]) -> Result<()> {
            self.handle(store, record)
        }
    }

    fn counter_record(t: i64, n: u8) -> Vec<u8> {
        let mut r = t.to_le_bytes().to_vec();
        r.push(n);
        r
    }

    #[test]
    fn caller_records_and_state_rebuild_after_a_crash() {
        let dirs = Dirs::new();
        let p = dirs.0.path();
        let open = |c: &mut Counter| {
            FeedStore::open_with(
                &p.join("phpfina"),
                &p.join("phptimeseries"),
                &p.join("wal"),
                StoreConfig::default(),
                c,
            )
            .expect("open")
        };
        {
            let mut c = Counter::default();
            let mut s = open(&mut c);
            s.create_fixed(1, 10).expect("create");
            for (i, n) in [(0, 5u8), (1, 7)] {
                let lsn = s
                    .log(&counter_record(T0 + 10 * i, n))
                    .expect("log")
                    .wait()
                    .expect("durable");
                c.handle(&mut s, &counter_record(T0 + 10 * i, n))
                    .expect("apply");
                s.record_applied(lsn);
            }
            // Checkpoint with the state as of now, then one more record that only the WAL has.
            s.flush(&c.total.to_le_bytes()).expect("flush");
            let lsn = s
                .log(&counter_record(T0 + 20, 1))
                .expect("log")
                .wait()
                .expect("durable");
            c.handle(&mut s, &counter_record(T0 + 20, 1))
                .expect("apply");
            s.record_applied(lsn);
            assert_eq!(c.total, 13.0);
        }
        let mut c = Counter::default();
        let mut s = open(&mut c);
        assert_eq!(c.total, 13.0, "checkpointed 12 plus the replayed 1");
        assert_eq!(fixed_values(&mut s, 1), vec![5.0, 12.0, 13.0]);
        // A plain open refuses a log holding caller records instead of skipping them.
        drop(s);
        assert!(
            FeedStore::open(
                &p.join("phpfina"),
                &p.join("phptimeseries"),
                &p.join("wal"),
                StoreConfig::default()
            )
            .is_err()
        );
    }

    #[test]
    fn cleared_points_do_not_come_back_on_replay() {
        let dirs = Dirs::new();
        {
            let mut s = dirs.open();
            s.create_fixed(1, 10).expect("create");
            s.write(&[pt(1, T0, 1.0)]).expect("write");
            s.clear(1, &[]).expect("clear");
            s.write(&[pt(1, T0 + 100, 5.0)]).expect("write");
        }
        let mut s = dirs.open();
        assert_eq!(fixed_values(&mut s, 1), vec![5.0]);
        s.delete(1, &[]).expect("delete");
        assert!(matches!(s.feed(1), Err(StorageError::NoSuchFeed { id: 1 })));
    }
}
