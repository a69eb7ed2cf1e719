//! Fixed-interval feeds, byte-compatible with emoncms's PHPFina (engine 5).
//!
//! # On-disk format
//!
//! ```text
//! phpfina/<id>.meta   16 bytes, four u32 little-endian: [0, 0, interval, start_time]
//! phpfina/<id>.dat    f32 little-endian, one per slot; NaN (00 00 c0 7f) = missing
//! ```
//!
//! Slot `i` holds the value for time `start_time + i * interval`; `npoints = len(.dat) / 4`.
//! An empty feed has `start_time = 0` and an empty `.dat`; its first write sets `start_time` to
//! that write's aligned time. emoncms reads these files unchanged, and ynni opens emoncms's.
//!
//! # Writes
//!
//! As emoncms: a time is aligned down to its slot (`floor(t / interval) * interval`); within one
//! call, points must ascend (a repeated slot overwrites, an earlier one is dropped); a slot
//! before `start_time` is dropped; an existing slot is overwritten in place; a gap is padded
//! with NaN, or in join mode with a straight line from the last value. Padding more than
//! [`MAX_PADDING`] slots is refused, and so is padding past what the caller still allows (a
//! record's writes to all its feeds share one such budget: `store::RECORD_PADDING`).
//!
//! Writes land in memory first ([`FixedFeed::write`]); [`FixedFeed::flush`] puts them in the
//! files (the meta first, then the data, fsynced; `storage::backup` relies on this order).
//! Reads always see both.
//!
//! Reads go through a read-only memory map of `.dat`, made on first read and dropped by every
//! operation that changes the file (flush, clear, delete). Those take `&mut self`, so no map
//! can be in use while its file changes; ynni's data-dir lock keeps other processes out.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard, OnceLock};

use memmap2::Mmap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::atomic_file::{rename_synced, sync_dir, write_synced};
use crate::error::{Result, StorageError, io_err};
use crate::levels::{self, Cell, Levels};

/// emoncms's `maxpadding`: five years of 10 s slots.
pub const MAX_PADDING: u64 = 15_768_000;

/// Bytes in a `.meta` file.
pub const META_LEN: usize = 16;

/// Bytes per slot in a `.dat` file.
pub const SLOT_LEN: u64 = 4;
/// How many windows ahead an averaged read asks for the memory of window ends
/// ([`crate::prefetch`]): enough misses in flight to fill the CPU's line-fill buffers.
const PREFETCH_AHEAD: usize = 8;

/// The header of a fixed-interval feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedMeta {
    pub interval: u32,
    pub start_time: u32,
    pub npoints: u64,
}

impl FixedMeta {
    /// Time of the last slot, or 0 for an empty feed (emoncms's `end_time`).
    pub fn end_time(&self) -> u64 {
        if self.npoints == 0 {
            0
        } else {
            u64::from(self.start_time) + u64::from(self.interval) * (self.npoints - 1)
        }
    }
}

/// One fixed-interval feed: its files plus the writes not yet flushed to them.
#[derive(Debug)]
pub struct FixedFeed {
    id: u32,
    meta_path: PathBuf,
    dat_path: PathBuf,
    interval: u32,
    start_time: u32,
    /// Slots in the `.dat` file.
    disk_npoints: u64,
    /// Unflushed values for slots already in the file.
    overwrites: BTreeMap<u64, f32>,
    /// Unflushed slots after the end of the file, contiguous from `disk_npoints`.
    tail: Vec<f32>,
    meta_dirty: bool,
    /// Read-only map of the first `disk_npoints * 4` bytes of `.dat`; `None` when empty.
    map: OnceLock<Option<Mmap>>,
    /// Bytes of `.dat` already regrouped for huge pages ([`crate::huge_pages`]).
    huge_done: AtomicU64,
    /// Whether the map was used since [`FixedFeed::release_idle_map`] last looked.
    map_used: std::sync::atomic::AtomicBool,
    /// Averaged levels for long means ([`crate::levels`]), built on first use. Reads take
    /// `&self`, so they sit behind a lock that only this feed's owner ever takes.
    levels: Mutex<Levels>,
    levels_path: PathBuf,
    /// Whether dropping the feed may save its levels: not once its store's lease has ended,
    /// when another node may be writing the feed ([`FixedFeed::stop_saving_levels`]).
    save_levels_on_close: bool,
    /// Levels to let go of at the next flush ([`FixedFeed::evict_levels_after_flush`]).
    evict_after_flush: bool,
}

/// The `.meta` file of feed `id` in `dir`.
pub fn meta_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id}.meta"))
}

/// The `.dat` file of feed `id` in `dir`.
pub fn dat_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id}.dat"))
}

/// A `.meta` file's bytes: `[0, 0, interval, start_time]`, u32 little-endian. The first two
/// words are emoncms's legacy id and npoints, which it no longer reads and writes as 0.
pub fn encode_meta(interval: u32, start_time: u32) -> [u8; META_LEN] {
    let mut bytes = [0u8; META_LEN];
    bytes[8..12].copy_from_slice(&interval.to_le_bytes());
    bytes[12..16].copy_from_slice(&start_time.to_le_bytes());
    bytes
}

/// `(interval, start_time)` from the first 16 bytes of a `.meta` file (emoncms reads from
/// offset 8 and ignores anything after), or `None` when there are fewer.
pub fn decode_meta(bytes: &[u8]) -> Option<(u32, u32)> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    Some((word(8)?, word(12)?))
}

/// Whether feed `id` has files in `dir`.
pub fn exists(dir: &Path, id: u32) -> bool {
    meta_path(dir, id).exists()
}

impl FixedFeed {
    /// Creates the files of a new, empty feed. The interval is raised to `min_interval` (and to
    /// at least 1 s), as emoncms's `min_feed_interval` does.
    pub fn create(dir: &Path, id: u32, interval: u32, min_interval: u32) -> Result<Self> {
        let meta = meta_path(dir, id);
        if meta.exists() {
            return Err(StorageError::FeedExists { id });
        }
        let interval = interval.max(min_interval).max(1);
        let dat = dat_path(dir, id);
        File::create(&dat)
            .and_then(|f| f.sync_all())
            .map_err(io_err("creating", &dat))?;
        write_meta(&meta, interval, 0)?;
        let levels_path = levels::levels_path(dir, id);
        remove_if_present(&levels_path)?;
        sync_dir(dir)?;
        Ok(Self {
            id,
            meta_path: meta,
            dat_path: dat,
            interval,
            start_time: 0,
            disk_npoints: 0,
            overwrites: BTreeMap::new(),
            tail: Vec::new(),
            meta_dirty: false,
            map: OnceLock::new(),
            huge_done: AtomicU64::new(0),
            map_used: std::sync::atomic::AtomicBool::new(false),
            levels: Mutex::new(Levels::default()),
            levels_path,
            save_levels_on_close: true,
            evict_after_flush: false,
        })
    }

