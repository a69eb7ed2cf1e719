//! Averaged levels of a fixed-interval feed: the sum and count of the non-missing values of
//! every block of [`BLOCK`] slots (level 1), and in memory their running totals from the
//! feed's first block, so that the mean of any range costs its ragged ends plus two totals
//! instead of a scan of every slot. A year of 10 s data averaged into 1,000 points reads, per
//! point, at most half a block of slots at its end (which the next point shares) and one
//! running total: two cache lines where the blocks between would be 98 entries (or the 15 or
//! so of a tree of sums over them, which this replaced: each of its levels was another cache
//! miss per point when many users graph at once). Blocks of 32 slots put an end's half block
//! (64 bytes, from or to a block edge) in one cache line; 64 slots took one or two, and a read
//! of one of 50 users' years in turn took 15% longer (54 against 46 µs, storage alone), its
//! shard 12% more time per request in the server (`benches/README.md`); 16 slots gained
//! nothing more for twice the memory. Only level 1 is saved, and only the totals are kept in
//! memory (a block's cell is the difference of the two around it): 24 bytes a block, 2.4 MB
//! for a year of 10 s data.
//! Ranges shorter than two blocks are scanned. Counts are kept beside sums, so a mean over a range with gaps is
//! the mean of the values present, exactly as a scan gives it (the sums are added in a
//! different order, which can change the last bits of a result).
//!
//! The totals are kept as double-double numbers (a sum and the rounding error of every
//! addition, summed apart), so the difference of two of them, a range's sum, is as exact as
//! summing the range itself, however large the totals before it have grown. A block summed
//! again after a write changes the totals after it, rebuilt from their differences until they
//! agree with the old ones again; where its sum did change, each block after it can take a
//! rounding of the total's error term (far below a block's sum for ordinary data), once per
//! such write while the levels are in memory.
//!
//! A block whose sum is not finite (a value too large for an `f32` is stored as infinity, and
//! a file uploaded or imported may hold one) is left out of the totals and listed apart
//! (`odd`): a difference of totals cannot take an infinity back out, so one such block would
//! otherwise spoil every range after it. A range over such blocks adds their sums to the
//! finite rest, which gives what summing its slots gives (infinite, or NaN for infinities of
//! both signs), and splitting such a block scans both of its sides.
//!
//! # In memory
//!
//! Levels are loaded from their file, or built from the feed's slots (its file and its
//! unflushed writes), on the first averaged read, and then kept: a write inside a complete
//! block marks that block dirty, and each read first recomputes dirty blocks and extends the
//! levels over blocks completed since. Levels nobody read for [`IDLE`] are saved and dropped
//! from memory when the feeds are flushed, so memory holds only the levels of feeds being
//! graphed. All the levels in memory in the process together are held to a budget
//! (`StoreConfig::levels_memory`, counted in [`IN_MEMORY`]): past it, a store saves and drops
//! the levels its reads used longest ago (they load again from their file when next read).
//! Without it, many users graphing long feeds at once (or one request averaging 64 public
//! ten-year feeds, 23.6 MB of levels each) held a fifth of all that data in memory.
//!
//! # On disk (a cache, never the data)
//!
//! ```text
//! phpfina/<id>.levels
//!   header, 48 bytes, little-endian:
//!     magic     8 bytes  "YNNILVL1"
//!     block     u32      slots per level-1 block (32; a file of another size is rebuilt)
//!     reserved  u32      0
//!     dat_len   u64      length of <id>.dat when the levels were saved
//!     dat_mtime i64      its modification time then, nanoseconds since the epoch
//!     blocks    u64      number of level-1 entries that follow
//!     crc       u32      CRC-32 of the entries
//!     reserved  u32      0
//!   entries, 12 bytes each: sum f64, count u32
//! ```
//!
//! The file is written whole (to a temporary name, then renamed; not fsynced, since the checks
//! below catch a file the disk did not fully keep) when the feed is flushed
//! and its levels changed, at most once per [`SAVE_EVERY`], and when the store closes. On
//! opening, it is used only if `<id>.dat` still has the recorded length and modification time
//! and the entries match their CRC; otherwise (a crash after later writes, a file copied back
//! from emoncms, any damage) it is ignored and the levels are rebuilt from `<id>.dat` on the
//! first averaged read. emoncms does not read it, and `ynni export emoncms` does not copy it.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Slots per level-1 block.
pub const BLOCK: u64 = 32;
/// Bytes of levels in memory in this process, as the stores last counted their feeds'.
pub static IN_MEMORY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// The least time between two saves of one feed's levels while it is being written.
pub const SAVE_EVERY: Duration = Duration::from_secs(3600);
/// Levels not read for this long are saved and let go from memory.
pub const IDLE: Duration = Duration::from_secs(600);
/// [`IDLE`] while the process holds more levels than its budget.
pub const IDLE_OVER_BUDGET: Duration = Duration::from_secs(60);

