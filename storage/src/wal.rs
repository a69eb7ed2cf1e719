//! The write-ahead log of one shard.
//!
//! # Durability contract
//!
//! A record is durable when [`Ticket::wait`] (or [`Ticket::wait_async`]) returns `Ok`: its
//! bytes have been written and `fdatasync`ed. Nothing may be acknowledged to a client before
//! that. Records submitted close together share one `fdatasync` (group commit): the writer
//! thread takes every record waiting, plus whatever arrives within `commit_window` (default 0:
//! no wait), and writes and syncs them at once; records that arrive while a sync runs form the
//! next group. A producer that submits several records before waiting for any (a shard worker
//! logging a group of submissions) marks them with [`Wal::begin_group`] and [`Wal::end_group`]:
//! the writer then takes the whole group into one sync instead of starting on its first record,
//! and waits for nothing else. Deciding whether to wait for more work is the producer's
//! business: only it can see whether more is coming (measured in `benches/storage.rs` and
//! `benches/e2e.sh`).
//!
//! # On-disk format
//!
//! ```text
//! wal/<shard>/<first lsn, 20 digits>.wal   segment files, in LSN order
//!   header   8 bytes   "YNNIWAL1"
//!   record   u32 LE payload length
//!            u64 LE lsn (consecutive across segments)
//!            u32 LE CRC-32 of the lsn bytes followed by the payload
//!            payload
//! ```
//!
//! A new segment starts once the current one passes `segment_bytes`. On open, every segment
//! is checked; a record that is cut short or fails its checksum at the end of the **last**
//! segment is a torn write from a crash and is cut off with a warning. The same damage in an
//! earlier segment, among the records before the next segment's first, means acknowledged
//! records were lost and is reported as an error. Damage in the last segment with whole
//! records after it is not a torn write (a crash tears only the last group, and a group's
//! later records reach the disk before its earlier ones only rarely): the segment is copied
//! aside as `<first lsn>.wal.damaged-<unix time>` before it is cut, and the records that
//! cannot be replayed are reported as an error, so that nothing acknowledged is destroyed
//! unseen while the shard still starts.
//! [`Wal::trim`] deletes whole segments whose records are all older than a checkpoint, so a
//! log whose first segment starts after the checkpoint's position, or with records missing
//! between two segments, has lost acknowledged records: [`Wal::open`] says so with an error.
//!
//! A segment's records end where the next segment begins. A writer only ever starts a segment
//! at the end of the log as it found it, so anything an earlier segment holds beyond that
//! point, whole or torn, was added by a writer that no longer owned the log (in a cluster, a
//! node paused past its lease while the next owner opened the log): it is ignored by
//! [`Wal::open`] and [`Wal::replay`], never taken for damage.
//!
//! # Write failures
//!
//! A group whose write or sync fails (a full disk, an I/O error) is answered with
//! [`StorageError::WalIo`] for each of its records, and the segment is cut back to the length
//! it had after the last successful sync: everything before that was synced by earlier
//! groups, so the log holds exactly the acknowledged records, and later records follow them
//! (rather than a half-written group that would hide them from a replay). The next group may
//! then succeed, e.g. once space is freed. Only if the cut itself fails does the writer refuse
//! every later record ([`StorageError::StoreFailed`]) until a restart, whose open cuts the torn
//! tail (a whole record of the failed group may then survive it: the client, told to retry,
//! may deliver it twice).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::atomic_file::sync_dir;
use crate::error::{Result, StorageError, io_err};

/// A log sequence number: records are numbered 0, 1, 2, … for the life of the shard.
pub type Lsn = u64;

const MAGIC: &[u8; 8] = b"YNNIWAL1";
const HEADER: usize = 4 + 8 + 4;
/// Larger payloads are refused (and a larger length on disk is damage, not a record).
pub const MAX_RECORD: usize = 64 << 20;

#[derive(Debug, Clone, Copy)]
pub struct WalConfig {
    /// How long the writer waits for more records before syncing a group.
    pub commit_window: Duration,
    /// Segment size after which a new file is started.
    pub segment_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            commit_window: Duration::ZERO,
            segment_bytes: 64 << 20,
        }
    }
}

enum Request {
    Append(Vec<u8>, tokio::sync::oneshot::Sender<Result<Lsn>>),
    Trim(Lsn, tokio::sync::oneshot::Sender<Result<()>>),
    Guard(Guard),
    /// The records that follow, up to `GroupEnd`, are one producer's group.
    GroupBegin,
    GroupEnd,
}

/// How long the writer waits for the end of a group it was told of before syncing what it
/// has (a producer that failed half-way must not hold the records before it forever).
const GROUP_WAIT: Duration = Duration::from_millis(250);