    /// Opens an existing feed, checking that its files are well formed. Damaged files are
    /// reported, never repaired behind the operator's back.
    pub fn open(dir: &Path, id: u32) -> Result<Self> {
        let meta = meta_path(dir, id);
        let dat = dat_path(dir, id);
        if !meta.exists() {
            return Err(StorageError::NoSuchFeed { id });
        }
        finish_interrupted_trim(&dat, &meta)?;
        let bytes = fs::read(&meta).map_err(io_err("reading", &meta))?;
        let (interval, start_time) = match decode_meta(&bytes) {
            Some(words) if bytes.len() == META_LEN => words,
            _ => {
                return Err(StorageError::CorruptMeta {
                    path: meta,
                    reason: format!("{} bytes, expected {META_LEN}", bytes.len()),
                });
            }
        };
        if interval == 0 {
            return Err(StorageError::CorruptMeta {
                path: meta,
                reason: "interval is 0".into(),
            });
        }
        let len = match fs::metadata(&dat) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err("reading", &dat)(e)),
        };
        if len % 4 != 0 {
            return Err(StorageError::BadDataSize {
                path: dat,
                len,
                record: 4,
            });
        }
        if start_time == 0 && len > 0 {
            return Err(StorageError::CorruptMeta {
                path: meta,
                reason: format!("start time 0 with {} slots of data", len / 4),
            });
        }
        // A feed without data has no start yet, whatever its meta says: a crash inside `clear`,
        // or after the first flush's meta but before its data, leaves such a meta, and the
        // next write (or WAL replay) sets the start again from its first point.
        let empty_with_start = len == 0 && start_time != 0;
        let levels_path = levels::levels_path(dir, id);
        Ok(Self {
            id,
            // Loaded on the first averaged read, not here: a store opens every feed it writes.
            levels: Mutex::new(Levels::default()),
            levels_path,
            save_levels_on_close: true,
            evict_after_flush: false,
            meta_path: meta,
            dat_path: dat,
            interval,
            start_time: if empty_with_start { 0 } else { start_time },
            disk_npoints: len / 4,
            overwrites: BTreeMap::new(),
            tail: Vec::new(),
            meta_dirty: empty_with_start,
            map: OnceLock::new(),
            huge_done: AtomicU64::new(0),
            map_used: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn meta(&self) -> FixedMeta {
        FixedMeta {
            interval: self.interval,
            start_time: self.start_time,
            npoints: self.npoints(),
        }
    }

    pub fn npoints(&self) -> u64 {
        self.disk_npoints + self.tail.len() as u64
    }

    /// True when writes are waiting for [`FixedFeed::flush`].
    pub fn is_dirty(&self) -> bool {
        self.meta_dirty || !self.overwrites.is_empty() || !self.tail.is_empty()
    }

    /// Number of unflushed slot values held in memory.
    pub fn pending_len(&self) -> usize {
        self.overwrites.len() + self.tail.len()
    }

    /// Writes points (unix seconds, value; `None` or NaN = missing) with emoncms's rules (see the
    /// module docs), padding at most [`MAX_PADDING`] slots in all. Returns how many points were
    /// stored. On [`StorageError::PaddingLimit`] the points before the offending one stay, as
    /// in emoncms, and it and those after it are dropped.
    pub fn write(&mut self, points: &[(i64, Option<f64>)], join: bool) -> Result<usize> {
        let mut budget = MAX_PADDING;
        self.write_within(points, join, &mut budget)
    }

    /// [`FixedFeed::write`], padding at most `budget` slots (less what it pads), so that one
    /// record's writes to many feeds cannot each pad up to the limit.
    pub fn write_within(
        &mut self,
        points: &[(i64, Option<f64>)],
        join: bool,
        budget: &mut u64,
    ) -> Result<usize> {
        let interval = i64::from(self.interval);
        let mut valid: Vec<(i64, f32)> = Vec::with_capacity(points.len());
        for &(t, v) in points {
            // Times outside a u32 cannot be stored; checking first also keeps the alignment
            // arithmetic from overflowing.
            if t <= 0 || t > i64::from(u32::MAX) {
                continue;
            }
            let t = t.div_euclid(interval) * interval;
            let v = v.map_or(f32::NAN, |v| v as f32);
            match valid.last_mut() {
                Some(last) if t == last.0 => last.1 = v,
                Some(last) if t < last.0 => {}
                _ if t <= 0 => {}
                _ => valid.push((t, v)),
            }
        }
        let Some(&(first, _)) = valid.first() else {
            return Ok(0);
        };
        if self.npoints() == 0 && self.start_time == 0 {
            // `first` is within u32 (checked above).
            self.start_time = first as u32;
            self.meta_dirty = true;
        }
        let start = i64::from(self.start_time);
        let npoints = self.npoints();
        let mut last_pos = npoints as i64 - 1;
        let mut last_val: Option<f32> = None;
        let mut appends: Vec<f32> = Vec::new();
        let mut stored = 0;
        for (t, v) in valid {
            let pos = (t - start).div_euclid(interval);
            if pos < 0 {
                continue;
            }
            let pos = pos as u64;
            if pos < npoints {
                self.set_slot(pos, v);
                stored += 1;
                continue;
            }
            let padding = (pos as i64 - last_pos - 1) as u64;
            // emoncms's limit is per point; here the caller's budget bounds the whole write (and
            // a record's writes together) too, or a post of a few dozen points each a limit
            // apart would grow the feed, and memory until the next flush, by gigabytes.
            let limit = MAX_PADDING.min(*budget);
            if padding > limit {
                self.tail.extend_from_slice(&appends);
                return Err(StorageError::PaddingLimit {
                    id: self.id,
                    padding,
                    limit,
                });
            }
            *budget -= padding;
            let padding = padding as i64;
            if padding > 0 {
                let from = if join && last_pos >= 0 {
                    match last_val {
                        Some(l) => Some(l),
                        None => Some(self.slot_with(last_pos as u64, npoints, &appends)?),
                    }
                    .filter(|l| !l.is_nan())
                } else {
                    None
                };
                match from {
                    Some(l) => {
                        // In f64 as PHP computes it; each slot is then stored as f32.
                        let (l, v) = (f64::from(l), f64::from(v));
                        let step = (v - l) / (padding as f64 + 1.0);
                        appends.extend((1..=padding).map(|k| (l + step * k as f64) as f32));
                    }
                    None => appends.extend(std::iter::repeat_n(f32::NAN, padding as usize)),
                }
            }
            appends.push(v);
            last_pos += padding + 1;
            last_val = Some(v);
            stored += 1;
        }
        self.tail.extend_from_slice(&appends);
        Ok(stored)
    }

    fn set_slot(&mut self, pos: u64, v: f32) {
        self.levels_mut().touch(pos);
        if pos < self.disk_npoints {
            self.overwrites.insert(pos, v);
        } else {
            self.tail[(pos - self.disk_npoints) as usize] = v;
        }
    }

    /// A slot's value while a write is in progress: `appends` follow the current end.
    fn slot_with(&self, pos: u64, npoints: u64, appends: &[f32]) -> Result<f32> {
        if pos >= npoints {
            return Ok(appends
                .get((pos - npoints) as usize)
                .copied()
                .unwrap_or(f32::NAN));
        }
        Ok(self
            .read_slots(pos, pos + 1)?
            .first()
            .copied()
            .unwrap_or(f32::NAN))
    }

    /// The `.dat` bytes as of the last flush, mapped on first use.
    fn disk_bytes(&self) -> Result<&[u8]> {
        self.map_used
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(map) = self.map.get() {
            return Ok(map.as_deref().unwrap_or(&[]));
        }
        let map = if self.disk_npoints == 0 {
            None
        } else {
            let f = File::open(&self.dat_path).map_err(io_err("opening", &self.dat_path))?;
            let huge = crate::huge_pages::regroup(&f, self.disk_npoints * 4, &self.huge_done);
            // SAFETY: the map is read-only. Within ynni a feed's files are changed only through
            // its one `FixedFeed` (each feed id belongs to one shard's store), by methods taking
            // `&mut self` that drop this map first; the data-dir lock keeps a second ynni
            // server out. Another program truncating the file while ynni runs (unsupported,
            // see the README) could still fault the process.
            let m = unsafe { Mmap::map(&f) }.map_err(io_err("mapping", &self.dat_path))?;
            if huge {
                crate::huge_pages::advise(&m);
            }
            if (m.len() as u64) < self.disk_npoints * 4 {
                return Err(StorageError::BadDataSize {
                    path: self.dat_path.clone(),
                    len: m.len() as u64,
                    record: 4,
                });
            }
            Some(m)
        };
        let map = self.map.get_or_init(|| map);
        Ok(map
            .as_deref()
            .map_or(&[][..], |m| &m[..(self.disk_npoints * 4) as usize]))
    }

    /// Slots `[from, to)` (clamped to the feed's end), unflushed writes included.
    pub fn read_slots(&self, from: u64, to: u64) -> Result<Vec<f32>> {
        let to = to.min(self.npoints());
        if from >= to {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((to - from) as usize);
        let disk_to = to.min(self.disk_npoints);
        if from < disk_to {
            let bytes = &self.disk_bytes()?[(from * 4) as usize..(disk_to * 4) as usize];
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            for (&pos, &v) in self.overwrites.range(from..disk_to) {
                out[(pos - from) as usize] = v;
            }
        }
        let tail_from = from.max(self.disk_npoints);
        if tail_from < to {
            let a = (tail_from - self.disk_npoints) as usize;
            let b = (to - self.disk_npoints) as usize;
            out.extend_from_slice(&self.tail[a..b]);
        }
        Ok(out)
    }

    /// The values of single slots (NaN past the end), without touching what lies between:
    /// for sparse sampling of long ranges.
    pub fn read_each(&self, positions: &[u64]) -> Result<Vec<f32>> {
        let n = self.npoints();
        let disk = self.disk_bytes()?;
        Ok(positions
            .iter()
            .map(|&pos| {
                if pos >= n {
                    f32::NAN
                } else if pos >= self.disk_npoints {
                    self.tail[(pos - self.disk_npoints) as usize]
                } else if let Some(&v) = self.overwrites.get(&pos) {
                    v
                } else {
                    let i = (pos * 4) as usize;
                    f32::from_le_bytes([disk[i], disk[i + 1], disk[i + 2], disk[i + 3]])
                }
            })
            .collect())
    }

    /// Sum and count of the non-missing values in slots `[from, to)`, without copying them
    /// out: from the averaged levels for long ranges ([`crate::levels`]), else by a scan.
    pub fn sum_slots(&self, from: u64, to: u64) -> Result<(f64, u64)> {
        let npoints = self.npoints();
        let to = to.min(npoints);
        if from >= to {
            return Ok((0.0, 0));
        }
        if to - from < 2 * levels::BLOCK {
            return self.scan_sum(from, to);
        }
        // The levels already add in their own order, so the ends may use the faster scan.
        let scan = |a: u64, b: u64| {
            self.scan_sum_with(a, b, true)
                .map(|(sum, count)| Cell { sum, count })
        };
        let mut lv = self.levels_ready();
        lv.refresh(npoints, scan)?;
        let c = lv.sum(from, to, scan)?;
        Ok((c.sum, c.count))
    }

    /// The levels, loaded from their file first when they are not in memory. The file
    /// describes `.dat` as flushed; blocks with unflushed overwrites are marked for summing
    /// again, and the unflushed tail lies past what the file covers.
    fn levels_ready(&self) -> MutexGuard<'_, Levels> {
        let mut lv = self.levels_lock();
        if !lv.is_built() {
            *lv = Levels::load(&self.levels_path, &self.dat_path);
            if lv.is_built() {
                for &pos in self.overwrites.keys() {
                    lv.touch(pos);
                }
            }
        }
        lv.used();
        lv
    }

    /// Unmaps the `.dat` if it was not read since the last call (the store calls this at
    /// each flush): a process may hold some 65,000 maps in all (`vm.max_map_count`), and a
    /// server reading many feeds once (a scraper, every account's feed list after a start)
    /// would otherwise keep a map for each until the feed is next written, and then fail to
    /// map anything, memory included.
    pub fn release_idle_map(&mut self) {
        if !self
            .map_used
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.map = OnceLock::new();
        }
    }

    /// Whether the `.dat` is mapped now.
    pub fn is_mapped(&self) -> bool {
        self.map.get().is_some_and(Option::is_some)
    }

    /// Drops the levels from memory now, for the store's budget: saved first unless the
    /// feed has points not yet in its file (then dropped as they are: a cache, rebuilt from
    /// the whole `.dat` when next read, since a levels file older than the `.dat` is not
    /// believed).
    pub fn evict_levels(&mut self) {
        self.evict_after_flush = false;
        if self.is_dirty() {
            self.levels_mut().reset();
        } else {
            self.release_idle_levels(std::time::Duration::ZERO);
        }
    }

    /// Drops the levels from memory at the next flush, saved once the feed has nothing
    /// unflushed, so they load again from their file instead of being rebuilt: for a feed
    /// being written, which [`FixedFeed::evict_levels`] could only drop unsaved.
    pub fn evict_levels_after_flush(&mut self) {
        self.evict_after_flush = true;
    }

    /// Whether the levels are to go at the next flush.
    pub fn levels_leaving(&self) -> bool {
        self.evict_after_flush
    }

    /// Whether [`FixedFeed::evict_levels_after_flush`] asked for the levels to go, asked once.
    pub fn take_eviction(&mut self) -> bool {
        std::mem::take(&mut self.evict_after_flush)
    }

    /// Sets an empty feed's start time to `start` exactly (emoncms's `upload` and `sync` of a
    /// feed trimmed there, whose start is anywhere in a slot); the next write's slots count
    /// from it. `false`, changing nothing, for a feed with data.
    pub fn start_empty_at(&mut self, start: u32) -> bool {
        if self.npoints() > 0 || start == 0 {
            return false;
        }
        self.start_time = start;
        self.meta_dirty = true;
        true
    }

    /// Bytes of memory the feed's levels hold, and when a read last used them.
    pub fn levels_memory(&self) -> (usize, Option<std::time::Instant>) {
        let lv = self.levels_lock();
        (lv.memory(), lv.last_used())
    }

    /// Saves and drops the levels when nothing read them for `idle` and the feed has nothing
    /// unflushed (see [`crate::levels`]). They are a cache: a failure keeps them in memory
    /// and is logged, not returned.
    pub fn release_idle_levels(&mut self, idle: std::time::Duration) {
        if let Err(e) = self.try_release_levels(idle) {
            tracing::warn!(feed = self.id, error = %e, "could not save a feed's averaged levels");
        }
    }

    fn try_release_levels(&mut self, idle: std::time::Duration) -> Result<()> {
        if self.is_dirty() {
            return Ok(());
        }
        let npoints = self.npoints();
        let (path, dat) = (self.levels_path.clone(), self.dat_path.clone());
        let scan = |a: u64, b: u64| {
            self.scan_sum_with(a, b, true)
                .map(|(sum, count)| Cell { sum, count })
        };
        let mut lv = self.levels_lock();
        if !lv.is_built() || !lv.idle(idle) {
            return Ok(());
        }
        // Current first, so the file describes `.dat` as it is now.
        lv.refresh(npoints, scan)?;
        lv.save_if_stale(&path, &dat)
            .map_err(io_err("writing", &path))?;
        lv.reset();
        Ok(())
    }

    /// [`FixedFeed::sum_slots`] of each range (a graph's windows), with the levels locked and
    /// brought up to date once. A range of two blocks or more is the difference of the running
    /// totals at its ends ([`Levels::total_at`]; a window that starts where the last ended
    /// reuses its total), or, where those cannot be read (an end in an unfinished block's
    /// second half, or among slots not flushed, or a block whose sum is not finite), the
    /// levels' sum of its blocks and ragged ends.
    pub fn sum_windows(&self, ranges: &[(u64, u64)]) -> Result<Vec<(f64, u64)>> {
        let npoints = self.npoints();
        // A file that cannot be mapped now fails the scan below instead.
        let dat = self.disk_bytes().unwrap_or(&[]);
        // Slots before this are read straight from the map: flushed, none overwritten since.
        let clean = self
            .overwrites
            .keys()
            .next()
            .map_or(self.disk_npoints, |&first| first.min(self.disk_npoints))
            .min(dat.len() as u64 / 4);
        // The flushed slots `[a, b)` straight from the map, or `None` past `clean`.
        let side = |a: u64, b: u64| {
            let bytes = (b <= clean)
                .then(|| dat.get((a * 4) as usize..(b * 4) as usize))
                .flatten()?;
            let (sum, count) = sum_f32_lanes(bytes);
            Some(Cell { sum, count })
        };
        // Any slots `[a, b)`: from the map where `side` can, else through the unflushed writes.
        let scan = |a: u64, b: u64| match side(a, b) {
            Some(cell) => Ok(cell),
            None => self
                .scan_sum_with(a, b, true)
                .map(|(sum, count)| Cell { sum, count }),
        };
        let mut levels: Option<MutexGuard<'_, Levels>> = None;
        let mut split = None;
        // The running total at the last window's end, which the next window usually starts at.
        let mut shared: Option<(u64, levels::Total)> = None;
        let mut out = Vec::with_capacity(ranges.len());
        for (i, &(from, to)) in ranges.iter().enumerate() {
            let to = to.min(npoints);
            if from >= to {
                out.push((0.0, 0));
                continue;
            }
            if to - from < 2 * levels::BLOCK {
                out.push(self.scan_sum(from, to)?);
                continue;
            }
            if levels.is_none() {
                let mut lv = self.levels_ready();
                lv.refresh(npoints, scan)?;
                for &(a, b) in ranges.iter().skip(i).take(PREFETCH_AHEAD) {
                    lv.prefetch_split(a, dat);
                    lv.prefetch_split(b, dat);
                }
                levels = Some(lv);
            }
            if let Some(lv) = levels.as_ref() {
                // The ends of windows far apart are cache misses; fetch a few ahead together.
                if let Some(&(_, b)) = ranges.get(i + PREFETCH_AHEAD) {
                    lv.prefetch_split(b, dat);
                }
                if lv.all_finite() {
                    let start = match shared {
                        Some((x, t)) if x == from => Some(t),
                        _ => lv.total_at(from, side),
                    };
                    let end = lv.total_at(to, side);
                    if let (Some(a), Some(b)) = (start, end) {
                        shared = Some((to, b));
                        let c = b.since(a);
                        out.push((c.sum, c.count));
                        continue;
                    }
                }
                let c = lv.sum_sharing(from, to, &scan, &mut split)?;
                out.push((c.sum, c.count));
            }
        }
        Ok(out)
    }

    fn levels_lock(&self) -> MutexGuard<'_, Levels> {
        // A panic while the levels were locked leaves them possibly half-updated: start over.
        self.levels.lock().unwrap_or_else(|poisoned| {
            let mut lv = poisoned.into_inner();
            lv.reset();
            lv
        })
    }

    fn levels_mut(&mut self) -> &mut Levels {
        let poisoned = self.levels.is_poisoned();
        let lv = self
            .levels
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if poisoned {
            lv.reset();
        }
        lv
    }

    /// Saves the averaged levels when due (see [`crate::levels`]); a failure only costs a
    /// rebuild later, so it is logged, not returned.
    fn save_levels(&mut self, closing: bool) {
        if self.is_dirty() {
            return;
        }
        let (path, dat) = (self.levels_path.clone(), self.dat_path.clone());
        let lv = self.levels_mut();
        if lv.save_due(closing)
            && let Err(e) = lv.save(&path, &dat)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not save a feed's averaged levels");
        }
    }

    /// Sum and count of slots `[from, to)` by reading each, in order.
    fn scan_sum(&self, from: u64, to: u64) -> Result<(f64, u64)> {
        self.scan_sum_with(from, to, false)
    }

    /// As [`FixedFeed::scan_sum`]; with `lanes`, flushed slots are added in eight running
    /// sums (vector additions), which can change the last bits of the result.
    fn scan_sum_with(&self, from: u64, to: u64, lanes: bool) -> Result<(f64, u64)> {
        let to = to.min(self.npoints());
        if from >= to {
            return Ok((0.0, 0));
        }
        if self.overwrites.range(from..to).next().is_some() {
            let v = self.read_slots(from, to)?;
            return Ok(sum_f32(v.iter().copied()));
        }
        if to > self.disk_npoints {
            // Slots past the file are in the tail: summed where they lie, in the order
            // `read_slots` would give them (so the result is the same to the bit), without
            // copying them out first (a graph's every window end over unflushed data did).
            let disk_to = to.min(self.disk_npoints);
            let disk: &[u8] = if from < disk_to {
                &self.disk_bytes()?[(from * 4) as usize..(disk_to * 4) as usize]
            } else {
                &[]
            };
            let tail_from = from.max(self.disk_npoints) - self.disk_npoints;
            let tail = &self.tail[tail_from as usize..(to - self.disk_npoints) as usize];
            let sum = sum_f32_onto(
                (0.0, 0),
                disk.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            return Ok(sum_f32_onto(sum, tail.iter().copied()));
        }
        let bytes = &self.disk_bytes()?[(from * 4) as usize..(to * 4) as usize];
        if lanes {
            return Ok(sum_f32_lanes(bytes));
        }
        Ok(sum_f32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ))
    }

    /// The last slot's time and value (`None` value for NaN), or `None` for an empty feed.
    pub fn last_value(&self) -> Result<Option<(u64, Option<f32>)>> {
        let n = self.npoints();
        if n == 0 {
            return Ok(None);
        }
        let v = self
            .read_slots(n - 1, n)?
            .first()
            .copied()
            .unwrap_or(f32::NAN);
        Ok(Some((self.meta().end_time(), (!v.is_nan()).then_some(v))))
    }

    /// Writes pending slots to `.dat` (fsynced), then the meta if it changed. Returns whether
    /// anything was written.
    pub fn flush(&mut self) -> Result<bool> {
        if !self.is_dirty() {
            return Ok(false);
        }
        // The meta goes first: data written under an unsaved start time would be misplaced
        // after a crash, while a saved start with no data yet is read as an empty feed and
        // replay sets the same start again.
        if self.meta_dirty {
            write_meta(&self.meta_path, self.interval, self.start_time)?;
            self.meta_dirty = false;
        }
        if !self.overwrites.is_empty() {
            // The levels' file describes the slots before these overwrites, and a `.dat`
            // rewritten in place keeps its length, and its time too when the clock's tick is
            // coarse: it is removed, and written again once the levels are current.
            self.levels_mut().forget_file();
            // Synced before the data changes: after a power cut the file must not be back
            // while the overwrites are there (its length and time stamp may still match).
            if remove_if_present(&self.levels_path)?
                && let Some(dir) = self.levels_path.parent()
            {
                sync_dir(dir)?;
            }
        }
        if !self.overwrites.is_empty() || !self.tail.is_empty() {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.dat_path)
                .map_err(io_err("opening", &self.dat_path))?;
            // Consecutive overwritten slots go out in one write.
            let mut run: Vec<u8> = Vec::new();
            let mut run_start = 0u64;
            let mut next = u64::MAX;
            for (&pos, &v) in &self.overwrites {
                if pos != next && !run.is_empty() {
                    f.write_all_at(&run, run_start * 4)
                        .map_err(io_err("writing", &self.dat_path))?;
                    run.clear();
                }
                if run.is_empty() {
                    run_start = pos;
                }
                run.extend_from_slice(&v.to_le_bytes());
                next = pos + 1;
            }
            if !run.is_empty() {
                f.write_all_at(&run, run_start * 4)
                    .map_err(io_err("writing", &self.dat_path))?;
            }
            if !self.tail.is_empty() {
                let bytes: Vec<u8> = self.tail.iter().flat_map(|v| v.to_le_bytes()).collect();
                f.write_all_at(&bytes, self.disk_npoints * 4)
                    .map_err(io_err("writing", &self.dat_path))?;
            }
            f.sync_data().map_err(io_err("syncing", &self.dat_path))?;
            self.map = OnceLock::new();
            self.disk_npoints += self.tail.len() as u64;
            self.tail.clear();
            self.overwrites.clear();
        }
        self.save_levels(false);
        Ok(true)
    }

    /// Dropping the feed will not save its levels. For a store whose lease has ended: another
    /// node may have written the feed since, and a file saved now would carry this node's
    /// older sums under that node's `.dat` length and time, so it would be believed.
    pub fn stop_saving_levels(&mut self) {
        self.save_levels_on_close = false;
    }

    /// Forgets the averaged levels and their file (the slots moved or went).
    fn drop_levels(&mut self) -> Result<()> {
        self.levels_mut().reset();
        remove_if_present(&self.levels_path).map(drop)
    }

    /// Empties the feed (data and start time), keeping its interval.
    pub fn clear(&mut self) -> Result<()> {
        self.map = OnceLock::new();
        *self.huge_done.get_mut() = 0;
        self.drop_levels()?;
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.dat_path)
            .map_err(io_err("truncating", &self.dat_path))?;
        f.sync_all().map_err(io_err("syncing", &self.dat_path))?;
        self.overwrites.clear();
        self.tail.clear();
        self.disk_npoints = 0;
        self.start_time = 0;
        write_meta(&self.meta_path, self.interval, 0)?;
        self.meta_dirty = false;
        Ok(())
    }

    /// Drops the slots before `start_time` (emoncms's `trim`). Returns the bytes written.
    /// The new start is the first kept slot's time (emoncms stores the requested time unaligned).
    ///
    /// Crash-safe: the new `.dat` and `.meta` are written as `*.trim` files first; see
    /// [`FixedFeed::open`] for how an interrupted trim is finished or discarded.
    pub fn trim(&mut self, start_time: i64) -> std::result::Result<u64, TrimError> {
        if self.is_dirty() {
            self.flush()?;
        }
        let (s, i, n) = (
            i64::from(self.start_time),
            i64::from(self.interval),
            self.disk_npoints as i64,
        );
        if n == 0 {
            return Err(TrimError::Empty);
        }
        if start_time == s {
            return Err(TrimError::AlreadyStarts);
        }
        if start_time < s || start_time > i64::from(u32::MAX) {
            return Err(TrimError::OutOfRange);
        }
        let keep_from = (start_time - s + i - 1).div_euclid(i);
        if keep_from >= n {
            return Err(TrimError::OutOfRange);
        }
        let new_start = u32::try_from(s + keep_from * i).map_err(|_| TrimError::OutOfRange)?;
        let (dat_tmp, meta_tmp) = trim_paths(&self.dat_path, &self.meta_path);
        // Both new files are complete before either replaces an old one: recovery relies on
        // finding them (see `finish_interrupted_trim`), so `write_atomically`, which renames
        // each file as soon as it is written, cannot be used here. The kept slots are written
        // straight from the map (a feed may be gigabytes: no copy in memory).
        let kept_len = {
            let kept = &self.disk_bytes()?[(keep_from * 4) as usize..];
            write_synced(&dat_tmp, kept)?;
            kept.len() as u64
        };
        self.drop_levels()?;
        write_meta(&meta_tmp, self.interval, new_start)?;
        self.map = OnceLock::new();
        *self.huge_done.get_mut() = 0;
        // The data rename must be durable before the meta's: recovery reads a leftover
        // `.dat.trim` as "the data was not replaced".
        rename_synced(&dat_tmp, &self.dat_path)?;
        rename_synced(&meta_tmp, &self.meta_path)?;
        self.start_time = new_start;
        self.disk_npoints = kept_len / 4;
        Ok(kept_len)
    }

    /// The `.dat` bytes from a byte offset, for emoncms's `export`: the offset is rounded down
    /// to a slot and, past the first slot, moved back one, so the last slot a client already
    /// holds is sent again.
    pub fn export(&mut self, offset: u64) -> Result<Vec<u8>> {
        let span = self.export_span(offset)?;
        span.read()
    }

    /// Where [`FixedFeed::export`]'s bytes are, once the feed is flushed: for a caller that
    /// sends them on a piece at a time instead of holding them all.
    pub fn export_span(&mut self, offset: u64) -> Result<crate::store::FileSpan> {
        if self.is_dirty() {
            self.flush()?;
        }
        Ok(self.disk_span(offset))
    }

    /// [`FixedFeed::export_span`] of what is in the file now, points in memory left out.
    pub fn disk_span(&self, offset: u64) -> crate::store::FileSpan {
        let mut off = offset / 4 * 4;
        if off >= 4 {
            off -= 4;
        }
        let len = self.disk_npoints * 4;
        crate::store::FileSpan {
            path: self.dat_path.clone(),
            from: off.min(len),
            len: len.saturating_sub(off),
        }
    }

    /// Removes the feed's files.
    pub fn delete(mut self) -> Result<()> {
        self.drop_levels()?;
        for p in [&self.dat_path, &self.meta_path] {
            remove_if_present(p)?;
        }
        sync_dir(self.meta_path.parent().unwrap_or(Path::new(".")))
    }

    /// Bytes on disk once flushed: 16 for the meta plus 4 per slot (emoncms's `size`).
    pub fn size(&self) -> u64 {
        16 + self.npoints() * 4
    }
}