const MAGIC: &[u8; 8] = b"YNNILVL1";
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 12;

/// The sum and count of the values present in a block.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cell {
    pub sum: f64,
    pub count: u64,
}

impl Cell {
    fn add(self, other: Cell) -> Cell {
        Cell {
            sum: self.sum + other.sum,
            count: self.count + other.count,
        }
    }

    /// The part of a block left when `part` of it is taken away.
    fn sub(self, part: Cell) -> Cell {
        Cell {
            sum: self.sum - part.sum,
            count: self.count.saturating_sub(part.count),
        }
    }
}

/// The sum and count of every value in the blocks before one: `hi + lo` is the sum, `lo`
/// collecting the rounding error of each addition to `hi` (Knuth's two-sum). Read at a slot
/// ([`Levels::total_at`]), `lo` also holds the part of the slot's block before it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Total {
    hi: f64,
    lo: f64,
    count: u64,
}

impl Total {
    fn plus(self, c: Cell) -> Total {
        let hi = self.hi + c.sum;
        let back = hi - self.hi;
        let err = (self.hi - (hi - back)) + (c.sum - back);
        Total {
            hi,
            lo: self.lo + err,
            count: self.count + c.count,
        }
    }

    /// The values from `earlier` up to this one.
    pub fn since(self, earlier: Total) -> Cell {
        Cell {
            sum: (self.hi - earlier.hi) + (self.lo - earlier.lo),
            count: self.count.saturating_sub(earlier.count),
        }
    }
}

/// The levels of one feed.
#[derive(Debug, Default)]
pub struct Levels {
    /// `totals[k]`: the blocks before block `k`, without the sums of the blocks in `odd`; one
    /// entry more than there are summed blocks (none before the first). A block's own sum and
    /// count are the difference of the totals around it ([`Levels::cell`]), not kept apart:
    /// that took 16 bytes a block more, two fifths of the memory of graphed feeds' levels.
    totals: Vec<Total>,
    /// The blocks whose sum is not finite, in order, with their sums.
    odd: Vec<(u64, f64)>,
    /// Level-1 blocks written since they were summed.
    dirty: BTreeSet<u64>,
    /// Whether the levels were built (from the slots or the saved file) at all.
    built: bool,
    /// Changed since the last save.
    unsaved: bool,
    last_save: Option<Instant>,
    /// The `.dat` length and time the levels' file was written or read with.
    file_stamp: Option<(u64, i64)>,
    last_used: Option<Instant>,
}

/// The `.levels` file of feed `id` in `dir`.
pub fn levels_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id}.levels"))
}

/// `<id>.dat`'s length and modification time (ns), as recorded in the levels file.
fn dat_stamp(dat: &Path) -> Option<(u64, i64)> {
    let m = fs::metadata(dat).ok()?;
    let mtime = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((m.len(), i64::try_from(mtime.as_nanos()).ok()?))
}

impl Levels {
    /// Levels read from `path` if they still describe `dat` (see the module docs); empty,
    /// to be built on first use, otherwise.
    pub fn load(path: &Path, dat: &Path) -> Levels {
        Self::read(path, dat).unwrap_or_default()
    }

    fn read(path: &Path, dat: &Path) -> Option<Levels> {
        let bytes = fs::read(path).ok()?;
        let header = bytes.get(..HEADER_LEN)?;
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
        let u64_at =
            |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        if &header[..8] != MAGIC || u64::from(u32_at(8)) != BLOCK {
            return None;
        }
        let (len, mtime) = dat_stamp(dat)?;
        if u64_at(16) != len || u64_at(24) as i64 != mtime {
            return None;
        }
        let blocks = usize::try_from(u64_at(32)).ok()?;
        let entries =
            bytes.get(HEADER_LEN..HEADER_LEN.checked_add(blocks.checked_mul(ENTRY_LEN)?)?)?;
        if crc32fast::hash(entries) != u32_at(40) || (blocks as u64) * BLOCK * 4 > len {
            return None;
        }
        let mut levels = Levels {
            built: true,
            file_stamp: Some((len, mtime)),
            ..Levels::default()
        };
        levels.totals.reserve(blocks + 1);
        for e in entries.chunks_exact(ENTRY_LEN) {
            levels.push_block(Cell {
                sum: f64::from_le_bytes(e[..8].try_into().unwrap_or([0; 8])),
                count: u64::from(u32::from_le_bytes(e[8..12].try_into().unwrap_or([0; 4]))),
            });
        }
        Some(levels)
    }