/// Whether the log's owner may still write (a cluster node's lease on the shard); asked by the
/// writer thread right before each write and each trim, so nothing reaches the file once it
/// says no ([`StorageError::Fenced`]).
pub type Guard = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// The appending side of a shard's log; one writer thread does all file work.
pub struct Wal {
    dir: PathBuf,
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    next_lsn: Lsn,
}

/// A submitted record; wait on it before acknowledging.
pub struct Ticket(tokio::sync::oneshot::Receiver<Result<Lsn>>);

impl Ticket {
    /// Blocks until the record is durable. Must not be called from async code.
    pub fn wait(self) -> Result<Lsn> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(StorageError::WalClosed))
    }

    /// Resolves when the record is durable.
    pub async fn wait_async(self) -> Result<Lsn> {
        self.0.await.unwrap_or(Err(StorageError::WalClosed))
    }
}

struct Segment {
    first_lsn: Lsn,
    path: PathBuf,
}

fn segment_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let entry = entry.map_err(io_err("listing", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(first_lsn) = stem.parse::<u64>() {
            segs.push(Segment {
                first_lsn,
                path: entry.path(),
            });
        }
    }
    segs.sort_by_key(|s| s.first_lsn);
    Ok(segs)
}

/// The LSN at which segment `i`'s records end: where the next segment begins (none after the
/// last). A writer starts a segment only at the end of the log it has, so records an earlier
/// segment holds from there on were appended by a writer that had lost the log to another (in
/// a cluster, an owner paused past its lease): never acknowledged, and not part of the log.
fn segment_limit(segs: &[Segment], i: usize) -> Lsn {
    segs.get(i + 1).map_or(Lsn::MAX, |next| next.first_lsn)
}

/// The records of one segment, and the byte length of its valid prefix.
struct Scan {
    records: Vec<(Lsn, Vec<u8>)>,
    valid_len: u64,
    damage: Option<String>,
}

fn scan(bytes: &[u8], first_lsn: Lsn) -> Scan {
    let mut records = Vec::new();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Scan {
            records,
            valid_len: 0,
            damage: Some("bad segment header".into()),
        };
    }
    let mut off = MAGIC.len();
    let mut expect = first_lsn;
    let damage = loop {
        if off == bytes.len() {
            break None;
        }
        if bytes.len() - off < HEADER {
            break Some(format!("record header cut short at byte {off}"));
        }
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap_or_default()) as usize;
        let lsn = u64::from_le_bytes(bytes[off + 4..off + 12].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(bytes[off + 12..off + 16].try_into().unwrap_or_default());
        if len > MAX_RECORD || bytes.len() - off - HEADER < len {
            break Some(format!("record at byte {off} cut short"));
        }
        let payload = &bytes[off + HEADER..off + HEADER + len];
        let mut h = crc32fast::Hasher::new();
        h.update(&bytes[off + 4..off + 12]);
        h.update(payload);
        if h.finalize() != crc {
            break Some(format!("checksum mismatch at byte {off}"));
        }
        if lsn != expect {
            break Some(format!("lsn {lsn} at byte {off}, expected {expect}"));
        }
        records.push((lsn, payload.to_vec()));
        expect += 1;
        off += HEADER + len;
    };
    Scan {
        records,
        valid_len: off as u64,
        damage,
    }
}

/// The whole records after the damage at `from` that continue the log past `expect`: how
/// many, and the first and last of their LSNs. A record counts if its checksum holds and its
/// LSN lies ahead of `expect`; the search tries every byte, checking the cheap fields first.
fn records_after(bytes: &[u8], from: usize, expect: Lsn) -> Option<(u64, Lsn, Lsn)> {
    let whole_at = |off: usize| -> Option<(Lsn, usize)> {
        let head = bytes.get(off..off.checked_add(HEADER)?)?;
        let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
        let lsn = u64::from_le_bytes(head[4..12].try_into().ok()?);
        let crc = u32::from_le_bytes(head[12..16].try_into().ok()?);
        if len > MAX_RECORD || lsn < expect || lsn - expect > 1 << 32 {
            return None;
        }
        let payload = bytes.get(off + HEADER..(off + HEADER).checked_add(len)?)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&head[4..12]);
        h.update(payload);
        (h.finalize() == crc).then_some((lsn, off + HEADER + len))
    };
    let (first, mut off) = (from + 1..bytes.len()).find_map(whole_at)?;
    let (mut count, mut last) = (1, first);
    while let Some((lsn, next)) = whole_at(off).filter(|&(lsn, _)| lsn == last + 1) {
        (count, last, off) = (count + 1, lsn, next);
    }
    Some((count, first, last))
}

