//! Variable-interval feeds, byte-compatible with emoncms's PHPTimeSeries (engine 2).
//!
//! # On-disk format
//!
//! ```text
//! phptimeseries/feed_<id>.MYD   9-byte records: u8 0xF9 | u32 LE unix time | f32 LE value
//! ```
//!
//! Records ascend strictly by time. emoncms reads these files unchanged, and ynni opens
//! emoncms's.
//!
//! # Writes (differs from emoncms on purpose)
//!
//! A point at a time already present overwrites that record, as in emoncms: in place, four
//! bytes of value (a kill leaves the old or the new, and the log replays the new). A point
//! older than the last record that is not an exact overwrite is **inserted** at its place
//! (emoncms drops it), so history can be backfilled. Appends go to the end of the file; a
//! flush that has to insert rewrites the file into a temporary copy and renames it over the
//! original, so a crash leaves either the old or the new file, never a mix.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use std::io::{BufWriter, Write};

use crate::atomic_file::{commit, sync_dir, temp_path};
use crate::error::{Result, StorageError, io_err};

/// Bytes per record.
pub const RECORD: u64 = 9;

/// A flush writes at most this many points over records the file has in place (each a
/// search of the file: about 22 reads of it for a year of 10 s points, log2 of 3.15 million); more, and it rewrites
/// the file, one pass however many there are (an emonhub buffer resent whole).
const IN_PLACE_MAX: usize = 4096;

/// A rewritten file's records, first and last time.
type Extent = (u64, Option<u32>, Option<u32>);

/// A feed file being rewritten into a temporary file next to it.
struct Rewrite {
    tmp: PathBuf,
    out: BufWriter<File>,
    record: Vec<u8>,
    n: u64,
    first: Option<u32>,
    last: Option<u32>,
}

impl Rewrite {
    fn start(path: &Path) -> Result<Self> {
        let tmp = temp_path(path, "tmp");
        let file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
            tmp,
            record: Vec::with_capacity(RECORD as usize),
            n: 0,
            first: None,
            last: None,
        })
    }

    fn push(&mut self, t: u32, v: f32) -> Result<()> {
        self.record.clear();
        encode_record(t, v, &mut self.record);
        self.out
            .write_all(&self.record)
            .map_err(io_err("writing", &self.tmp))?;
        self.n += 1;
        self.first = self.first.or(Some(t));
        self.last = Some(t);
        Ok(())
    }

    /// Syncs the new file and renames it over `path`: the records, first and last time, and
    /// whether the file at `path` is now the new one (also when a step after the rename, the
    /// directory's sync, failed).
    fn commit(self, path: &Path) -> (Extent, bool, Result<()>) {
        let tmp = self.tmp.clone();
        let extent = (self.n, self.first, self.last);
        let written = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_err("writing", &tmp));
        if let Err(e) = written {
            // A partial copy as large as the feed would otherwise stay (on a full disk, too).
            let _ = fs::remove_file(&tmp);
            return (extent, false, Err(e));
        }
        let done = commit(&tmp, path);
        let replaced = done.is_ok() || !tmp.exists();
        if !replaced {
            let _ = fs::remove_file(&tmp);
        }
        (extent, replaced, done)
    }
}
const FLAG: u8 = 0xF9;

/// The file of feed `id` in `dir`.
pub fn file_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("feed_{id}.MYD"))
}

/// Whether feed `id` has a file in `dir`.
pub fn exists(dir: &Path, id: u32) -> bool {
    file_path(dir, id).exists()
}

/// The header facts of a variable-interval feed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VariableMeta {
    pub npoints: u64,
    pub start_time: u32,
    pub end_time: u32,
}

#[derive(Debug)]
pub struct VariableFeed {
    id: u32,
    dir: PathBuf,
    path: PathBuf,
    disk_npoints: u64,
    disk_first: Option<u32>,
    disk_last: Option<u32>,
    /// Unflushed points by time; a later write at the same time replaces an earlier one.
    pending: BTreeMap<u32, f32>,
}

/// One record's (time, value); `rec` holds at least [`RECORD`] bytes.
fn decode(rec: &[u8]) -> (u32, f32) {
    (
        u32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]),
        f32::from_le_bytes([rec[5], rec[6], rec[7], rec[8]]),
    )
}