    /// Writes the levels to `path`, recording `dat`'s current length and time.
    pub fn save(&mut self, path: &Path, dat: &Path) -> std::io::Result<()> {
        let Some((len, mtime)) = dat_stamp(dat) else {
            return Ok(());
        };
        let blocks = self.blocks_len();
        let mut entries = Vec::with_capacity(blocks * ENTRY_LEN);
        for c in (0..blocks).map(|k| self.cell(k)) {
            entries.extend_from_slice(&c.sum.to_le_bytes());
            // A block holds at most BLOCK values.
            entries.extend_from_slice(&(c.count as u32).to_le_bytes());
        }
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(BLOCK as u32).to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(&mtime.to_le_bytes());
        header.extend_from_slice(&(blocks as u64).to_le_bytes());
        header.extend_from_slice(&crc32fast::hash(&entries).to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        // No fsync: a file the disk did not fully keep fails its CRC or its stamp and is
        // rebuilt, and a store closing with many feeds must not wait on a sync for each.
        let tmp = path.with_extension("levels.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&header)?;
        f.write_all(&entries)?;
        drop(f);
        fs::rename(&tmp, path)?;
        self.unsaved = false;
        self.last_save = Some(Instant::now());
        self.file_stamp = Some((len, mtime));
        Ok(())
    }

    /// Saves the levels unless their file already holds them: unchanged since it was read or
    /// written, and `dat` unchanged too. Writing them again would only take each block's sum
    /// back from the totals once more.
    pub fn save_if_stale(&mut self, path: &Path, dat: &Path) -> std::io::Result<()> {
        if !self.unsaved && self.file_stamp.is_some() && self.file_stamp == dat_stamp(dat) {
            return Ok(());
        }
        self.save(path, dat)
    }

    /// The levels' file no longer describes the feed (it is being removed): the levels are
    /// saved again when next due.
    pub fn forget_file(&mut self) {
        self.file_stamp = None;
        if self.built {
            self.unsaved = true;
        }
    }

    /// Whether a flush should save the levels now.
    pub fn save_due(&self, closing: bool) -> bool {
        self.built
            && self.unsaved
            && self.dirty.is_empty()
            && (closing || self.last_save.is_none_or(|t| t.elapsed() >= SAVE_EVERY))
    }

    /// Whether the levels are in memory (built or loaded).
    pub fn is_built(&self) -> bool {
        self.built
    }

    /// A read used the levels now.
    pub fn used(&mut self) {
        self.last_used = Some(Instant::now());
    }

    /// When a read last used the levels.
    pub fn last_used(&self) -> Option<Instant> {
        self.last_used
    }

    /// Bytes of memory the levels hold (their totals, mostly: 24 a block).
    pub fn memory(&self) -> usize {
        self.totals.capacity() * std::mem::size_of::<Total>()
            + self.odd.capacity() * std::mem::size_of::<(u64, f64)>()
            + self.dirty.len() * 2 * std::mem::size_of::<u64>()
    }

    /// Whether nothing has read the levels for `idle`.
    pub fn idle(&self, idle: Duration) -> bool {
        self.last_used.is_none_or(|t| t.elapsed() >= idle)
    }

    /// Forgets everything (the feed's slots moved or vanished: clear, trim, delete).
    pub fn reset(&mut self) {
        *self = Levels::default();
    }

    /// Slot `pos` was written.
    pub fn touch(&mut self, pos: u64) {
        let block = pos / BLOCK;
        if self.built && block < self.blocks_len() as u64 {
            self.dirty.insert(block);
        }
    }

    /// Brings the levels up to date with a feed of `npoints` slots whose sums `slots(from, to)`
    /// gives; returns how many blocks were summed. The sums are all read before the totals
    /// change, so a failed read leaves them (and the blocks marked written) as they were.
    pub fn refresh<E>(
        &mut self,
        npoints: u64,
        slots: impl Fn(u64, u64) -> Result<Cell, E>,
    ) -> Result<u64, E> {
        let complete = npoints / BLOCK;
        if (self.blocks_len() as u64) > complete {
            // Fewer slots than the levels describe: they belong to other data.
            self.reset();
        }
        self.built = true;
        let have = self.blocks_len() as u64;
        let mut resummed = Vec::new();
        for &block in self.dirty.range(..have) {
            resummed.push((block, slots(block * BLOCK, (block + 1) * BLOCK)?));
        }
        let mut added = Vec::with_capacity(complete.saturating_sub(have) as usize);
        for block in have..complete {
            added.push(slots(block * BLOCK, (block + 1) * BLOCK)?);
        }
        self.dirty.clear();
        let summed = (resummed.len() + added.len()) as u64;
        self.resum(&resummed);
        // One more for the zero total a first block is summed onto.
        self.totals
            .reserve(added.len() + usize::from(self.totals.is_empty()));
        for c in added {
            self.push_block(c);
        }
        if summed > 0 {
            self.unsaved = true;
        }
        Ok(summed)
    }

    /// How many level-1 blocks are summed.
    fn blocks_len(&self) -> usize {
        self.totals.len().saturating_sub(1)
    }

    /// The sum and count of summed block `k`.
    fn cell(&self, k: usize) -> Cell {
        let mut c = self.totals[k + 1].since(self.totals[k]);
        if let Ok(i) = self.odd.binary_search_by_key(&(k as u64), |&(b, _)| b) {
            // Left out of the totals (a zero there).
            c.sum = self.odd[i].1;
        }
        c
    }

    /// Sums the next block, `c`, into the totals.
    fn push_block(&mut self, c: Cell) {
        if self.totals.is_empty() {
            self.totals.push(Total::default());
        }
        let k = self.blocks_len();
        let t = self.totals[k].plus(self.finite_part(k, c));
        self.totals.push(t);
    }

    /// `c`, block `k`'s cell, as the totals take it: a sum that is not finite is listed in
    /// `odd` (which must hold no later block) and counts as zero.
    fn finite_part(&mut self, k: usize, c: Cell) -> Cell {
        if c.sum.is_finite() {
            return c;
        }
        self.odd.push((k as u64, c.sum));
        Cell {
            sum: 0.0,
            count: c.count,
        }
    }

    /// Takes new cells for some summed blocks (`(block, cell)`, ascending) and carries the
    /// change through every total after the first of them; the other blocks keep the cells
    /// their totals give.
    fn resum(&mut self, resummed: &[(u64, Cell)]) {
        let Some(&(first, _)) = resummed.first() else {
            return;
        };
        debug_assert!(
            resummed.windows(2).all(|w| w[0].0 < w[1].0)
                && resummed
                    .last()
                    .is_none_or(|&(b, _)| (b as usize) < self.blocks_len())
        );
        let first = first as usize;
        let at = self.odd.partition_point(|&(k, _)| (k as usize) < first);
        let mut old_odd = self.odd.split_off(at).into_iter().peekable();
        let mut new = resummed.iter().peekable();
        // The old total before block k; the one before the first block changed stays.
        let mut before = self.totals[first];
        for k in first..self.blocks_len() {
            if new.peek().is_none() && self.totals[k] == before {
                // Past the last block summed again, and the totals agree again (its sum did
                // not change: a device sending the same values again): the old totals from
                // here on stand, and the rest of a long feed need not be walked.
                self.odd.extend(old_odd);
                return;
            }
            let after = self.totals[k + 1];
            let mut cell = after.since(before);
            before = after;
            if let Some((_, sum)) = old_odd.next_if(|&(b, _)| b as usize == k) {
                cell.sum = sum;
            }
            if let Some(&(_, c)) = new.next_if(|&&(b, _)| b as usize == k) {
                cell = c;
            }
            let part = self.finite_part(k, cell);
            self.totals[k + 1] = self.totals[k].plus(part);
        }
    }

    /// Whether every block's sum is finite, so that the totals alone give any range's sum
    /// ([`Levels::total_at`]).
    pub fn all_finite(&self) -> bool {
        self.odd.is_empty()
    }

    /// The running total of the slots before slot `x`: the totals at a block's edge, plus or
    /// minus the slots between `x` and the nearer edge of its block, which `side(a, b)` sums
    /// (slots `[a, b)`, half a block at most). `None` where the levels do not cover that edge
    /// yet or `side` cannot read the slots. Meaningful only when [`Levels::all_finite`]; the
    /// difference of two is the range between them ([`Total::since`]), from one total each
    /// instead of the [`Levels::sum`] of a range, which also reads its ends' block sums.
    #[inline]
    pub fn total_at(&self, x: u64, side: impl Fn(u64, u64) -> Option<Cell>) -> Option<Total> {
        let k = x / BLOCK;
        let start = k * BLOCK;
        if x - start <= BLOCK / 2 {
            let t = *self.totals.get(k as usize)?;
            if x == start {
                return Some(t);
            }
            let before = side(start, x)?;
            Some(Total {
                lo: t.lo + before.sum,
                count: t.count + before.count,
                ..t
            })
        } else {
            // Block k must be summed, not only started: `totals[k + 1]` exists only then.
            let t = *self.totals.get(k as usize + 1)?;
            let after = side(x, start + BLOCK)?;
            Some(Total {
                lo: t.lo - after.sum,
                count: t.count.saturating_sub(after.count),
                ..t
            })
        }
    }

    /// The sum of level-1 blocks `[a, b)`.
    #[inline]
    fn blocks(&self, a: u64, b: u64) -> Cell {
        let cell = self.totals[b as usize].since(self.totals[a as usize]);
        if self.odd.is_empty() {
            cell
        } else {
            self.with_odd(cell, a, b)
        }
    }

    /// `cell`, the finite sum of blocks `[a, b)`, with the sums of the odd blocks among them.
    #[cold]
    #[inline(never)]
    fn with_odd(&self, mut cell: Cell, a: u64, b: u64) -> Cell {
        let first = self.odd.partition_point(|&(k, _)| k < a);
        for &(_, sum) in self.odd[first..].iter().take_while(|&&(k, _)| k < b) {
            cell.sum += sum;
        }
        cell
    }

    /// Sum and count over slots `[from, to)`, from the levels where they cover it and from
    /// `slots` for the rest. Call [`Levels::refresh`] first.
    pub fn sum<E>(
        &self,
        from: u64,
        to: u64,
        slots: impl Fn(u64, u64) -> Result<Cell, E>,
    ) -> Result<Cell, E> {
        self.sum_sharing(from, to, &slots, &mut None)
    }

    /// As [`Levels::sum`] for consecutive ranges: where one range ends inside a block and the
    /// next starts there, the block is split once for both (`split` keeps the last split).
    /// A split scans the shorter side of the block and takes the other from the block's
    /// entry, so a boundary costs at most half a block of slots.
    pub fn sum_sharing<E>(
        &self,
        from: u64,
        to: u64,
        slots: &impl Fn(u64, u64) -> Result<Cell, E>,
        split: &mut Option<Split>,
    ) -> Result<Cell, E> {
        if to <= from {
            return Ok(Cell::default());
        }
        let covered = self.blocks_len() as u64;
        let b_from = from.div_ceil(BLOCK);
        let b_to = (to / BLOCK).min(covered);
        if b_from >= b_to {
            return slots(from, to);
        }
        // `from` is inside block b_from - 1, which is covered since b_from <= covered.
        let mut total = if from.is_multiple_of(BLOCK) {
            Cell::default()
        } else {
            self.split_at(from, slots, split)?.after
        };
        total = total.add(self.blocks(b_from, b_to));
        let tail = if to.is_multiple_of(BLOCK) && to / BLOCK <= covered {
            Cell::default()
        } else if to / BLOCK < covered {
            self.split_at(to, slots, split)?.before
        } else {
            slots(b_to * BLOCK, to)?
        };
        Ok(total.add(tail))
    }

    /// Hints the memory that [`Levels::total_at`] reads at slot `x`: the running total at the
    /// nearer edge of its block, and the slots between in `dat` (the feed's flushed file, 4
    /// bytes a slot; one cache line, as a half block is 64 bytes from or to a block edge).
    pub fn prefetch_split(&self, x: u64, dat: &[u8]) {
        let k = x / BLOCK;
        let start = k * BLOCK;
        let (edge, side) = if x - start <= BLOCK / 2 {
            (k, start..x)
        } else {
            (k + 1, x..start + BLOCK)
        };
        if let Some(total) = self.totals.get(edge as usize) {
            // 24 bytes: a quarter of them cross into the next cache line, which its last
            // field then starts or ends in.
            crate::prefetch::value(&total.hi);
            crate::prefetch::value(&total.count);
        }
        if let Some(side) = dat.get(side.start as usize * 4..side.end as usize * 4) {
            crate::prefetch::slice(side);
        }
    }

    /// The block holding slot `x` (covered, `x` not on its start) split at `x`.
    fn split_at<E>(
        &self,
        x: u64,
        slots: &impl Fn(u64, u64) -> Result<Cell, E>,
        split: &mut Option<Split>,
    ) -> Result<Split, E> {
        if let Some(s) = split.filter(|s| s.at == x) {
            return Ok(s);
        }
        let start = x / BLOCK * BLOCK;
        // From the totals, which the range's middle reads anyway: one cache line less.
        let block = self.blocks(x / BLOCK, x / BLOCK + 1);
        let s = if !block.sum.is_finite() {
            // Taking one side from the other cannot undo an infinity: both are scanned.
            Split {
                at: x,
                before: slots(start, x)?,
                after: slots(x, start + BLOCK)?,
            }
        } else if x - start <= BLOCK / 2 {
            let before = slots(start, x)?;
            Split {
                at: x,
                before,
                after: block.sub(before),
            }
        } else {
            let after = slots(x, start + BLOCK)?;
            Split {
                at: x,
                before: block.sub(after),
                after,
            }
        };
        *split = Some(s);
        Ok(s)
    }
}

/// A level-1 block split at slot `at`: the cells of its slots before and from `at`.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    at: u64,
    before: Cell,
    after: Cell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain(values: &[f32], from: u64, to: u64) -> Cell {
        let to = to.min(values.len() as u64);
        if from >= to {
            return Cell::default();
        }
        values[from as usize..to as usize]
            .iter()
            .filter(|v| !v.is_nan())
            .fold(Cell::default(), |acc, v| {
                acc.add(Cell {
                    sum: f64::from(*v),
                    count: 1,
                })
            })
    }

    fn built(values: &[f32]) -> Levels {
        let mut l = Levels::default();
        let slots = |a, b| Ok::<_, ()>(plain(values, a, b));
        l.refresh(values.len() as u64, slots).unwrap();
        l
    }

    /// Values with gaps: runs of NaN among values from -1000 to 1000.
    fn series() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(
            prop_oneof![3 => -1000f32..1000f32, 1 => Just(f32::NAN)],
            0..20_000,
        )
    }