/// Copies the last segment aside before its damage (at `valid_len`, where record `expect`
/// should have been) is cut off, if whole records follow the damage (see the module docs),
/// and reports them.
fn keep_damage_aside(path: &Path, bytes: &[u8], valid_len: u64, expect: Lsn) -> Result<()> {
    let Some((count, from, to)) = records_after(bytes, valid_len as usize, expect) else {
        return Ok(());
    };
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".damaged-{when}"));
    let aside = PathBuf::from(aside);
    fs::write(&aside, bytes).map_err(io_err("copying aside", &aside))?;
    tracing::error!(
        segment = %path.display(),
        copy = %aside.display(),
        records = count,
        from,
        to,
        missing_from = expect,
        "write-ahead log damaged before its end: whole records follow the damage and cannot be \
         replayed; the segment was copied aside before the damage was cut off"
    );
    Ok(())
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, cutting off a torn tail, and starts its
    /// writer thread. New records get LSNs from `max(end of log, min_next_lsn)`, so numbers
    /// already covered by a checkpoint are never reused.
    pub fn open(dir: &Path, min_next_lsn: Lsn, cfg: WalConfig) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let segs = list_segments(dir)?;
        let mut next_lsn = min_next_lsn;
        let mut previous_end: Option<Lsn> = None;
        // Records between the checkpoint and the first segment were acknowledged and are gone
        // (a segment file deleted): say so, never skip them. `trim` only deletes segments
        // whose records a checkpoint covers, so the first one starts at or before it.
        if let Some(first) = segs.first()
            && first.first_lsn > min_next_lsn
        {
            return Err(StorageError::CorruptWal {
                path: first.path.clone(),
                reason: format!(
                    "records {} to {} are missing before this segment",
                    min_next_lsn,
                    first.first_lsn - 1
                ),
            });
        }
        for (i, seg) in segs.iter().enumerate() {
            // Records between two segments that no checkpoint covers were acknowledged and
            // are gone (an earlier segment cut short, a file deleted): say so, never skip them.
            if let Some(end) = previous_end
                && seg.first_lsn > end.max(min_next_lsn)
            {
                return Err(StorageError::CorruptWal {
                    path: seg.path.clone(),
                    reason: format!(
                        "records {} to {} are missing before this segment",
                        end.max(min_next_lsn),
                        seg.first_lsn - 1
                    ),
                });
            }
            let bytes = fs::read(&seg.path).map_err(io_err("reading", &seg.path))?;
            let s = scan(&bytes, seg.first_lsn);
            let limit = segment_limit(&segs, i);
            let whole = seg.first_lsn + s.records.len() as u64 >= limit;
            if let Some(damage) = s.damage.as_ref().filter(|_| whole) {
                tracing::warn!(
                    segment = %seg.path.display(),
                    "write-ahead log segment goes on past the next one's start ({damage}); \
                     ignoring what a former writer added after the log was taken over"
                );
            } else if let Some(damage) = s.damage {
                if i + 1 != segs.len() {
                    return Err(StorageError::CorruptWal {
                        path: seg.path.clone(),
                        reason: damage,
                    });
                }
                keep_damage_aside(
                    &seg.path,
                    &bytes,
                    s.valid_len,
                    seg.first_lsn + s.records.len() as u64,
                )?;
                // A file shorter than its header grows back to one: nothing of it is cut.
                let cut_bytes =
                    (bytes.len() as u64).saturating_sub(s.valid_len.max(MAGIC.len() as u64));
                tracing::warn!(
                    segment = %seg.path.display(),
                    kept = s.records.len(),
                    cut_bytes,
                    "write-ahead log ends in a torn record ({damage}); cutting it off"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&seg.path)
                    .map_err(io_err("opening", &seg.path))?;
                if s.valid_len < MAGIC.len() as u64 {
                    f.set_len(0).map_err(io_err("truncating", &seg.path))?;
                    (&f).write_all(MAGIC)
                        .map_err(io_err("writing", &seg.path))?;
                } else {
                    f.set_len(s.valid_len)
                        .map_err(io_err("truncating", &seg.path))?;
                }
                f.sync_all().map_err(io_err("syncing", &seg.path))?;
            }
            let end = (seg.first_lsn + s.records.len() as u64).min(limit);
            previous_end = Some(end);
            next_lsn = next_lsn.max(end);
        }
        // Always append to a fresh segment starting at `next_lsn`: LSNs stay consecutive within
        // every file, and an old file is never reopened for writing.
        let active = segment_path(dir, next_lsn);
        if let Ok(meta) = fs::metadata(&active) {
            if meta.len() > MAGIC.len() as u64 {
                // The segment named for `next_lsn` holds records only if the log ends there;
                // then they were counted above and `next_lsn` would be past them.
                return Err(StorageError::CorruptWal {
                    path: active,
                    reason: "active segment already holds records".into(),
                });
            }
            // Only a header: the last writer's newest segment, with nothing in it yet. That
            // writer may be a former owner of the log, past its lease but still holding the
            // file open (a paused node): whatever it appends must not land among this
            // writer's records, so the file is replaced, not shared. Its descriptor keeps the
            // old file, which nothing reads.
            fs::remove_file(&active).map_err(io_err("replacing", &active))?;
            sync_dir(dir)?;
        }
        let file = new_segment(dir, next_lsn)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            cfg,
            file,
            file_len: MAGIC.len() as u64,
            path: active,
            next_lsn,
            poisoned: false,
            guard: None,
            #[cfg(test)]
            inject: None,
        };
        let thread = std::thread::Builder::new()
            .name("ynni-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err("starting writer thread for", dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tx: Some(tx),
            thread: Some(thread),
            next_lsn,
        })
    }

    /// The LSN the first record appended after opening got (or will get).
    pub fn first_new_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// Calls `f` for every record with `lsn >= from`, in order. Meant for start-up, before
    /// new records are appended.
    pub fn replay(&self, from: Lsn, mut f: impl FnMut(Lsn, &[u8]) -> Result<()>) -> Result<u64> {
        let mut count = 0;
        let segs = list_segments(&self.dir)?;
        for (i, seg) in segs.iter().enumerate() {
            let bytes = fs::read(&seg.path).map_err(io_err("reading", &seg.path))?;
            let limit = segment_limit(&segs, i);
            for (lsn, payload) in scan(&bytes, seg.first_lsn).records {
                if lsn >= limit {
                    break;
                }
                if lsn >= from {
                    f(lsn, &payload)?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Queues a record; it is durable once the ticket resolves.
    pub fn submit(&self, payload: Vec<u8>) -> Result<Ticket> {
        // Refused here, alone, rather than failing the group it would have joined.
        if payload.len() > MAX_RECORD {
            return Err(StorageError::RecordTooLarge {
                len: payload.len(),
                limit: MAX_RECORD,
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .as_ref()
            .ok_or(StorageError::WalClosed)?
            .send(Request::Append(payload, tx))
            .map_err(|_| StorageError::WalClosed)?;
        Ok(Ticket(rx))
    }

    /// The records submitted from now until [`Wal::end_group`] share one sync: the writer
    /// does not start on the first before the last is in.
    pub fn begin_group(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Request::GroupBegin);
        }
    }

    /// Ends the group [`Wal::begin_group`] began.
    pub fn end_group(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Request::GroupEnd);
        }
    }

    /// Appends a record and blocks until it is durable.
    pub fn append(&self, payload: Vec<u8>) -> Result<Lsn> {
        self.submit(payload)?.wait()
    }

    /// Deletes segments all of whose records have `lsn < before` (they are covered by a
    /// checkpoint). Blocks until done.
    /// From now on every write and trim first asks `guard` (see [`Guard`]).
    pub fn set_guard(&self, guard: Guard) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Request::Guard(guard));
        }
    }

    pub fn trim(&self, before: Lsn) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .as_ref()
            .ok_or(StorageError::WalClosed)?
            .send(Request::Trim(before, tx))
            .map_err(|_| StorageError::WalClosed)?;
        rx.blocking_recv().unwrap_or(Err(StorageError::WalClosed))
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has answered everything queued.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn new_segment(dir: &Path, first_lsn: Lsn) -> Result<File> {
    let path = segment_path(dir, first_lsn);
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_err("creating", &path))?;
    let made = f
        .write_all(MAGIC)
        .map_err(io_err("writing", &path))
        .and_then(|()| f.sync_all().map_err(io_err("syncing", &path)))
        .and_then(|()| sync_dir(dir));
    if let Err(e) = made {
        // A half-made segment would make the next attempt fail (`create_new`) for ever.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(f)
}