impl Drop for FixedFeed {
    /// A store closing saves what its feeds' levels learned, so the next start need not
    /// rebuild them.
    fn drop(&mut self) {
        if self.save_levels_on_close {
            self.save_levels(true);
        }
    }
}

/// Removes `p` if it is there; returns whether it was.
fn remove_if_present(p: &Path) -> Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("removing", p)(e)),
    }
}

/// Why a trim was refused; `Display` is emoncms's wording.
#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    #[error("Empty data file, nothing to trim.")]
    Empty,
    #[error("New start time out of range")]
    OutOfRange,
    #[error("Feed already starts at trim time")]
    AlreadyStarts,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn trim_paths(dat: &Path, meta: &Path) -> (PathBuf, PathBuf) {
    (
        dat.with_extension("dat.trim"),
        meta.with_extension("meta.trim"),
    )
}

/// A trim renames the new `.dat` into place, then the new `.meta`. If `.dat.trim` is still
/// there the old files are intact and the trim is discarded; if only `.meta.trim` is left the
/// data was replaced and the meta must follow.
fn finish_interrupted_trim(dat: &Path, meta: &Path) -> Result<()> {
    let (dat_tmp, meta_tmp) = trim_paths(dat, meta);
    if dat_tmp.exists() {
        for p in [&dat_tmp, &meta_tmp] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", p)(e)),
            }
        }
        tracing::warn!(feed = %dat.display(), "discarded an interrupted trim");
    } else if meta_tmp.exists() {
        fs::rename(&meta_tmp, meta).map_err(io_err("replacing", meta))?;
        tracing::warn!(feed = %meta.display(), "completed an interrupted trim");
    }
    Ok(())
}