    /// Long ranges far from the start (running totals far larger than the range's sum), with
    /// gaps, and a write deep inside that every later total must take in.
    #[test]
    fn long_ranges_sum_as_a_scan_does() {
        let mut values: Vec<f32> = (0..300_000u32)
            .map(|i| {
                if i % 1_001 < 7 {
                    f32::NAN
                } else {
                    (i % 977) as f32 - 400.0
                }
            })
            .collect();
        let mut l = built(&values);
        assert_eq!(l.blocks_len(), 300_000 / BLOCK as usize);
        let check = |l: &Levels, values: &[f32]| {
            for (from, to) in [(0, 300_000), (13, 299_999), (40_001, 250_017), (65, 32_833)] {
                let got = l
                    .sum(from, to, |x, y| Ok::<_, ()>(plain(values, x, y)))
                    .unwrap();
                let want = plain(values, from, to);
                assert_eq!(got.count, want.count, "[{from}, {to})");
                assert!((got.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0));
            }
        };
        check(&l, &values);
        values[123_456] = 1e6;
        l.touch(123_456);
        l.refresh(values.len() as u64, |a, b| {
            Ok::<_, ()>(plain(&values, a, b))
        })
        .unwrap();
        check(&l, &values);
    }

    /// Small values after a long run of large ones: the running totals reach 10^14 while the
    /// ranges sum to about 1, which single f64 totals would get wrong by whole units.
    /// Blocks written again with the same values leave every later total exactly as it was,
    /// small sums after huge totals included: many such writes never move a range's sum.
    #[test]
    fn rewriting_a_block_unchanged_leaves_the_later_totals_exact() {
        let values: Vec<f32> = (0..100_000u32)
            .map(|i| {
                if i < 50_000 {
                    5e8 + (i % 13) as f32
                } else {
                    ((i % 7) as f32 - 3.0) * 1e-3 + 1e-4 * (i % 11) as f32
                }
            })
            .collect();
        let mut l = built(&values);
        let before = l.totals.clone();
        let slots = |a, b| Ok::<_, ()>(plain(&values, a, b));
        for round in 0..200u64 {
            l.touch(round * 97 % 50_000);
            l.refresh(values.len() as u64, slots).unwrap();
        }
        assert!(l.totals == before, "the totals moved");
    }