/// An I/O error of the log's own files, as [`StorageError::WalIo`].
fn as_wal_io(e: StorageError) -> StorageError {
    match e {
        StorageError::Io { op, path, source } => StorageError::WalIo { op, path, source },
        other => other,
    }
}

/// The error of a failed group, once for each of its records (`io::Error` is not `Clone`).
fn for_each_caller(e: &StorageError) -> StorageError {
    let copy = |source: &io::Error| match source.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(source.kind(), source.to_string()),
    };
    match e {
        StorageError::WalIo { op, path, source } | StorageError::Io { op, path, source } => {
            StorageError::WalIo {
                op,
                path: path.clone(),
                source: copy(source),
            }
        }
        StorageError::StoreFailed => StorageError::StoreFailed,
        StorageError::Fenced => StorageError::Fenced,
        other => StorageError::CorruptWal {
            path: PathBuf::new(),
            reason: other.to_string(),
        },
    }
}

struct Writer {
    dir: PathBuf,
    cfg: WalConfig,
    file: File,
    file_len: u64,
    path: PathBuf,
    next_lsn: Lsn,
    /// Set when a failed group could not be cut off: the file's end is unknown, so nothing
    /// more may follow it.
    poisoned: bool,
    guard: Option<Guard>,
    /// Tests: the next group's write fails with this, after half of it reached the file.
    #[cfg(test)]
    inject: Option<io::ErrorKind>,
}