/// Sum and count of the non-NaN values; branch-free so the loop vectorises.
fn sum_f32(values: impl Iterator<Item = f32>) -> (f64, u64) {
    sum_f32_onto((0.0, 0), values)
}

/// [`sum_f32`] continued from a sum and count already made.
fn sum_f32_onto((mut sum, mut n): (f64, u64), values: impl Iterator<Item = f32>) -> (f64, u64) {
    for v in values {
        let present = !v.is_nan();
        sum += if present { f64::from(v) } else { 0.0 };
        n += u64::from(present);
    }
    (sum, n)
}

/// [`sum_f32`] of little-endian f32 bytes in eight running sums, which the compiler can
/// keep in vector registers.
fn sum_f32_lanes(bytes: &[u8]) -> (f64, u64) {
    let mut sums = [0f64; 8];
    let mut counts = [0u64; 8];
    let chunks = bytes.chunks_exact(32);
    let rest = chunks.remainder();
    for c in chunks {
        for (i, (sum, count)) in sums.iter_mut().zip(counts.iter_mut()).enumerate() {
            let v = f32::from_le_bytes([c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]]);
            let present = !v.is_nan();
            *sum += if present { f64::from(v) } else { 0.0 };
            *count += u64::from(present);
        }
    }
    let (s, n) = sum_f32(
        rest.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
    (sums.iter().sum::<f64>() + s, counts.iter().sum::<u64>() + n)
}