    /// A refresh whose read fails changes nothing: the written blocks stay marked and the
    /// totals stay, so the next refresh does the work.
    #[test]
    fn a_failed_refresh_leaves_the_levels_as_they_were() {
        let mut values: Vec<f32> = (0..1_000).map(|i| i as f32).collect();
        let mut l = built(&values);
        let before = l.totals.clone();
        values[100] = -5.0;
        l.touch(100);
        values.extend((0..100).map(|i| i as f32));
        let calls = std::cell::Cell::new(0);
        let failing = |a, b| {
            calls.set(calls.get() + 1);
            if calls.get() > 1 {
                Err(())
            } else {
                Ok(plain(&values, a, b))
            }
        };
        assert!(l.refresh(values.len() as u64, failing).is_err());
        assert!(l.totals == before);
        assert!(l.dirty.contains(&(100 / BLOCK)));
        l.refresh(values.len() as u64, |a, b| {
            Ok::<_, ()>(plain(&values, a, b))
        })
        .unwrap();
        let n = values.len() as u64;
        let got = l
            .sum(0, n, |a, b| Ok::<_, ()>(plain(&values, a, b)))
            .unwrap();
        assert_eq!(got, plain(&values, 0, n));
    }

    #[test]
    fn small_sums_after_huge_totals_stay_exact() {
        let values: Vec<f32> = (0..400_000u32)
            .map(|i| {
                if i < 200_000 {
                    5e8 + (i % 13) as f32
                } else {
                    ((i % 7) as f32 - 3.0) * 1e-3
                }
            })
            .collect();
        let l = built(&values);
        let slots = |x, y| Ok::<_, ()>(plain(&values, x, y));
        let mut split = None;
        let mut a = 200_003;
        while a + 3_011 < 400_000 {
            let b = a + 3_011;
            let got = l.sum_sharing(a, b, &slots, &mut split).unwrap();
            let want = plain(&values, a, b);
            assert_eq!(got.count, want.count);
            assert!(
                (got.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0),
                "[{a}, {b}): {} vs {}",
                got.sum,
                want.sum
            );
            a = b;
        }
    }