impl Writer {
    fn fenced(&self) -> bool {
        self.guard.as_ref().is_some_and(|may_write| !may_write())
    }

    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut batch: Vec<(Vec<u8>, tokio::sync::oneshot::Sender<Result<Lsn>>)> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut pending = Some(first);
            let deadline = Instant::now() + self.cfg.commit_window;
            // A producer's group being received: wait for its end, not for the clock.
            let mut group_until: Option<Instant> = None;
            loop {
                match pending.take() {
                    Some(Request::Append(p, reply)) => batch.push((p, reply)),
                    Some(Request::Trim(before, reply)) => {
                        // Sync what is queued first so trimming never races a write.
                        self.commit(&mut batch);
                        let _ = reply.send(if self.fenced() {
                            Err(StorageError::Fenced)
                        } else {
                            self.trim(before)
                        });
                    }
                    Some(Request::Guard(g)) => self.guard = Some(g),
                    Some(Request::GroupBegin) => {
                        group_until = Some(Instant::now() + GROUP_WAIT);
                    }
                    Some(Request::GroupEnd) => group_until = None,
                    None => {}
                }
                let now = Instant::now();
                let until = group_until.map_or(deadline, |g| g.max(deadline));
                let next = if now >= until {
                    rx.try_recv().ok()
                } else {
                    rx.recv_timeout(until - now).ok()
                };
                match next {
                    Some(r) => pending = Some(r),
                    None => break,
                }
            }
            self.commit(&mut batch);
        }
    }

    fn commit(&mut self, batch: &mut Vec<(Vec<u8>, tokio::sync::oneshot::Sender<Result<Lsn>>)>) {
        if batch.is_empty() {
            return;
        }
        let result = self.write_group(batch);
        if let Err(e) = &result {
            tracing::error!(error = %e, records = batch.len(), "write-ahead log append failed");
        }
        for (i, (_, reply)) in batch.drain(..).enumerate() {
            let _ = reply.send(match &result {
                Ok(first) => Ok(first + i as u64),
                Err(e) => Err(for_each_caller(e)),
            });
        }
    }

    /// Writes and syncs the group; returns the LSN of its first record.
    fn write_group(
        &mut self,
        batch: &[(Vec<u8>, tokio::sync::oneshot::Sender<Result<Lsn>>)],
    ) -> Result<Lsn> {
        if self.poisoned {
            return Err(StorageError::StoreFailed);
        }
        if self.fenced() {
            return Err(StorageError::Fenced);
        }
        if self.file_len >= self.cfg.segment_bytes {
            // On failure the current segment stays in use, intact; the next group tries again.
            self.file = new_segment(&self.dir, self.next_lsn).map_err(as_wal_io)?;
            self.path = segment_path(&self.dir, self.next_lsn);
            self.file_len = MAGIC.len() as u64;
        }
        // Making a segment takes two syncs (longer still on a shared filesystem): the lease
        // may have ended meanwhile.
        if self.fenced() {
            return Err(StorageError::Fenced);
        }
        let first = self.next_lsn;
        let size: usize = batch.iter().map(|(p, _)| HEADER + p.len()).sum();
        let mut buf = Vec::with_capacity(size);
        for (i, (payload, _)) in batch.iter().enumerate() {
            let lsn = (first + i as u64).to_le_bytes();
            let mut h = crc32fast::Hasher::new();
            h.update(&lsn);
            h.update(payload);
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&lsn);
            buf.extend_from_slice(&h.finalize().to_le_bytes());
            buf.extend_from_slice(payload);
        }
        let started = std::time::Instant::now();
        if let Err(source) = self.write_and_sync(&buf) {
            self.cut_back();
            return Err(StorageError::WalIo {
                op: "appending",
                path: self.path.clone(),
                source,
            });
        }
        metrics::histogram!(crate::metrics::WAL_SYNC_SECONDS).record(started.elapsed());
        metrics::counter!(crate::metrics::WAL_BYTES).increment(buf.len() as u64);
        self.file_len += buf.len() as u64;
        self.next_lsn += batch.len() as u64;
        Ok(first)
    }

    fn write_and_sync(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(e) = self.injected(buf) {
            return Err(e);
        }
        self.file.write_all(buf)?;
        self.file.sync_data()
    }

    #[cfg(test)]
    fn injected(&mut self, buf: &[u8]) -> Option<io::Error> {
        let kind = self.inject.take()?;
        // Part of the group reaches the file, as when a disk fills in the middle of a write.
        if let Err(e) = self.file.write_all(&buf[..buf.len() / 2]) {
            return Some(e);
        }
        Some(io::Error::from(kind))
    }

    #[cfg(not(test))]
    fn injected(&mut self, _buf: &[u8]) -> Option<io::Error> {
        None
    }

    /// After a failed write or sync, removes whatever part of the group reached the file: the
    /// file is cut to its length after the last successful sync and synced. If that fails the
    /// end of the file is unknown, and the writer refuses everything until a restart.
    fn cut_back(&mut self) {
        let cut = self
            .file
            .set_len(self.file_len)
            .and_then(|()| self.file.sync_all());
        if let Err(e) = cut {
            tracing::error!(
                segment = %self.path.display(),
                error = %e,
                "cannot cut the write-ahead log back after a failed write; refusing writes until a restart"
            );
            self.poisoned = true;
        }
    }

    fn trim(&mut self, before: Lsn) -> Result<()> {
        let segs = list_segments(&self.dir)?;
        let mut removed = false;
        for pair in segs.windows(2) {
            // A segment's records end where the next segment begins.
            if pair[1].first_lsn <= before && pair[0].path != self.path {
                fs::remove_file(&pair[0].path).map_err(io_err("removing", &pair[0].path))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WalConfig {
        WalConfig {
            commit_window: Duration::from_millis(1),
            segment_bytes: 200,
        }
    }

    fn records(wal: &Wal, from: Lsn) -> Vec<(Lsn, Vec<u8>)> {
        let mut out = Vec::new();
        wal.replay(from, |lsn, p| {
            out.push((lsn, p.to_vec()));
            Ok(())
        })
        .expect("replay");
        out
    }

    #[test]
    fn append_reopen_replay_and_trim() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let wal = Wal::open(dir.path(), 0, cfg()).expect("open");
            for i in 0..20u8 {
                assert_eq!(wal.append(vec![i; 30]).expect("append"), u64::from(i));
            }
        }
        let wal = Wal::open(dir.path(), 0, cfg()).expect("reopen");
        assert_eq!(wal.first_new_lsn(), 20);
        let all = records(&wal, 0);
        assert_eq!(all.len(), 20);
        assert!(all.iter().all(|(lsn, p)| p == &vec![*lsn as u8; 30]));
        assert_eq!(records(&wal, 15).len(), 5);
        let before = list_segments(dir.path()).expect("list").len();
        assert!(before > 2, "small segments rotate");
        wal.trim(15).expect("trim");
        let left = records(&wal, 0);
        assert!(
            left.len() < 20 && left.iter().any(|(l, _)| *l == 15),
            "{}",
            left.len()
        );
        assert_eq!(wal.append(b"more".to_vec()).expect("append"), 20);
    }

    /// A former owner still holding the log open appends after the next owner opened it: its
    /// records, whole or torn, are not part of the log.
    #[test]
    fn records_a_former_writer_appends_after_a_takeover_are_ignored() {
        let big = WalConfig {
            commit_window: Duration::ZERO,
            segment_bytes: 1 << 20,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let old = Wal::open(dir.path(), 0, big).expect("open");
        for i in 0..3u8 {
            old.append(vec![i]).expect("append");
        }
        // The next owner opens the log: it starts segment 3. Nothing of its own yet.
        let new = Wal::open(dir.path(), 0, big).expect("take over");
        assert_eq!(new.first_new_lsn(), 3);
        assert_eq!(old.append(b"stale".to_vec()).expect("stale append"), 3);
        drop(new);
        let again = Wal::open(dir.path(), 0, big).expect("reopen");
        assert_eq!(again.first_new_lsn(), 3, "the stale record takes no number");
        assert_eq!(records(&again, 0).len(), 3);
        assert_eq!(again.append(b"new".to_vec()).expect("append"), 3);
        // The former owner appends again, and is cut short (killed) while writing.
        old.append(b"stale again".to_vec()).expect("stale append");
        drop(old);
        let first = segment_path(dir.path(), 0);
        let mut torn = fs::OpenOptions::new()
            .append(true)
            .open(&first)
            .expect("open");
        torn.write_all(&[9, 0, 0, 0, 1]).expect("torn record");
        drop((torn, again));
        let last = Wal::open(dir.path(), 0, big).expect("a torn stale tail is no damage");
        let got = records(&last, 0);
        let payloads: Vec<&[u8]> = got.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, [&[0u8][..], &[1], &[2], b"new"]);
        assert_eq!(last.first_new_lsn(), 4);
    }

    /// A first segment that starts after the checkpoint's position means records between
    /// them are gone: an error, not a log that silently starts later.
    #[test]
    fn records_missing_before_the_first_segment_are_an_error() {
        let small = WalConfig {
            commit_window: Duration::ZERO,
            segment_bytes: 64,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let wal = Wal::open(dir.path(), 0, small).expect("open");
            for i in 0..10u8 {
                wal.append(vec![i; 40]).expect("append");
            }
        }
        let segs = list_segments(dir.path()).expect("list");
        assert!(segs.len() > 2);
        Wal::open(dir.path(), 0, small).expect("whole");
        fs::remove_file(&segs[0].path).expect("remove");
        match Wal::open(dir.path(), 0, small) {
            Err(StorageError::CorruptWal { reason, .. }) => {
                assert!(reason.contains("missing"), "{reason}")
            }
            other => panic!("expected an error, got {:?}", other.map(|_| ())),
        }
        // A checkpoint covering what the file held: nothing is missing.
        Wal::open(dir.path(), segs[1].first_lsn, small).expect("covered");
    }

    /// A former owner whose newest segment has no record yet when the next owner opens the
    /// log (an idle vshard, or one just rotated) appends to that file: the next owner's
    /// records are not in it.
    #[test]
    fn a_former_writers_empty_segment_is_replaced_not_shared() {
        let big = WalConfig {
            commit_window: Duration::ZERO,
            segment_bytes: 1 << 20,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let old = Wal::open(dir.path(), 0, big).expect("open");
        let new = Wal::open(dir.path(), 0, big).expect("take over");
        assert_eq!(new.first_new_lsn(), 0);
        old.append(b"stale".to_vec()).expect("stale append");
        assert_eq!(new.append(b"mine".to_vec()).expect("append"), 0);
        assert_eq!(new.append(b"mine too".to_vec()).expect("append"), 1);
        drop((old, new));
        let again = Wal::open(dir.path(), 0, big).expect("reopen");
        let got = records(&again, 0);
        let payloads: Vec<&[u8]> = got.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, [&b"mine"[..], b"mine too"]);
        assert_eq!(again.first_new_lsn(), 2);
    }

    #[test]
    fn group_commit_assigns_consecutive_lsns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("open");
        let tickets: Vec<Ticket> = (0..100)
            .map(|i| wal.submit(vec![i as u8]).expect("submit"))
            .collect();
        let lsns: Vec<Lsn> = tickets
            .into_iter()
            .map(|t| t.wait().expect("durable"))
            .collect();
        assert_eq!(lsns, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn torn_tail_is_cut_off_and_earlier_damage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("open");
            for i in 0..3u8 {
                wal.append(vec![i; 10]).expect("append");
            }
        }
        let seg = list_segments(dir.path()).expect("list").remove(0).path;
        let len = fs::metadata(&seg).expect("meta").len();
        // A power cut in the middle of the last record.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open")
            .set_len(len - 3)
            .expect("cut");
        let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("reopen");
        assert_eq!(records(&wal, 0).len(), 2);
        assert_eq!(wal.first_new_lsn(), 2);
        assert_eq!(wal.append(vec![9; 10]).expect("append"), 2);
        drop(wal);

        // Flip a payload byte in a segment that is not the last one.
        let mut bytes = fs::read(&seg).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        fs::write(&seg, bytes).expect("write");
        match Wal::open(dir.path(), 0, WalConfig::default()) {
            Err(StorageError::CorruptWal { reason, .. }) => {
                assert!(reason.contains("checksum"), "{reason}")
            }
            other => panic!("expected corruption error, got {:?}", other.map(|_| ())),
        }
    }

    /// A flipped bit in the middle of the last segment is not a torn write: the log still
    /// opens (from the records before it), but the segment is kept aside, whole, first.
    #[test]
    fn damage_with_whole_records_after_it_is_kept_aside_before_the_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("open");
            for i in 0..10u8 {
                wal.append(vec![i; 10]).expect("append");
            }
        }
        let seg = list_segments(dir.path()).expect("list").remove(0).path;
        let mut bytes = fs::read(&seg).expect("read");
        // The payload of record 3.
        let at = MAGIC.len() + 3 * (HEADER + 10) + HEADER + 2;
        bytes[at] ^= 0x10;
        fs::write(&seg, &bytes).expect("write");
        assert_eq!(
            records_after(&bytes, MAGIC.len() + 3 * (HEADER + 10), 3),
            Some((6, 4, 9))
        );
        let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("reopen");
        assert_eq!(records(&wal, 0).len(), 3);
        drop(wal);
        let kept: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".wal.damaged-"))
            .collect();
        assert_eq!(kept.len(), 1, "one copy aside");
        assert_eq!(fs::read(kept[0].path()).expect("read"), bytes);
        // A plain torn tail is cut without a copy.
        let len = fs::metadata(&seg).expect("meta").len();
        {
            let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("open");
            wal.append(vec![7; 10]).expect("append");
        }
        let last = list_segments(dir.path())
            .expect("list")
            .pop()
            .expect("a segment")
            .path;
        let tail = fs::metadata(&last).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&last)
            .expect("open")
            .set_len(tail - 3)
            .expect("cut");
        Wal::open(dir.path(), 0, WalConfig::default()).expect("reopen");
        let copies = fs::read_dir(dir.path())
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains(".damaged-"))
            })
            .count();
        assert_eq!(copies, 1, "no copy for a torn tail ({len} bytes before)");
    }

    type Group = Vec<(Vec<u8>, tokio::sync::oneshot::Sender<Result<Lsn>>)>;

    fn group(payloads: &[&str]) -> (Group, Vec<tokio::sync::oneshot::Receiver<Result<Lsn>>>) {
        payloads
            .iter()
            .map(|p| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                ((p.as_bytes().to_vec(), tx), rx)
            })
            .unzip()
    }

    fn answers(rx: Vec<tokio::sync::oneshot::Receiver<Result<Lsn>>>) -> Vec<Result<Lsn>> {
        rx.into_iter()
            .map(|mut r| r.try_recv().expect("answered"))
            .collect()
    }

    fn writer(dir: &Path) -> Writer {
        Writer {
            dir: dir.to_path_buf(),
            cfg: WalConfig::default(),
            file: new_segment(dir, 0).expect("segment"),
            file_len: MAGIC.len() as u64,
            path: segment_path(dir, 0),
            next_lsn: 0,
            poisoned: false,
            guard: None,
            inject: None,
        }
    }

    #[test]
    fn a_group_is_synced_whole_once_its_producer_says_it_is_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("open");
        wal.begin_group();
        let mut first = wal.submit(b"one".to_vec()).expect("submit");
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            matches!(
                first.0.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty)
            ),
            "the group's first record waits for the rest of it"
        );
        let second = wal.submit(b"two".to_vec()).expect("submit");
        wal.end_group();
        assert_eq!(first.wait().expect("durable"), 0);
        assert_eq!(second.wait().expect("durable"), 1);
        // Outside a group nothing waits.
        assert_eq!(wal.append(b"three".to_vec()).expect("durable"), 2);
        assert_eq!(records(&wal, 0).len(), 3);
    }

    #[test]
    fn a_failed_append_is_an_io_error_and_leaves_the_log_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = writer(dir.path());
        let (mut g, rx) = group(&["first"]);
        w.commit(&mut g);
        assert_eq!(answers(rx)[0].as_ref().ok(), Some(&0));

        // The disk fills in the middle of a group of two.
        w.inject = Some(io::ErrorKind::StorageFull);
        let (mut g, rx) = group(&["lost one", "lost two"]);
        w.commit(&mut g);
        for answer in answers(rx) {
            match answer {
                Err(e @ StorageError::WalIo { .. }) => {
                    assert!(e.is_retryable(), "{e}");
                    assert!(e.is_storage_full(), "{e}");
                }
                other => panic!("expected a WAL I/O error, got {other:?}"),
            }
        }

        // Space is back: the next record takes the next LSN and follows the first one.
        let (mut g, rx) = group(&["second"]);
        w.commit(&mut g);
        assert_eq!(answers(rx)[0].as_ref().ok(), Some(&1));
        drop(w);
        let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("reopen");
        assert_eq!(
            records(&wal, 0),
            vec![(0, b"first".to_vec()), (1, b"second".to_vec())]
        );
        assert_eq!(wal.first_new_lsn(), 2);
    }

    #[test]
    fn a_full_disk_from_the_os_is_recognised_and_later_writes_stay_retryable() {
        // /dev/full answers every write with ENOSPC (Linux); it cannot be truncated, so the
        // writer cannot cut back and refuses what follows.
        let Ok(file) = OpenOptions::new().append(true).open("/dev/full") else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = writer(dir.path());
        w.file = file;
        w.path = PathBuf::from("/dev/full");
        let (mut g, rx) = group(&["x"]);
        w.commit(&mut g);
        match answers(rx).remove(0) {
            Err(e @ StorageError::WalIo { .. }) => {
                assert!(e.is_storage_full(), "{e}");
                assert!(e.is_retryable());
                assert!(e.to_string().contains("appending failed"), "{e}");
            }
            other => panic!("expected a WAL I/O error, got {other:?}"),
        }
        let (mut g, rx) = group(&["y"]);
        w.commit(&mut g);
        match answers(rx).remove(0) {
            Err(e) => assert!(e.is_retryable(), "{e}"),
            Ok(lsn) => panic!("/dev/full stored record {lsn}"),
        }
    }

    #[test]
    fn an_oversized_record_is_refused_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), 0, WalConfig::default()).expect("open");
        let small = wal.submit(vec![1]).expect("queued");
        assert!(matches!(
            wal.submit(vec![0; MAX_RECORD + 1]),
            Err(StorageError::RecordTooLarge { .. })
        ));
        assert_eq!(small.wait().expect("durable"), 0);
    }

    #[test]
    fn checkpointed_lsns_are_not_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), 40, WalConfig::default()).expect("open");
        assert_eq!(wal.append(vec![1]).expect("append"), 40);
    }
}