/// The (time, value) of each whole record in `bytes`, in file order; trailing bytes short of
/// a record are ignored, as emoncms's `npoints = floor(size / 9)` does.
pub fn decode_records(bytes: &[u8]) -> impl Iterator<Item = (u32, f32)> {
    bytes.chunks_exact(RECORD as usize).map(decode)
}

/// Appends the record of the point (`t`, `v`) to `out`.
pub fn encode_record(t: u32, v: f32, out: &mut Vec<u8>) {
    out.push(FLAG);
    out.extend_from_slice(&t.to_le_bytes());
    out.extend_from_slice(&v.to_le_bytes());
}

/// Records of one [`VariableFeed::read_chunk`] and where the next chunk starts.
pub type Chunk = (Vec<(u32, f32)>, Option<u32>);

impl VariableFeed {
    pub fn create(dir: &Path, id: u32) -> Result<Self> {
        let p = file_path(dir, id);
        if p.exists() {
            return Err(StorageError::FeedExists { id });
        }
        File::create(&p)
            .and_then(|f| f.sync_all())
            .map_err(io_err("creating", &p))?;
        sync_dir(dir)?;
        Self::open(dir, id)
    }

    /// Opens an existing feed. A file that ends in part of a record (an append cut short by a
    /// kill at a page boundary or a full disk) is read as its whole records, as emoncms reads
    /// it; the next append is written where the part begins, over it (an append is at least one
    /// whole record). The records cut short are still in the log, which replays them after the
    /// last checkpoint. Nothing is written here: in a cluster, opening comes before any check
    /// of the lease.
    pub fn open(dir: &Path, id: u32) -> Result<Self> {
        let p = file_path(dir, id);
        let len = match fs::metadata(&p) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NoSuchFeed { id });
            }
            Err(e) => return Err(io_err("reading", &p)(e)),
        };
        if len % RECORD != 0 {
            tracing::warn!(path = %p.display(), len, "a variable-interval feed's file ends in part of a record (an append cut short): read as its whole records, the part written over by the next append");
        }
        let len = len - len % RECORD;
        let mut feed = Self {
            id,
            dir: dir.to_path_buf(),
            path: p,
            disk_npoints: len / RECORD,
            disk_first: None,
            disk_last: None,
            pending: BTreeMap::new(),
        };
        if feed.disk_npoints > 0 {
            feed.disk_first = Some(feed.disk_record(0)?.0);
            feed.disk_last = Some(feed.disk_record(feed.disk_npoints - 1)?.0);
        }
        Ok(feed)
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    fn disk_record(&self, i: u64) -> Result<(u32, f32)> {
        let f = File::open(&self.path).map_err(io_err("opening", &self.path))?;
        let mut rec = [0u8; RECORD as usize];
        f.read_exact_at(&mut rec, i * RECORD)
            .map_err(io_err("reading", &self.path))?;
        Ok(decode(&rec))
    }

    /// Index of the first record on disk with time ≥ `t` (`disk_npoints` if none).
    fn disk_lower_bound(&self, f: &File, t: u32) -> Result<u64> {
        self.disk_lower_bound_in(f, 0, t)
    }

    /// [`VariableFeed::disk_lower_bound`] among the records from index `lo` on.
    fn disk_lower_bound_in(&self, f: &File, lo: u64, t: u32) -> Result<u64> {
        let (mut lo, mut hi) = (lo.min(self.disk_npoints), self.disk_npoints);
        let mut rec = [0u8; RECORD as usize];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            f.read_exact_at(&mut rec, mid * RECORD)
                .map_err(io_err("reading", &self.path))?;
            if decode(&rec).0 < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Stores points (unix seconds, value; `None` = missing, stored as NaN). Times outside
    /// 1..=u32::MAX are ignored. Returns how many points were stored.
    pub fn write(&mut self, points: &[(i64, Option<f64>)]) -> usize {
        let mut stored = 0;
        for &(t, v) in points {
            let Ok(t) = u32::try_from(t) else { continue };
            if t == 0 {
                continue;
            }
            self.pending.insert(t, v.map_or(f32::NAN, |v| v as f32));
            stored += 1;
        }
        stored
    }

    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Records with `from <= time <= to`, unflushed points included, ascending.
    pub fn read_range(&self, from: u32, to: u32) -> Result<Vec<(u32, f32)>> {
        Ok(self.read_chunk(from, to, usize::MAX)?.0)
    }

    /// Like [`read_range`](Self::read_range), but at most `max` records from the file (and the
    /// unflushed points among them), so a long range can be walked with bounded memory. The
    /// second value is where the next chunk starts, `None` once `to` is reached.
    pub fn read_chunk(&self, from: u32, to: u32, max: usize) -> Result<Chunk> {
        let mut out = Vec::new();
        if from > to {
            return Ok((out, None));
        }
        // Up to where this chunk answers: `to`, or the last file record it returns.
        let mut upto = to;
        let mut next = None;
        if self.disk_npoints > 0 {
            let f = File::open(&self.path).map_err(io_err("opening", &self.path))?;
            let a = self.disk_lower_bound(&f, from)?;
            let end = match to.checked_add(1) {
                Some(t) => self.disk_lower_bound(&f, t)?,
                None => self.disk_npoints,
            };
            let mut b = end.min(a.saturating_add(u64::try_from(max.max(1)).unwrap_or(u64::MAX)));
            // A chunk never ends inside a run of one time: a file written by an old emoncms may
            // repeat a time, and the next chunk starts after the last time of this one.
            if a < b && b < end {
                let last = self.disk_record(b - 1)?.0;
                if self.disk_record(b)?.0 == last {
                    b = match last.checked_add(1) {
                        Some(t) => self.disk_lower_bound(&f, t)?.min(end),
                        None => end,
                    };
                }
            }
            if a < b {
                let mut bytes = vec![0u8; ((b - a) * RECORD) as usize];
                f.read_exact_at(&mut bytes, a * RECORD)
                    .map_err(io_err("reading", &self.path))?;
                out.extend(decode_records(&bytes));
            }
            if b < end
                && let Some(&(last, _)) = out.last()
            {
                // Cut short: times in the file ascend, so what comes after `last` (from the
                // file and from the unflushed points) is the next chunk's.
                upto = last;
                next = last.checked_add(1);
            }
        }
        if self.pending.range(from..=upto).next().is_some() {
            let mut merged: BTreeMap<u32, f32> = out.into_iter().collect();
            merged.extend(self.pending.range(from..=upto).map(|(&t, &v)| (t, v)));
            out = merged.into_iter().collect();
        }
        Ok((out, next))
    }

    /// The last record (unflushed points included) with time < `t`.
    pub fn last_before(&self, t: u32) -> Result<Option<(u32, f32)>> {
        let disk = if self.disk_first.is_some_and(|first| first < t) {
            let f = File::open(&self.path).map_err(io_err("opening", &self.path))?;
            let i = self.disk_lower_bound(&f, t)?;
            if i > 0 {
                Some(self.disk_record(i - 1)?)
            } else {
                None
            }
        } else {
            None
        };
        let pending = self.pending.range(..t).next_back().map(|(&t, &v)| (t, v));
        Ok(match (disk, pending) {
            (Some(d), Some(p)) => Some(if p.0 >= d.0 { p } else { d }),
            (d, p) => d.or(p),
        })
    }

    /// The first record (unflushed points included) with time > `t`.
    pub fn first_after(&self, t: u32) -> Result<Option<(u32, f32)>> {
        let disk = if self.disk_last.is_some_and(|last| last > t) {
            let f = File::open(&self.path).map_err(io_err("opening", &self.path))?;
            let i = self.disk_lower_bound(&f, t.saturating_add(1))?;
            if i < self.disk_npoints {
                Some(self.disk_record(i)?)
            } else {
                None
            }
        } else {
            None
        };
        let pending = t
            .checked_add(1)
            .and_then(|from| self.pending.range(from..).next().map(|(&t, &v)| (t, v)));
        Ok(match (disk, pending) {
            (Some(d), Some(p)) => Some(if p.0 <= d.0 { p } else { d }),
            (d, p) => d.or(p),
        })
    }

    pub fn meta(&self) -> VariableMeta {
        let first = [self.disk_first, self.pending.keys().next().copied()]
            .into_iter()
            .flatten()
            .min();
        let last = [self.disk_last, self.pending.keys().next_back().copied()]
            .into_iter()
            .flatten()
            .max();
        let overlap = match (self.disk_first, self.disk_last) {
            (Some(_), Some(_)) => self.pending_len_on_disk_times(),
            _ => 0,
        };
        VariableMeta {
            npoints: self.disk_npoints + self.pending.len() as u64 - overlap,
            start_time: first.unwrap_or(0),
            end_time: last.unwrap_or(0),
        }
    }

    /// How many pending times already exist on disk (they overwrite, not add).
    fn pending_len_on_disk_times(&self) -> u64 {
        let Some(last) = self.disk_last else { return 0 };
        let older: Vec<u32> = self.pending.range(..=last).map(|(&t, _)| t).collect();
        if older.is_empty() {
            return 0;
        }
        let Ok(f) = File::open(&self.path) else {
            return 0;
        };
        older
            .iter()
            .filter(|&&t| {
                self.disk_lower_bound(&f, t)
                    .ok()
                    .filter(|&i| i < self.disk_npoints)
                    .and_then(|i| self.disk_record(i).ok())
                    .is_some_and(|(found, _)| found == t)
            })
            .count() as u64
    }

    /// The last record's time and value (`None` value for NaN), or `None` for an empty feed.
    pub fn last_value(&self) -> Result<Option<(u32, Option<f32>)>> {
        let disk = match self.disk_npoints {
            0 => None,
            n => Some(self.disk_record(n - 1)?),
        };
        let pend = self.pending.iter().next_back().map(|(&t, &v)| (t, v));
        let last = match (disk, pend) {
            (Some(d), Some(p)) => Some(if p.0 >= d.0 { p } else { d }),
            (d, p) => d.or(p),
        };
        Ok(last.map(|(t, v)| (t, (!v.is_nan()).then_some(v))))
    }

    /// Writes pending points to the file (fsynced). Returns whether anything was written.
    pub fn flush(&mut self) -> Result<bool> {
        let Some((&first_pending, _)) = self.pending.iter().next() else {
            return Ok(false);
        };
        match self.disk_last {
            Some(last) if first_pending <= last => {
                if !self.overwrite_in_place(last)? {
                    self.rewrite_from(first_pending)?;
                }
            }
            _ => {
                let f = self.open_for_writing()?;
                self.append(&f, 0)?;
                f.sync_data().map_err(io_err("syncing", &self.path))?;
            }
        }
        self.pending.clear();
        Ok(true)
    }

    fn open_for_writing(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io_err("opening", &self.path))
    }

    /// Appends the pending points after time `after` (not synced).
    fn append(&mut self, f: &File, after: u32) -> Result<()> {
        let mut bytes = Vec::new();
        let (mut n, mut first, mut last) = (0u64, None, None);
        for (&t, &v) in self.pending.range(after.saturating_add(1)..) {
            if t <= after {
                continue;
            }
            encode_record(t, v, &mut bytes);
            n += 1;
            first = first.or(Some(t));
            last = Some(t);
        }
        if n == 0 {
            return Ok(());
        }
        f.write_all_at(&bytes, self.disk_npoints * RECORD)
            .map_err(io_err("writing", &self.path))?;
        self.disk_first = self.disk_first.or(first);
        self.disk_last = last;
        self.disk_npoints += n;
        Ok(())
    }

    /// When every pending point at or before the file's last record (`last`) is at a time the
    /// file has (a resent reading, a value corrected), writes those values over the records'
    /// in place and appends the later points, as emoncms updates a record; `false`, with
    /// nothing written, when one would have to be inserted. A value is four bytes of one
    /// record, so a kill leaves the old or the new value, and the log replays the new.
    /// Past [`IN_PLACE_MAX`] points to write over, `false`: the rewrite reads the file once,
    /// where each point in place costs a search of it.
    fn overwrite_in_place(&mut self, last: u32) -> Result<bool> {
        if self.pending.range(..=last).nth(IN_PLACE_MAX).is_some() {
            return Ok(false);
        }
        let f = self.open_for_writing()?;
        let mut found = Vec::new();
        let mut lo = 0;
        let mut rec = [0u8; RECORD as usize];
        for (&t, &v) in self.pending.range(..=last) {
            // Resent readings come in order: the record after the last one found is tried
            // before a search.
            let next = lo < self.disk_npoints && {
                f.read_exact_at(&mut rec, lo * RECORD)
                    .map_err(io_err("reading", &self.path))?;
                decode(&rec).0 == t
            };
            let i = if next {
                lo
            } else {
                let i = self.disk_lower_bound_in(&f, lo, t)?;
                if i == self.disk_npoints {
                    return Ok(false);
                }
                f.read_exact_at(&mut rec, i * RECORD)
                    .map_err(io_err("reading", &self.path))?;
                if decode(&rec).0 != t {
                    return Ok(false);
                }
                i
            };
            found.push((i, v));
            lo = i + 1;
        }
        for (i, v) in found {
            f.write_all_at(&v.to_le_bytes(), i * RECORD + 5)
                .map_err(io_err("writing", &self.path))?;
        }
        self.append(&f, last)?;
        f.sync_data().map_err(io_err("syncing", &self.path))?;
        Ok(true)
    }

    /// Inserts or overwrites older records: the file is rewritten into a temporary file that
    /// replaces the original atomically, the records before `first` copied as they are and
    /// the rest merged with the unflushed points (which win on an equal time), a chunk at a
    /// time, so a rewrite of a file of any size holds one chunk in memory.
    fn rewrite_from(&mut self, first: u32) -> Result<()> {
        let f = File::open(&self.path).map_err(io_err("opening", &self.path))?;
        let a = self.disk_lower_bound(&f, first)?;
        let mut out = Rewrite::start(&self.path)?;
        self.for_each_disk(&f, 0, a, |t, v| out.push(t, v))?;
        let mut pending = self.pending.iter().peekable();
        self.for_each_disk(&f, a, self.disk_npoints, |t, v| {
            while let Some((&pt, &pv)) = pending.next_if(|(pt, _)| **pt < t) {
                out.push(pt, pv)?;
            }
            if pending.peek().is_some_and(|(pt, _)| **pt == t) {
                // Overwritten: the unflushed point goes out with the next later record.
                return Ok(());
            }
            out.push(t, v)
        })?;
        for (&t, &v) in pending {
            out.push(t, v)?;
        }
        self.finish(out)
    }

    /// Calls `each` on the file's records `[from, to)`, read a chunk at a time.
    fn for_each_disk(
        &self,
        f: &File,
        from: u64,
        to: u64,
        mut each: impl FnMut(u32, f32) -> Result<()>,
    ) -> Result<()> {
        const CHUNK: u64 = 1 << 16;
        let mut bytes = Vec::new();
        let mut at = from;
        while at < to {
            let n = (to - at).min(CHUNK);
            bytes.resize((n * RECORD) as usize, 0);
            f.read_exact_at(&mut bytes, at * RECORD)
                .map_err(io_err("reading", &self.path))?;
            for (t, v) in decode_records(&bytes) {
                each(t, v)?;
            }
            at += n;
        }
        Ok(())
    }

    /// Puts a rewritten file in place and takes its extent: once the rename is done the file
    /// is the new one, even if syncing the directory then failed (keeping the old extent would
    /// make the next flush read and rewrite only part of it).
    fn finish(&mut self, out: Rewrite) -> Result<()> {
        let ((n, first, last), replaced, done) = out.commit(&self.path);
        if replaced {
            self.disk_npoints = n;
            self.disk_first = first;
            self.disk_last = last;
        }
        done
    }

    /// Drops the records before `start_time` (emoncms's `trim`); `None` (emoncms: `Invalid start
    /// time`) if no record is at or after it. Returns the bytes written.
    pub fn trim(&mut self, start_time: u32) -> Result<Option<u64>> {
        self.flush()?;
        if self.disk_npoints == 0 {
            return Ok(None);
        }
        let f = File::open(&self.path).map_err(io_err("opening", &self.path))?;
        let a = self.disk_lower_bound(&f, start_time)?;
        if a == self.disk_npoints {
            return Ok(None);
        }
        let mut out = Rewrite::start(&self.path)?;
        self.for_each_disk(&f, a, self.disk_npoints, |t, v| out.push(t, v))?;
        self.finish(out)?;
        Ok(Some(self.disk_npoints * RECORD))
    }

    /// Removes the record at exactly `time` (emoncms's MySQL `deletedatapoint`); the file is
    /// rewritten atomically, so a crash leaves either the old or the new file. Returns whether
    /// a record was there.
    pub fn delete_point(&mut self, time: u32) -> Result<bool> {
        self.flush()?;
        if self.disk_npoints == 0 {
            return Ok(false);
        }
        // Found first: a time that is not there rewrites nothing.
        let f = File::open(&self.path).map_err(io_err("opening", &self.path))?;
        let a = self.disk_lower_bound(&f, time)?;
        if a == self.disk_npoints || self.disk_record(a)?.0 != time {
            return Ok(false);
        }
        let mut out = Rewrite::start(&self.path)?;
        self.for_each_disk(&f, 0, self.disk_npoints, |t, v| {
            if t == time { Ok(()) } else { out.push(t, v) }
        })?;
        self.finish(out)?;
        Ok(true)
    }

    /// The file's bytes from a byte offset rounded down to a record (emoncms's `export`).
    pub fn export(&mut self, offset: u64) -> Result<Vec<u8>> {
        let span = self.export_span(offset)?;
        span.read()
    }

    /// Where [`VariableFeed::export`]'s bytes are, once the feed is flushed (see
    /// [`crate::fixed::FixedFeed::export_span`]).
    pub fn export_span(&mut self, offset: u64) -> Result<crate::store::FileSpan> {
        self.flush()?;
        Ok(self.disk_span(offset))
    }

    /// [`VariableFeed::export_span`] of what is in the file now, points in memory left out.
    pub fn disk_span(&self, offset: u64) -> crate::store::FileSpan {
        let off = offset / RECORD * RECORD;
        let len = self.disk_npoints * RECORD;
        crate::store::FileSpan {
            path: self.path.clone(),
            from: off.min(len),
            len: len.saturating_sub(off),
        }
    }

    /// Empties the feed.
    pub fn clear(&mut self) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(io_err("truncating", &self.path))?;
        f.sync_all().map_err(io_err("syncing", &self.path))?;
        self.pending.clear();
        self.disk_npoints = 0;
        self.disk_first = None;
        self.disk_last = None;
        Ok(())
    }

    pub fn delete(self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &self.path)(e)),
        }
        sync_dir(&self.dir)
    }

    /// Bytes on disk once flushed (emoncms's `size`).
    pub fn size(&self) -> u64 {
        self.meta().npoints * RECORD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_699_999_200;

    fn feed() -> (tempfile::TempDir, VariableFeed) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = VariableFeed::create(dir.path(), 2).expect("create");
        (dir, f)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Writes in any order, flushed in rounds, then trims and deletions: the file always
        /// holds what a sorted map of the same operations holds, in order and once per time,
        /// reopened from disk as well.
        #[test]
        fn rewrites_keep_the_file_equal_to_a_sorted_map(
            rounds in proptest::collection::vec(
                proptest::collection::vec((1u32..200, -100i32..100), 0..30), 1..6),
            deletes in proptest::collection::vec(1u32..200, 0..5),
            trim in proptest::option::of(1u32..200),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut f = VariableFeed::create(dir.path(), 3).expect("create");
            let mut model: BTreeMap<u32, f32> = BTreeMap::new();
            for round in &rounds {
                let points: Vec<(i64, Option<f64>)> =
                    round.iter().map(|&(t, v)| (i64::from(t), Some(f64::from(v)))).collect();
                f.write(&points);
                for &(t, v) in round {
                    model.insert(t, v as f32);
                }
                f.flush().expect("flush");
                let want: Vec<(u32, f32)> = model.iter().map(|(&t, &v)| (t, v)).collect();
                proptest::prop_assert_eq!(f.read_range(0, u32::MAX).expect("read"), want);
            }
            for t in deletes {
                let had = model.remove(&t).is_some();
                proptest::prop_assert_eq!(f.delete_point(t).expect("delete"), had);
            }
            if let Some(t) = trim {
                let kept: BTreeMap<u32, f32> = model.range(t..).map(|(&t, &v)| (t, v)).collect();
                let done = f.trim(t).expect("trim");
                proptest::prop_assert_eq!(done.is_some(), !kept.is_empty());
                if !kept.is_empty() {
                    model = kept;
                }
            }
            let want: Vec<(u32, f32)> = model.iter().map(|(&t, &v)| (t, v)).collect();
            proptest::prop_assert_eq!(f.read_range(0, u32::MAX).expect("read"), want.clone());
            let again = VariableFeed::open(dir.path(), 3).expect("reopen");
            proptest::prop_assert_eq!(again.read_range(0, u32::MAX).expect("read"), want);
        }
    }

    fn all(f: &VariableFeed) -> Vec<(i64, f32)> {
        f.read_range(0, u32::MAX)
            .expect("read")
            .into_iter()
            .map(|(t, v)| (i64::from(t) - T0, v))
            .collect()
    }

    /// Points at times the file has are written over their records in place (the file is not
    /// rewritten), with later points appended; an insert still rewrites it.
    #[test]
    fn overwrites_are_written_in_place() {
        use std::os::unix::fs::MetadataExt;
        let (dir, mut f) = feed();
        let points: Vec<(i64, Option<f64>)> =
            (0..1000).map(|k| (T0 + 10 * k, Some(k as f64))).collect();
        f.write(&points);
        f.flush().expect("flush");
        let path = file_path(dir.path(), 2);
        let inode = || fs::metadata(&path).expect("stat").ino();
        let before = inode();
        f.write(&[
            (T0 + 10, Some(-1.0)),
            (T0 + 5000, Some(-2.0)),
            (T0 + 9990, Some(-3.0)),
            (T0 + 10_000, Some(-4.0)),
        ]);
        f.flush().expect("flush");
        assert_eq!(inode(), before, "written in place");
        let g = VariableFeed::open(dir.path(), 2).expect("open");
        let got = all(&g);
        assert_eq!(got.len(), 1001);
        assert_eq!(got[1], (10, -1.0));
        assert_eq!(got[500], (5000, -2.0));
        assert_eq!(got[999], (9990, -3.0));
        assert_eq!(got[1000], (10_000, -4.0));
        assert_eq!(got[2], (20, 2.0));
        f.write(&[(T0 + 15, Some(0.5))]);
        f.flush().expect("flush");
        assert_ne!(inode(), before, "an insert rewrites");
        assert_eq!(all(&f)[2], (15, 0.5));
    }

    /// Past `IN_PLACE_MAX` points to write over, a flush rewrites the file in one pass
    /// instead of searching it for each; the values are the same either way.
    #[test]
    fn many_overwrites_rewrite_the_file_once() {
        use std::os::unix::fs::MetadataExt;
        let (dir, mut f) = feed();
        let n = super::IN_PLACE_MAX as i64 + 10;
        let points: Vec<(i64, Option<f64>)> =
            (0..n).map(|k| (T0 + 10 * k, Some(k as f64))).collect();
        f.write(&points);
        f.flush().expect("flush");
        let path = file_path(dir.path(), 2);
        let inode = || fs::metadata(&path).expect("stat").ino();
        let before = inode();
        let resent: Vec<(i64, Option<f64>)> =
            (0..n).map(|k| (T0 + 10 * k, Some(-(k as f64)))).collect();
        f.write(&resent);
        f.flush().expect("flush");
        assert_ne!(inode(), before, "rewritten");
        let got = all(&VariableFeed::open(dir.path(), 2).expect("open"));
        assert_eq!(got.len() as i64, n);
        assert!(
            got.iter()
                .enumerate()
                .all(|(k, &(t, v))| t == 10 * k as i64 && v == -(k as f32))
        );
        // A few are still written in place, in order or not.
        let before = inode();
        f.write(&[
            (T0 + 30, Some(3.0)),
            (T0 + 20, Some(2.0)),
            (T0 + 40_000, Some(4.0)),
        ]);
        f.flush().expect("flush");
        assert_eq!(inode(), before, "in place");
        let got = all(&f);
        assert_eq!(
            (got[2], got[3], got[4000]),
            ((20, 2.0), (30, 3.0), (40_000, 4.0))
        );
    }

    #[test]
    fn append_overwrite_and_backfill_insert() {
        let (dir, mut f) = feed();
        f.write(&[(T0, Some(1.0)), (T0 + 10, Some(2.0)), (T0 + 30, Some(4.0))]);
        f.flush().expect("flush");
        // Exact overwrite, and an older point that emoncms would drop is inserted.
        f.write(&[
            (T0 + 10, Some(20.0)),
            (T0 + 25, Some(3.0)),
            (T0 + 40, Some(5.0)),
        ]);
        assert_eq!(
            all(&f),
            vec![(0, 1.0), (10, 20.0), (25, 3.0), (30, 4.0), (40, 5.0)]
        );
        assert_eq!(f.meta().npoints, 5);
        f.flush().expect("flush");
        assert!(!dir.path().join("feed_2.MYD.tmp").exists());
        let g = VariableFeed::open(dir.path(), 2).expect("open");
        assert_eq!(
            all(&g),
            vec![(0, 1.0), (10, 20.0), (25, 3.0), (30, 4.0), (40, 5.0)]
        );
        assert_eq!(g.meta().npoints, 5);
        assert_eq!(
            g.last_value().expect("last"),
            Some(((T0 + 40) as u32, Some(5.0)))
        );
        let bytes = fs::read(dir.path().join("feed_2.MYD")).expect("file");
        assert_eq!(bytes.len(), 45);
        assert_eq!(bytes[0], 0xF9);
    }

    #[test]
    fn delete_point_removes_exactly_one_record_including_pending_ones() {
        let (dir, mut f) = feed();
        f.write(&[(T0, Some(1.0)), (T0 + 10, Some(2.0))]);
        f.flush().expect("flush");
        f.write(&[(T0 + 20, Some(3.0))]);
        assert!(!f.delete_point((T0 + 5) as u32).expect("delete"));
        assert!(f.delete_point((T0 + 10) as u32).expect("delete"));
        assert!(f.delete_point((T0 + 20) as u32).expect("delete"));
        assert_eq!(all(&f), vec![(0, 1.0)]);
        assert_eq!(f.meta().npoints, 1);
        let g = VariableFeed::open(dir.path(), 2).expect("open");
        assert_eq!(all(&g), vec![(0, 1.0)]);
    }

    #[test]
    fn range_reads_are_inclusive_and_merge_pending() {
        let (_d, mut f) = feed();
        f.write(&[(T0, Some(1.0)), (T0 + 10, Some(2.0))]);
        f.flush().expect("flush");
        f.write(&[(T0 + 20, Some(3.0))]);
        let got: Vec<u32> = f
            .read_range((T0 + 10) as u32, (T0 + 20) as u32)
            .expect("read")
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(got, vec![(T0 + 10) as u32, (T0 + 20) as u32]);
    }

    /// A file that repeats a time (as an old emoncms could write) is read whole in chunks of
    /// any size: no chunk ends inside the run of one time.
    #[test]
    fn chunks_keep_records_of_a_repeated_time_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let times = [10u32, 20, 20, 20, 30, 40, 40, 50];
        let mut bytes = Vec::new();
        for (i, t) in times.iter().enumerate() {
            encode_record(*t, i as f32, &mut bytes);
        }
        fs::write(file_path(dir.path(), 7), &bytes).expect("write");
        let f = VariableFeed::open(dir.path(), 7).expect("open");
        let whole = f.read_range(0, u32::MAX).expect("read");
        assert_eq!(whole.len(), times.len());
        for max in 1..=times.len() {
            let mut got = Vec::new();
            let mut from = Some(0);
            while let Some(t) = from {
                let (chunk, next) = f.read_chunk(t, u32::MAX, max).expect("chunk");
                got.extend(chunk);
                from = next;
            }
            assert_eq!(got, whole, "chunks of {max}");
        }
    }

    #[test]
    fn trim_and_export() {
        let (_d, mut f) = feed();
        f.write(&[(T0, Some(1.0)), (T0 + 10, Some(2.0)), (T0 + 20, Some(3.0))]);
        assert_eq!(f.export(0).expect("export").len(), 27);
        assert_eq!(f.export(10).expect("export").len(), 18);
        assert_eq!(f.trim((T0 + 5) as u32).expect("trim"), Some(18));
        assert_eq!(all(&f), vec![(10, 2.0), (20, 3.0)]);
        assert_eq!(f.trim((T0 + 50) as u32).expect("trim"), None);
    }

    /// An append cut short leaves part of a record at the end: the whole records before it
    /// read back, and the next append goes over the part.
    #[test]
    fn a_torn_append_is_read_as_whole_records_and_written_over() {
        let (dir, mut f) = feed();
        f.write(&[(T0, Some(1.0)), (T0 + 10, Some(2.0))]);
        f.flush().expect("flush");
        let path = dir.path().join(format!("feed_{}.MYD", f.id()));
        let mut bytes = fs::read(&path).expect("read");
        bytes.extend_from_slice(&[0xF9u8; 5]);
        fs::write(&path, &bytes).expect("write");
        let mut f = VariableFeed::open(dir.path(), f.id()).expect("open");
        assert_eq!(
            fs::metadata(&path).expect("meta").len(),
            23,
            "nothing written on opening"
        );
        assert_eq!(all(&f), vec![(0, 1.0), (10, 2.0)]);
        assert_eq!(f.export(0).expect("export").len(), 18);
        f.write(&[(T0 + 20, Some(3.0))]);
        f.flush().expect("flush");
        assert_eq!(fs::metadata(&path).expect("meta").len(), 27, "written over");
        let f = VariableFeed::open(dir.path(), f.id()).expect("open");
        assert_eq!(all(&f), vec![(0, 1.0), (10, 2.0), (20, 3.0)]);
    }
}