pub(crate) fn write_meta(path: &Path, interval: u32, start_time: u32) -> Result<()> {
    let bytes = encode_meta(interval, start_time);
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("opening", path))?;
    // 16 bytes at offset 0 sit in one sector, so the update is atomic on real disks.
    f.write_all_at(&bytes, 0).map_err(io_err("writing", path))?;
    f.set_len(16).map_err(io_err("writing", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_699_999_200;

    fn feed(interval: u32) -> (tempfile::TempDir, FixedFeed) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = FixedFeed::create(dir.path(), 1, interval, 10).expect("create");
        (dir, f)
    }

    fn values(f: &FixedFeed) -> Vec<Option<f32>> {
        f.read_slots(0, f.npoints())
            .expect("read")
            .into_iter()
            .map(|v| (!v.is_nan()).then_some(v))
            .collect()
    }

    #[test]
    fn meta_bytes_round_trip_and_a_short_meta_is_refused() {
        let bytes = encode_meta(3600, 1_699_747_200);
        assert_eq!(bytes[..8], [0u8; 8]);
        assert_eq!(bytes[8..12], 3600u32.to_le_bytes());
        assert_eq!(bytes[12..], 1_699_747_200u32.to_le_bytes());
        assert_eq!(decode_meta(&bytes), Some((3600, 1_699_747_200)));
        assert_eq!(decode_meta(&bytes[..15]), None);
        let mut longer = bytes.to_vec();
        longer.push(9);
        assert_eq!(decode_meta(&longer), Some((3600, 1_699_747_200)));
    }

    #[test]
    fn interval_is_clamped_at_creation() {
        let (dir, f) = feed(5);
        assert_eq!(f.meta().interval, 10);
        let g = FixedFeed::create(dir.path(), 2, 0, 10).expect("create");
        assert_eq!(g.meta().interval, 10);
        assert!(matches!(
            FixedFeed::create(dir.path(), 1, 10, 10),
            Err(StorageError::FeedExists { id: 1 })
        ));
    }

    #[test]
    fn a_scan_over_unflushed_slots_sums_as_the_slots_read_out_do() {
        let (_d, mut f) = feed(10);
        let value = |i: i64| (i % 7 != 3).then(|| (i as f64 * 0.37).sin() * 1e3 + 0.1);
        let points: Vec<_> = (0..300).map(|i| (T0 + 10 * i, value(i))).collect();
        f.write(&points[..200], false).expect("write");
        f.flush().expect("flush");
        // 100 more in the tail, unflushed.
        f.write(&points[200..], false).expect("write");
        assert_eq!((f.disk_npoints, f.npoints()), (200, 300));
        for (a, b) in [
            (0, 300),
            (150, 250),
            (199, 201),
            (200, 300),
            (230, 260),
            (10, 190),
        ] {
            let slots = f.read_slots(a, b).expect("read");
            let want = sum_f32(slots.iter().copied());
            for lanes in [false, true] {
                let got = f.scan_sum_with(a, b, lanes).expect("scan");
                if b <= 200 && lanes {
                    // Flushed slots alone are summed in lanes: equal, not to the bit.
                    assert_eq!(got.1, want.1);
                    assert!((got.0 - want.0).abs() <= 1e-9 * want.0.abs().max(1.0));
                } else {
                    assert_eq!(got, want, "slots {a}..{b}, lanes {lanes}");
                }
            }
        }
    }

    #[test]
    fn first_write_sets_aligned_start_and_gaps_are_nan() {
        let (_d, mut f) = feed(10);
        f.write(&[(T0 + 7, Some(1.0)), (T0 + 31, Some(4.0))], false)
            .expect("write");
        assert_eq!(f.meta().start_time as i64, T0);
        assert_eq!(values(&f), vec![Some(1.0), None, None, Some(4.0)]);
        assert_eq!(f.meta().end_time() as i64, T0 + 30);
    }

    #[test]
    fn overwrite_in_place_and_drop_before_start_and_out_of_order() {
        let (_d, mut f) = feed(10);
        f.write(
            &[(T0, Some(1.0)), (T0 + 10, Some(2.0)), (T0 + 20, Some(3.0))],
            false,
        )
        .expect("write");
        f.flush().expect("flush");
        // Earlier slot overwritten; a point before start dropped; within one call an earlier
        // time than the previous point is dropped.
        let n = f
            .write(
                &[
                    (T0 - 100, Some(9.0)),
                    (T0 + 10, Some(5.0)),
                    (T0 + 5, Some(7.0)),
                ],
                false,
            )
            .expect("write");
        assert_eq!(n, 1);
        assert_eq!(values(&f), vec![Some(1.0), Some(5.0), Some(3.0)]);
        f.flush().expect("flush");
        assert_eq!(values(&f), vec![Some(1.0), Some(5.0), Some(3.0)]);
    }

    #[test]
    fn join_mode_ramps_across_gaps() {
        let (_d, mut f) = feed(10);
        f.write(&[(T0, Some(10.0))], true).expect("write");
        f.flush().expect("flush");
        f.write(&[(T0 + 40, Some(50.0))], true).expect("write");
        assert_eq!(
            values(&f),
            vec![Some(10.0), Some(20.0), Some(30.0), Some(40.0), Some(50.0)]
        );
    }

    #[test]
    fn padding_limit_is_refused() {
        let (_d, mut f) = feed(10);
        f.write(&[(T0, Some(1.0))], false).expect("write");
        let far = T0 + 10 * (MAX_PADDING as i64 + 2);
        let e = f.write(&[(far, Some(2.0))], false).expect_err("too far");
        assert!(matches!(e, StorageError::PaddingLimit { .. }), "{e}");
        assert_eq!(f.npoints(), 1);
        // Exactly at the limit is allowed.
        let edge = T0 + 10 * (MAX_PADDING as i64 + 1);
        f.write(&[(edge, Some(3.0))], false).expect("at limit");
        assert_eq!(f.npoints(), MAX_PADDING + 2);
    }

    /// Points each within the limit of the one before still cannot grow one write past it:
    /// two dozen points a limit apart would be gigabytes.
    #[test]
    fn one_write_grows_a_feed_by_the_padding_limit_at_most() {
        let (_d, mut f) = feed(10);
        f.write(&[(T0, Some(1.0))], false).expect("write");
        let step = 10 * (MAX_PADDING as i64 / 2);
        let hops: Vec<(i64, Option<f64>)> =
            (1..=3).map(|k| (T0 + k * step, Some(k as f64))).collect();
        let e = f.write(&hops, false).expect_err("three half-limits");
        assert!(matches!(e, StorageError::PaddingLimit { .. }), "{e}");
        // The points before the one past the limit stay, as each of emoncms's would.
        assert_eq!(f.npoints(), 1 + 2 * (MAX_PADDING / 2));
        assert_eq!(
            f.read_slots(f.npoints() - 1, f.npoints()).expect("read"),
            vec![2.0]
        );
        f.write(&hops[2..], false)
            .expect("the third, in a write of its own");
        assert_eq!(f.npoints(), 1 + 3 * (MAX_PADDING / 2));
    }

    /// A budget shared by several writes (one record's, to several feeds) bounds their padding
    /// together.
    #[test]
    fn a_shared_budget_bounds_the_padding_of_several_writes() {
        let (_d, mut a) = feed(10);
        let (_e, mut b) = feed(10);
        for f in [&mut a, &mut b] {
            f.write(&[(T0, Some(1.0))], false).expect("write");
        }
        let mut budget = 1_000;
        a.write_within(&[(T0 + 10 * 601, Some(2.0))], false, &mut budget)
            .expect("600 of the 1,000");
        assert_eq!(budget, 400);
        let e = b
            .write_within(
                &[(T0 + 10, Some(5.0)), (T0 + 10 * 602, Some(2.0))],
                false,
                &mut budget,
            )
            .expect_err("600 more");
        assert!(
            matches!(
                e,
                StorageError::PaddingLimit {
                    padding: 600,
                    limit: 400,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(b.npoints(), 2, "the point before it stays");
        b.write_within(&[(T0 + 10 * 401, Some(2.0))], false, &mut budget)
            .expect("399 fit");
        assert_eq!((budget, b.npoints()), (1, 402));
    }

    #[test]
    fn flush_and_reopen_round_trip_with_missing_values() {
        let (dir, mut f) = feed(60);
        f.write(
            &[
                (T0, Some(1.5)),
                (T0 + 60, None),
                (T0 + 120, Some(f64::NAN)),
                (T0 + 180, Some(-2.0)),
            ],
            false,
        )
        .expect("write");
        assert!(f.flush().expect("flush"));
        assert!(!f.flush().expect("nothing to flush"));
        let g = FixedFeed::open(dir.path(), 1).expect("open");
        assert_eq!(g.meta(), f.meta());
        assert_eq!(values(&g), vec![Some(1.5), None, None, Some(-2.0)]);
        let bytes = fs::read(dir.path().join("1.dat")).expect("dat");
        assert_eq!(
            &bytes[4..8],
            &[0x00, 0x00, 0xc0, 0x7f],
            "NaN as PHP packs it"
        );
        assert_eq!(
            g.last_value().expect("last"),
            Some(((T0 + 180) as u64, Some(-2.0)))
        );
    }

    #[test]
    fn damaged_files_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        FixedFeed::create(dir.path(), 1, 10, 10).expect("create");
        fs::write(dir.path().join("1.dat"), [0u8; 6]).expect("write");
        assert!(matches!(
            FixedFeed::open(dir.path(), 1),
            Err(StorageError::BadDataSize { len: 6, .. })
        ));
        fs::write(dir.path().join("1.meta"), [0u8; 12]).expect("write");
        assert!(matches!(
            FixedFeed::open(dir.path(), 1),
            Err(StorageError::CorruptMeta { .. })
        ));
        assert!(matches!(
            FixedFeed::open(dir.path(), 7),
            Err(StorageError::NoSuchFeed { id: 7 })
        ));
    }

    #[test]
    fn trim_keeps_later_slots_and_survives_an_interrupted_rename() {
        let (dir, mut f) = feed(10);
        let pts: Vec<(i64, Option<f64>)> = (0..10).map(|k| (T0 + 10 * k, Some(k as f64))).collect();
        f.write(&pts, false).expect("write");
        assert!(matches!(f.trim(T0), Err(TrimError::AlreadyStarts)));
        assert!(matches!(f.trim(T0 - 5), Err(TrimError::OutOfRange)));
        assert!(matches!(f.trim(T0 + 100), Err(TrimError::OutOfRange)));
        assert_eq!(f.trim(T0 + 25).expect("trim"), 7 * 4);
        assert_eq!(f.meta().start_time as i64, T0 + 30);
        assert_eq!(values(&f)[0], Some(3.0));
        let g = FixedFeed::open(dir.path(), 1).expect("open");
        assert_eq!(g.meta(), f.meta());
        // A crash after the data rename but before the meta rename is completed on open.
        let meta = dir.path().join("1.meta");
        fs::copy(&meta, dir.path().join("1.meta.trim")).expect("copy");
        write_meta(&meta, 10, T0 as u32).expect("old meta");
        let g = FixedFeed::open(dir.path(), 1).expect("open");
        assert_eq!(g.meta().start_time as i64, T0 + 30);
        // A crash before the data rename discards the trim.
        fs::write(dir.path().join("1.dat.trim"), [0u8; 4]).expect("write");
        fs::write(dir.path().join("1.meta.trim"), [0u8; 16]).expect("write");
        let g = FixedFeed::open(dir.path(), 1).expect("open");
        assert_eq!(g.meta().npoints, 7);
        assert!(!dir.path().join("1.dat.trim").exists());
    }

    /// A feed's whole huge pages are regrouped for huge pages once, and again only for a new
    /// file (a trim or a clear replaces the data): reads in between see every value.
    #[test]
    fn huge_page_regrouping_runs_once_per_file_and_keeps_every_value() {
        use std::sync::atomic::Ordering;
        let (_d, mut f) = feed(10);
        // Where huge pages are larger than 2 MiB (arm64 with 16 or 64 KiB pages) the file
        // this test needs would take too much memory to build.
        let huge = match crate::huge_pages::huge_page_size() {
            Some(h) if h <= 2 << 20 => h,
            _ => return,
        };
        if !crate::huge_pages::regroup(
            &File::open(&f.dat_path).expect("open"),
            0,
            &AtomicU64::new(0),
        ) {
            return;
        }
        let slots = (huge / 4 * 2 + 100) as i64;
        let pts: Vec<(i64, Option<f64>)> = (0..slots)
            .map(|k| (T0 + 10 * k, Some((k % 1000) as f64)))
            .collect();
        f.write(&pts, false).expect("write");
        f.flush().expect("flush");
        let done = |f: &FixedFeed| f.huge_done.load(Ordering::Relaxed);
        assert_eq!(done(&f), 0, "nothing is regrouped before a read");
        let last = ((slots - 1) % 1000) as f32;
        assert_eq!(
            f.read_slots(slots as u64 - 1, slots as u64).expect("read"),
            [last]
        );
        assert_eq!(done(&f), 2 * huge);
        // Each flush drops the map; the next read regroups nothing more.
        f.write(&[(T0 + 10 * slots, Some(5.0))], false)
            .expect("write");
        f.flush().expect("flush");
        assert_eq!(f.read_slots(0, 2).expect("read"), [0.0, 1.0]);
        assert_eq!(done(&f), 2 * huge);
        let all = values(&f);
        assert_eq!(all.len() as i64, slots + 1);
        assert!(
            all[..slots as usize]
                .iter()
                .enumerate()
                .all(|(k, v)| *v == Some((k % 1000) as f32))
        );
        // A trim replaces the file: its regions are new to the page cache's grouping.
        f.trim(T0 + 10 * (huge as i64 / 4)).expect("trim");
        assert_eq!(done(&f), 0);
        assert_eq!(values(&f)[0], Some(((huge / 4) % 1000) as f32));
        assert_eq!(done(&f), huge);
        f.clear().expect("clear");
        assert_eq!(done(&f), 0);
    }

    #[test]
    fn export_resends_the_last_known_slot() {
        let (_d, mut f) = feed(10);
        f.write(
            &[(T0, Some(1.0)), (T0 + 10, Some(2.0)), (T0 + 20, Some(3.0))],
            false,
        )
        .expect("write");
        assert_eq!(f.export(0).expect("export").len(), 12);
        assert_eq!(f.export(4).expect("export").len(), 12);
        let tail = f.export(10).expect("export");
        assert_eq!(tail, [2.0f32.to_le_bytes(), 3.0f32.to_le_bytes()].concat());
        assert!(f.export(100).expect("export").is_empty());
    }

    #[test]
    fn clear_and_delete() {
        let (dir, mut f) = feed(10);
        f.write(&[(T0, Some(1.0))], false).expect("write");
        f.flush().expect("flush");
        f.clear().expect("clear");
        assert_eq!(
            f.meta(),
            FixedMeta {
                interval: 10,
                start_time: 0,
                npoints: 0
            }
        );
        let g = FixedFeed::open(dir.path(), 1).expect("open");
        assert_eq!(g.meta().npoints, 0);
        g.delete().expect("delete");
        assert!(!exists(dir.path(), 1));
    }

    /// The mean a scan of every slot gives, for comparing with the levels' answer.
    fn scanned(f: &FixedFeed, from: u64, to: u64) -> (f64, u64) {
        f.scan_sum(from, to).expect("scan")
    }

    fn close(a: (f64, u64), b: (f64, u64)) -> bool {
        a.1 == b.1 && (a.0 - b.0).abs() <= 1e-9 * b.0.abs().max(1.0)
    }

    /// Windows read from the running totals (flushed slots, finite sums) equal a scan, whether
    /// each starts where the last ended, with gaps between them, overlapping, or unordered;
    /// and past an overwrite not yet flushed.
    #[test]
    fn windows_apart_or_overlapping_equal_a_scan() {
        let (_dir, mut f) = feed(10);
        // An unfinished last block (20,013 slots), which the last windows end in.
        let value = |k: i64| (k % 97 != 0).then_some((k % 1_000) as f64 - 333.5);
        let points: Vec<(i64, Option<f64>)> =
            (0..20_013).map(|k| (T0 + k * 10, value(k))).collect();
        f.write(&points, false).expect("write");
        f.flush().expect("flush");
        let sets: [Vec<(u64, u64)>; 5] = [
            (0..40).map(|k| (k * 401 + 7, (k + 1) * 401 + 7)).collect(),
            (0..30).map(|k| (k * 613 + 5, k * 613 + 5 + 301)).collect(),
            (0..30).map(|k| (k * 400 + 3, k * 400 + 3 + 777)).collect(),
            vec![
                (9_001, 12_345),
                (130, 4_000),
                (4_000, 9_001),
                (5_010, 9_000),
                (4_000, 4_200),
            ],
            vec![
                (17_000, 19_990),
                (19_000, 20_013),
                (19_900, 20_010),
                (18_000, 20_500),
            ],
        ];
        let check = |f: &FixedFeed| {
            for windows in &sets {
                let got = f.sum_windows(windows).expect("windows");
                for (w, got) in windows.iter().zip(got) {
                    assert!(close(got, scanned(f, w.0, w.1)), "{w:?}: {got:?}");
                }
            }
        };
        check(&f);
        f.write(&[(T0 + 5_000 * 10, Some(1e6))], false)
            .expect("overwrite");
        check(&f);
        // Appended and not flushed: the windows ending past the file read the tail.
        let more: Vec<(i64, Option<f64>)> =
            (20_013..20_400).map(|k| (T0 + k * 10, value(k))).collect();
        f.write(&more, false).expect("append");
        check(&f);
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config(24))]

        /// Long means from the levels equal a scan, through writes with gaps, flushes,
        /// overwrites of slots already summed, and a reopen that loads the saved levels.
        #[test]
        fn long_means_equal_a_scan_through_writes_flushes_and_reopens(
            batches in proptest::collection::vec(
                proptest::collection::vec((0i64..3_000, proptest::option::weighted(0.8, -500f64..500f64)), 1..400),
                1..6),
            ranges in proptest::collection::vec((0u64..3_000, 0u64..3_000), 1..20),
        ) {
            let (dir, mut f) = feed(10);
            for (i, batch) in batches.iter().enumerate() {
                let mut points: Vec<(i64, Option<f64>)> =
                    batch.iter().map(|&(k, v)| (T0 + k * 10, v)).collect();
                points.sort_by_key(|p| p.0);
                f.write(&points, false).expect("write");
                for &(a, len) in &ranges {
                    let got = f.sum_slots(a, a + len).expect("sum");
                    proptest::prop_assert!(close(got, scanned(&f, a, a + len)), "{:?}", got);
                    // The same span as consecutive windows.
                    let width = (len / 7).max(1);
                    let windows: Vec<(u64, u64)> =
                        (0..7).map(|k| (a + k * width, a + (k + 1) * width)).collect();
                    for (w, got) in windows.iter().zip(f.sum_windows(&windows).expect("windows")) {
                        proptest::prop_assert!(close(got, scanned(&f, w.0, w.1)), "{:?} {:?}", w, got);
                    }
                }
                if i % 2 == 0 {
                    f.flush().expect("flush");
                }
            }
            f.flush().expect("flush");
            let n = f.npoints();
            let whole = f.sum_slots(0, n).expect("sum");
            drop(f);
            let g = FixedFeed::open(dir.path(), 1).expect("open");
            let again = g.sum_slots(0, n).expect("sum");
            proptest::prop_assert!(close(again, whole), "{:?} vs {:?}", again, whole);
            proptest::prop_assert!(close(again, scanned(&g, 0, n)));
        }
    }

    #[test]
    fn levels_are_saved_on_close_and_ignored_once_the_data_file_changes() {
        let (dir, mut f) = feed(10);
        let points: Vec<(i64, Option<f64>)> =
            (0..5_000).map(|k| (T0 + k * 10, Some(k as f64))).collect();
        f.write(&points, false).expect("write");
        f.flush().expect("flush");
        let n = f.npoints();
        let want = f.sum_slots(0, n).expect("sum");
        drop(f);
        let path = levels::levels_path(dir.path(), 1);
        assert!(path.exists(), "saved on close");
        // Another program rewrites the data (emoncms, after the files were copied back): the
        // saved levels describe other data and must not be used.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let dat = dat_path(dir.path(), 1);
        let zeros = vec![0u8; fs::metadata(&dat).expect("dat").len() as usize];
        fs::write(&dat, zeros).expect("rewrite");
        let g = FixedFeed::open(dir.path(), 1).expect("open");
        assert_eq!(g.sum_slots(0, n).expect("sum"), (0.0, n));
        assert_ne!(want.0, 0.0);
        // Clearing removes them.
        let mut g = g;
        g.clear().expect("clear");
        assert!(!path.exists());
    }

    /// A feed's `.dat` map is dropped once a whole flush interval passed without a read, and
    /// made again by the next read.
    #[test]
    fn an_unread_feed_gives_its_map_back() {
        let (_dir, mut f) = feed(10);
        f.write(&[(T0, Some(1.0)), (T0 + 10, Some(2.0))], false)
            .expect("write");
        f.flush().expect("flush");
        assert_eq!(f.read_slots(0, 2).expect("read"), vec![1.0, 2.0]);
        assert!(f.is_mapped());
        f.release_idle_map();
        assert!(f.is_mapped(), "read since the last look");
        f.release_idle_map();
        assert!(!f.is_mapped(), "not read since");
        assert_eq!(f.read_slots(0, 2).expect("read"), vec![1.0, 2.0]);
        assert!(f.is_mapped());
    }

    #[test]
    fn idle_levels_are_saved_dropped_and_loaded_again_with_later_writes_seen() {
        let (dir, mut f) = feed(10);
        let points: Vec<(i64, Option<f64>)> = (0..5_000)
            .map(|k| (T0 + k * 10, Some((k % 13) as f64)))
            .collect();
        f.write(&points, false).expect("write");
        f.flush().expect("flush");
        let n = f.npoints();
        f.sum_slots(0, n).expect("sum");
        f.release_idle_levels(std::time::Duration::ZERO);
        assert!(levels::levels_path(dir.path(), 1).exists(), "saved");
        assert!(!f.levels_lock().is_built(), "dropped from memory");
        // An overwrite inside a block the file covers, not yet flushed, and an append.
        f.write(&[(T0 + 100 * 10, Some(1000.0))], false)
            .expect("overwrite");
        f.write(&[(T0 + 5_100 * 10, Some(7.0))], false)
            .expect("append");
        let n = f.npoints();
        assert!(close(f.sum_slots(0, n).expect("sum"), scanned(&f, 0, n)));
        assert!(f.levels_lock().is_built(), "loaded again");
        f.flush().expect("flush");
        assert!(close(f.sum_slots(0, n).expect("sum"), scanned(&f, 0, n)));
    }
}