    /// Values with gaps and now and then an infinity of either sign.
    fn series_with_infinities() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(
            prop_oneof![
                300 => -1000f32..1000f32,
                100 => Just(f32::NAN),
                1 => Just(f32::INFINITY),
                1 => Just(f32::NEG_INFINITY),
            ],
            0..20_000,
        )
    }

    /// The same sum as a scan's, up to rounding; a sum that is not finite must be the same
    /// infinity, or NaN for both.
    fn same_sum(got: f64, want: f64) -> bool {
        if want.is_finite() {
            (got - want).abs() <= 1e-9 * want.abs().max(1.0)
        } else {
            got == want || (got.is_nan() && want.is_nan())
        }
    }

    #[test]
    fn an_infinity_spoils_only_the_ranges_that_hold_it() {
        let mut values: Vec<f32> = (0..100_000u32).map(|i| (i % 101) as f32).collect();
        values[50_010] = f32::INFINITY;
        let mut l = built(&values);
        let slots = |v: &[f32], x, y| Ok::<_, ()>(plain(v, x, y));
        for (from, to) in [
            (0, 50_000),
            (50_100, 100_000),
            (60_000, 99_990),
            (0, 100_000),
            (50_005, 50_500),
            (50_011, 70_000),
        ] {
            let got = l.sum(from, to, |x, y| slots(&values, x, y)).unwrap();
            let want = plain(&values, from, to);
            assert_eq!(got.count, want.count, "[{from}, {to})");
            assert!(
                same_sum(got.sum, want.sum),
                "[{from}, {to}): {} vs {}",
                got.sum,
                want.sum
            );
        }
        values[70_001] = f32::NEG_INFINITY;
        l.touch(70_001);
        l.refresh(values.len() as u64, |x, y| slots(&values, x, y))
            .unwrap();
        assert!(
            l.sum(0, 100_000, |x, y| slots(&values, x, y))
                .unwrap()
                .sum
                .is_nan()
        );
        assert!(
            l.sum(80_000, 100_000, |x, y| slots(&values, x, y))
                .unwrap()
                .sum
                .is_finite()
        );
        // Written over, the infinities leave nothing behind.
        values[50_010] = 1.0;
        values[70_001] = 2.0;
        l.touch(50_010);
        l.touch(70_001);
        l.refresh(values.len() as u64, |x, y| slots(&values, x, y))
            .unwrap();
        let got = l.sum(3, 99_999, |x, y| slots(&values, x, y)).unwrap();
        assert!(
            same_sum(got.sum, plain(&values, 3, 99_999).sum),
            "{}",
            got.sum
        );
    }

    /// Ranges of `width` one after another from `start`, each sharing its ends' splits with
    /// the next, against a scan (infinities included).
    fn consecutive_ranges_sum_as_a_scan_does(
        l: &Levels,
        values: &[f32],
        start: u64,
        width: u64,
    ) -> Result<(), TestCaseError> {
        let slots = |x, y| Ok::<_, ()>(plain(values, x, y));
        let mut split = None;
        let mut a = start;
        while a < values.len() as u64 {
            let b = a + width;
            let got = l.sum_sharing(a, b, &slots, &mut split).unwrap();
            let want = plain(values, a, b);
            prop_assert_eq!(got.count, want.count);
            prop_assert!(
                same_sum(got.sum, want.sum),
                "[{}, {}): {} vs {}",
                a,
                b,
                got.sum,
                want.sum
            );
            a = b;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_config(64))]

        #[test]
        fn ranges_over_infinities_sum_as_a_scan_does(values in series_with_infinities(), start in 0u64..5_000, width in 1u64..4_000) {
            let l = built(&values);
            consecutive_ranges_sum_as_a_scan_does(&l, &values, start, width)?;
        }

        #[test]
        fn any_range_sums_as_a_scan_does(values in series(), a in 0u64..21_000, len in 0u64..21_000) {
            let l = built(&values);
            let (from, to) = (a, a.saturating_add(len));
            let got = l.sum(from, to, |x, y| Ok::<_, ()>(plain(&values, x, y))).unwrap();
            let want = plain(&values, from, to);
            prop_assert_eq!(got.count, want.count);
            prop_assert!((got.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0),
                "{} vs {}", got.sum, want.sum);
        }

        /// The difference of two running totals read at slots is the range between them, and
        /// a total is there wherever the levels cover the nearer edge of its slot's block: at
        /// any slot up to the end, but only in the first half of an unfinished last block, and
        /// nowhere before a first block is complete (the levels are empty).
        #[test]
        fn totals_at_two_slots_give_the_range_between(values in series(), a in 0u64..21_000, len in 0u64..21_000) {
            let l = built(&values);
            let n = values.len() as u64;
            let side = |x, y| Some(plain(&values, x, y));
            let covered = |x: u64| n >= BLOCK && (x % BLOCK <= BLOCK / 2 || x / BLOCK < n / BLOCK);
            let (from, to) = (a.min(n), a.saturating_add(len).min(n));
            let (ta, tb) = (l.total_at(from, side), l.total_at(to, side));
            prop_assert_eq!(ta.is_some(), covered(from), "at {} of {}", from, n);
            prop_assert_eq!(tb.is_some(), covered(to), "at {} of {}", to, n);
            if let (Some(ta), Some(tb)) = (ta, tb) {
                let got = tb.since(ta);
                let want = plain(&values, from, to);
                prop_assert_eq!(got.count, want.count);
                prop_assert!((got.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0),
                    "[{}, {}): {} vs {}", from, to, got.sum, want.sum);
            }
        }

        #[test]
        fn consecutive_ranges_sharing_their_ends_sum_as_a_scan_does(values in series(), start in 0u64..5_000, width in 1u64..4_000) {
            let l = built(&values);
            let slots = |x, y| Ok::<_, ()>(plain(&values, x, y));
            let mut split = None;
            let mut a = start;
            while a < values.len() as u64 {
                let b = a + width;
                let got = l.sum_sharing(a, b, &slots, &mut split).unwrap();
                let want = plain(&values, a, b);
                prop_assert_eq!(got.count, want.count);
                prop_assert!((got.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0),
                    "[{}, {}): {} vs {}", a, b, got.sum, want.sum);
                a = b;
            }
        }

        /// Blocks written after the levels were built are summed again, and every later total
        /// carries the change, blocks with infinite sums included, before and after the write.
        #[test]
        fn writes_among_infinities_are_seen(mut values in series_with_infinities(), writes in prop::collection::vec((0usize..6_000, prop_oneof![3 => -5f32..5f32, 1 => Just(f32::INFINITY), 1 => Just(f32::NAN)]), 1..20), start in 0u64..3_000, width in 1u64..3_000) {
            let mut l = built(&values);
            for (pos, v) in writes {
                if pos < values.len() {
                    values[pos] = v;
                    l.touch(pos as u64);
                }
            }
            l.refresh(values.len() as u64, |a, b| Ok::<_, ()>(plain(&values, a, b))).unwrap();
            consecutive_ranges_sum_as_a_scan_does(&l, &values, start, width)?;
        }

        #[test]
        fn writes_after_building_are_seen(mut values in series(), writes in prop::collection::vec((0usize..20_000, -5f32..5f32), 0..50), extra in 0usize..300) {
            let mut l = built(&values);
            for (pos, v) in writes {
                if pos < values.len() {
                    values[pos] = v;
                    l.touch(pos as u64);
                }
            }
            values.extend(std::iter::repeat_n(1.5f32, extra));
            l.refresh(values.len() as u64, |a, b| Ok::<_, ()>(plain(&values, a, b))).unwrap();
            let n = values.len() as u64;
            let got = l.sum(0, n, |x, y| Ok::<_, ()>(plain(&values, x, y))).unwrap();
            let want = plain(&values, 0, n);
            prop_assert_eq!(got.count, want.count);
            prop_assert!((got.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0));
        }
    }

    #[test]
    fn saved_levels_are_used_only_while_the_data_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let dat = dir.path().join("1.dat");
        let path = levels_path(dir.path(), 1);
        let values: Vec<f32> = (0..10_000).map(|i| (i % 97) as f32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        fs::write(&dat, &bytes).unwrap();
        let mut l = built(&values);
        l.save(&path, &dat).unwrap();
        let loaded = Levels::load(&path, &dat);
        assert!(loaded.built);
        assert_eq!(loaded.blocks_len(), l.blocks_len());
        assert!((0..l.blocks_len()).all(|k| loaded.cell(k) == l.cell(k)));
        // Loaded and unchanged: its file already holds it and is not written again; once a
        // block is summed again, it is.
        let mut again = Levels::load(&path, &dat);
        fs::remove_file(&path).unwrap();
        again.save_if_stale(&path, &dat).unwrap();
        assert!(!path.exists());
        again.touch(5);
        again
            .refresh(values.len() as u64, |a, b| {
                Ok::<_, ()>(plain(&values, a, b))
            })
            .unwrap();
        again.save_if_stale(&path, &dat).unwrap();
        assert!(path.exists());
        assert_eq!(loaded.totals, l.totals);
        // Another program changes the data file: the saved levels no longer count.
        std::thread::sleep(Duration::from_millis(20));
        fs::write(&dat, &bytes[..bytes.len() - 4]).unwrap();
        assert!(!Levels::load(&path, &dat).built);
        // A damaged levels file does not count either.
        let mut l = built(&values[..9_999]);
        l.save(&path, &dat).unwrap();
        let mut saved = fs::read(&path).unwrap();
        saved[HEADER_LEN + 3] ^= 1;
        fs::write(&path, saved).unwrap();
        assert!(!Levels::load(&path, &dat).built);
    }
}
