//! Copying a data directory's feed files and logs while the server writes them, so that the
//! copy restores every value acknowledged before its logs were copied, with the process state
//! (accumulators such as `power_to_kwh`) of that same moment.
//!
//! # Why the copy is of one moment
//!
//! A backup holds a shared `flock` on `wal/backup.hold` ([`Hold`]) for its whole length, and
//! while any backup holds it the server's shards put off their timed flushes
//! (`FeedStore::flush_if_due`): nothing is written to the feed files and no checkpoint is
//! written or trimmed. Ingest goes on, into the logs and memory. Then, per attempt:
//!
//! 1. each shard's checkpoint files are noted (name, device, inode, length, checksum,
//!    change time);
//! 2. the caller copies the catalog ([`CatalogCopy`]) for the feeds it knows, and each
//!    shard's newest checkpoint is copied;
//! 3. the feeds' files are copied;
//! 4. each shard's log segments are copied;
//! 5. the caller copies the catalog again, the one restored;
//! 6. each shard's checkpoint files are noted again. If any differ, a flush ran (one the
//!    backup cannot put off: memory full, process lists or a time zone changed for a user
//!    with records since the checkpoint, a feed cleared, trimmed or deleted, a restart) and
//!    the attempt is made again, up to [`ATTEMPTS`] times; so it is if the second catalog
//!    knows a feed the first did not (its files may not be copied). Files of feeds the
//!    second no longer knows are left out. Only the feed files that changed
//!    since the attempt before (by device, inode, length and modification time, and not
//!    changed within two seconds of its start) are copied again; the logs and checkpoints
//!    always are.
//!
//! An attempt that passes step 6 saw no checkpoint written, amended or deleted. So:
//!
//! - no log segment was trimmed (a trim follows a checkpoint): the copied logs run without a
//!   gap from the copied checkpoint to the moment they were copied, and hold every value
//!   acknowledged before then;
//! - the feed files hold what the copied checkpoint covers (its flush ended before it was
//!   written), plus at most part of one flush that started before the hold and had not
//!   written its checkpoint by step 4, whose points are all in the copied logs; replaying
//!   the logs writes them again, as after a crash;
//! - the process lists and time zones in the restored catalog are the ones the copied logs'
//!   records after the copied checkpoint were logged under. A change after step 5 is after
//!   every copied record. One before it, for a user with records the checkpoint did not
//!   cover, made a checkpoint first: before step 1 (then the copied checkpoint covers the
//!   records logged under the old lists) or during the attempt (step 6 sees it); for a user
//!   without such records, every copied record of theirs after the checkpoint was logged
//!   after the change. (Except in the moment between a change's commit and its shard taking
//!   it up, while records still run the old lists: a change committed then, before step 5,
//!   and taken up after step 6 replays those records with the new lists, as a crash in that
//!   moment would.)
//! - a feed whose row the second catalog has but whose files were not copied (made after
//!   their directory was listed) makes the attempt start over, as a new feed does;
//! - the copied checkpoint is the one such a flush would amend first (process state that
//!   must not be read back from files the flush changes), so a process list replaying it
//!   reads a feed's last value as the live one did: the restored accumulators carry on from
//!   the copied feed files' values instead of counting energy twice or stepping back.
//!
//! A fixed feed's `.dat` is copied with the `.meta` it was written under: the meta is read
//! before and after the data, and the pair is copied again if either changed (a first flush
//! setting the start time, a trim replacing both files). Between a trim's two renames the
//! new `.dat`'s meta is the `.meta.trim` beside it, which is read instead. The tail of a file
//! is cut to whole records, as the engines do after a crash. The `.levels` caches are not
//! copied (they are rebuilt), nor are temporary files.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::data_dir::{FIXED_DIR, VARIABLE_DIR};
use crate::error::{Result, StorageError, io_err};

/// A file copied: its path relative to the data directory, and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
}

/// How many times a copy is made again when a flush ran during it.
pub const ATTEMPTS: usize = 10;

/// The file beside the shards' log directories that a running backup holds a shared `flock`
/// on.
pub const HOLD_FILE: &str = "backup.hold";

/// A running backup. While any process holds one, the server's shards put off their timed
/// flushes. The kernel drops the lock with the process, so a killed backup holds nothing
/// back; the file itself is never removed (a new one in its place would not carry a lock
/// still held on the old).
pub struct Hold {
    _file: File,
}

/// Takes a [`Hold`] on the data directory whose `wal` directory is `wal`.
pub fn hold(wal: &Path) -> Result<Hold> {
    use std::os::unix::fs::PermissionsExt;
    let path = wal.join(HOLD_FILE);
    fs::create_dir_all(wal).map_err(io_err("creating", wal))?;
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io_err("creating", &path))?;
            // The server must be able to open it whoever made it (a backup run as root with
            // umask 077 would leave it unreadable, and the hold unseen, for good).
            f.set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(io_err("creating", &path))?;
            f
        }
        Err(e) => return Err(io_err("opening", &path)(e)),
    };
    // A shared lock needs no write access: any number of backups hold one at once.
    file.lock_shared().map_err(io_err("locking", &path))?;
    Ok(Hold { _file: file })
}

/// Whether some process holds a [`Hold`] on the data directory of the shard log directory
/// `shard_wal`.
pub fn running(shard_wal: &Path) -> bool {
    let Some(path) = shard_wal.parent().map(|wal| wal.join(HOLD_FILE)) else {
        return false;
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(e) => {
            // Unreadable: flushing as usual only makes the backup copy again.
            tracing::warn!(path = %path.display(), error = %e, "could not check for a running backup");
            return false;
        }
    };
    // One probe at a time in this process: each takes the lock for a moment, which another
    // shard probing then would take for a backup's.
    static PROBING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = PROBING.lock().unwrap_or_else(|p| p.into_inner());
    match file.try_lock() {
        Ok(()) => false,
        Err(fs::TryLockError::WouldBlock) => true,
        Err(fs::TryLockError::Error(e)) => {
            // Locks the filesystem does not keep (some network filesystems): a backup would
            // then always find the server flushing. Said once.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(path = %path.display(), error = %e, "could not check for a running backup: flushes go on during backups, which then copy again until they fail");
            });
            false
        }
    }
}

/// What [`copy_live`] asks of its caller, twice in each attempt: a fresh copy of the
/// catalog into the copy (replacing the one before), answering which feeds it knows.
pub type CatalogCopy<'a> = dyn FnMut() -> Result<std::collections::HashSet<u32>> + 'a;

/// Copies the logs, checkpoints and feed files of the data directory `from` into `to`
/// (which must exist), with the catalog `catalog` copies, as the module docs say. An attempt
/// made again copies only the feed files that changed since the one before.
pub fn copy_live(from: &Path, to: &Path, catalog: &mut CatalogCopy<'_>) -> Result<Vec<Copied>> {
    let _hold = hold(&from.join("wal"))?;
    let mut before = Reuse::default();
    for attempt in 1..=ATTEMPTS {
        let began = std::time::SystemTime::now();
        let mut now = Reuse::default();
        let copied = copy_once(from, to, catalog, &before, &mut now)?;
        // The feed files this attempt did not copy (feeds deleted or unknown to the catalog
        // since an earlier attempt copied them) must not be restored.
        let kept: std::collections::HashSet<&Path> = now
            .files
            .values()
            .flat_map(|(_, c)| c.iter().map(|c| c.path.as_path()))
            .collect();
        for dir in [FIXED_DIR, VARIABLE_DIR] {
            for name in sorted_entries(&to.join(dir))? {
                let rel = Path::new(dir).join(&name);
                if !kept.contains(rel.as_path()) {
                    fs::remove_file(to.join(&rel)).map_err(io_err("removing", &to.join(&rel)))?;
                }
            }
        }
        if let Some(out) = copied {
            return Ok(out);
        }
        tracing::info!(
            attempt,
            "the server flushed during the copy: copying what changed again"
        );
        match fs::remove_dir_all(to.join("wal")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("removing", &to.join("wal"))(e));
            }
            _ => {}
        }
        now.began = Some(began);
        before = now;
    }
    Err(StorageError::Io {
        op: "backing up",
        path: from.to_path_buf(),
        source: io::Error::other(format!(
            "the server flushed during each of {ATTEMPTS} copies (memory full, process lists \
             or time zones changed, feeds cleared, trimmed or deleted): try again"
        )),
    })
}

/// A file's device, inode, length and modification time, `None` if it is not there.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// The feed files an attempt copied: for each feed's main file, the stamps of its files
/// taken before they were copied, and what was copied.
#[derive(Default)]
struct Reuse {
    /// When the attempt began (`None` for the one being made).
    began: Option<std::time::SystemTime>,
    files: std::collections::HashMap<PathBuf, (Vec<Stamp>, Vec<Copied>)>,
}

impl Reuse {
    /// What an earlier attempt copied of the feed `key` whose files are stamped `stamps` now,
    /// if it may stand: the files unchanged since then, and last changed well before that
    /// attempt began (a change within the same tick of the clock as its stamp would not show).
    fn copied(&self, key: &Path, stamps: &[Stamp], to: &Path) -> Option<Vec<Copied>> {
        let began = self.began?;
        let (then, copied) = self.files.get(key)?;
        let settled = stamps.iter().flatten().all(|&(_, _, _, secs, _)| {
            let changed =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
            changed + std::time::Duration::from_secs(2) < began
        });
        (then.as_slice() == stamps && settled && copied.iter().all(|c| to.join(&c.path).exists()))
            .then(|| copied.clone())
    }
}

/// One attempt of [`copy_live`]; `None` if a checkpoint changed during it.
fn copy_once(
    from: &Path,
    to: &Path,
    catalog: &mut CatalogCopy<'_>,
    before: &Reuse,
    now: &mut Reuse,
) -> Result<Option<Vec<Copied>>> {
    let mut out = Vec::new();
    let wal = Path::new("wal");
    let mut shards = Vec::new();
    for shard in sorted_entries(&from.join(wal))? {
        let rel = wal.join(&shard);
        if from.join(&rel).is_dir() {
            shards.push((rel.clone(), checkpoints_seen(&from.join(&rel))?));
        }
    }
    // The feeds to copy: those the catalog knows now (a feed created after the catalog is
    // copied would otherwise leave files behind whose id the restored catalog hands to a
    // new feed).
    let known = catalog()?;
    let wanted = |id: u32| known.contains(&id);
    copy_if_present(from, to, &wal.join("workers"), None, &mut out)?;
    for (rel, _) in &shards {
        copy_checkpoint(from, to, rel, &mut out)?;
    }
    let fixed = Path::new(FIXED_DIR);
    for name in sorted_entries(&from.join(fixed))? {
        let name = name.to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".dat") {
            if !id.parse().is_ok_and(wanted) {
                continue;
            }
            let (dat, meta) = (fixed.join(&name), fixed.join(format!("{id}.meta")));
            let stamps: Vec<Stamp> = [
                from.join(&dat),
                from.join(&meta),
                from.join(&dat).with_extension("dat.trim"),
                from.join(&meta).with_extension("meta.trim"),
            ]
            .iter()
            .map(|p| stamp(p))
            .collect();
            let first = out.len();
            match before.copied(&dat, &stamps, to) {
                Some(copied) => out.extend(copied),
                None => copy_fixed(from, to, &dat, &meta, &mut out)?,
            }
            now.files.insert(dat, (stamps, out[first..].to_vec()));
        }
    }
    let variable = Path::new(VARIABLE_DIR);
    for name in sorted_entries(&from.join(variable))? {
        let name_text = name.to_string_lossy();
        let Some(stem) = name_text.strip_suffix(".MYD") else {
            continue;
        };
        // emoncms's names: feed_<id>.MYD
        let id = stem.strip_prefix("feed_").unwrap_or(stem);
        if id.parse().is_ok_and(wanted) {
            let rel = variable.join(&name);
            let stamps = vec![stamp(&from.join(&rel))];
            let first = out.len();
            match before.copied(&rel, &stamps, to) {
                Some(copied) => out.extend(copied),
                None => {
                    let _ = fs::remove_file(to.join(&rel));
                    let rec = Some(crate::variable::RECORD);
                    copy_if_present(from, to, &rel, rec, &mut out)?;
                }
            }
            now.files.insert(rel, (stamps, out[first..].to_vec()));
        }
    }
    for (rel, _) in &shards {
        for name in sorted_entries(&from.join(rel))? {
            if name.to_string_lossy().ends_with(".wal") {
                copy_if_present(from, to, &rel.join(&name), None, &mut out)?;
            }
        }
    }
    // The catalog restored is copied after the logs: its process lists and time zones are
    // those of every copied record (see the module docs).
    let restored = catalog()?;
    for (rel, seen) in &shards {
        if checkpoints_seen(&from.join(rel))? != *seen {
            return Ok(None);
        }
    }
    if !restored.is_subset(&known) {
        // A feed created during the attempt: its files may not have been copied.
        return Ok(None);
    }
    // A feed whose row was there from the start, but whose files were made after their
    // directory was listed (a shard makes them after the row is written).
    let listed = |id: u32| {
        now.files.contains_key(&fixed.join(format!("{id}.dat")))
            || now
                .files
                .contains_key(&variable.join(format!("feed_{id}.MYD")))
    };
    let made_since = |id: u32| {
        from.join(fixed).join(format!("{id}.dat")).exists()
            || from.join(variable).join(format!("feed_{id}.MYD")).exists()
    };
    if restored.iter().any(|&id| !listed(id) && made_since(id)) {
        return Ok(None);
    }
    // Feeds deleted during the attempt: their rows are gone from the restored catalog.
    let gone = |c: &Copied| {
        let name = c.path.file_name().map(|n| n.to_string_lossy().into_owned());
        let id = name.as_deref().and_then(|n| {
            n.strip_suffix(".dat")
                .or_else(|| n.strip_suffix(".meta"))
                .or_else(|| {
                    n.strip_suffix(".MYD")
                        .map(|s| s.trim_start_matches("feed_"))
                })
        });
        (c.path.starts_with(FIXED_DIR) || c.path.starts_with(VARIABLE_DIR))
            && id
                .and_then(|i| i.parse().ok())
                .is_some_and(|i| !restored.contains(&i))
    };
    for c in out.iter().filter(|c| gone(c)) {
        fs::remove_file(to.join(&c.path)).map_err(io_err("removing", &to.join(&c.path)))?;
    }
    out.retain(|c| !gone(c));
    Ok(Some(out))
}

/// A checkpoint file's path with its device, inode, length, last four bytes (its checksum)
/// and change time, `None` if it is not there.
type Seen = (PathBuf, Option<(u64, u64, u64, [u8; 4], (i64, i64))>);

/// The checkpoint files of the shard log directory `dir`. A rewrite under the same name makes
/// a new inode, but the filesystem may hand a freed inode out again (two rewrites during one
/// attempt), with the same bytes (a checkpoint written again unchanged), so the change time
/// is compared too.
fn checkpoints_seen(dir: &Path) -> Result<Vec<Seen>> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    type Id = (u64, u64, u64, [u8; 4], (i64, i64));
    let seen = |path: &Path| -> Option<Id> {
        let f = File::open(path).ok()?;
        let m = f.metadata().ok()?;
        let mut crc = [0u8; 4];
        if m.len() >= 4 {
            f.read_exact_at(&mut crc, m.len() - 4).ok()?;
        }
        Some((m.dev(), m.ino(), m.len(), crc, (m.ctime(), m.ctime_nsec())))
    };
    Ok(checkpoint::files(dir)?
        .into_iter()
        .map(|(path, _)| {
            let id = seen(&path);
            (path, id)
        })
        .collect())
}

/// How many times a fixed feed is copied again when it changed under the copy.
const FIXED_TRIES: usize = 10;

/// Copies a fixed feed's `.dat` with the `.meta` it was written under: the meta is read
/// before and after the data, and the pair is copied again if the meta or the data file
/// (replaced whole by a trim) changed meanwhile. A feed deleted meanwhile is left out.
fn copy_fixed(
    from: &Path,
    to: &Path,
    dat: &Path,
    meta: &Path,
    out: &mut Vec<Copied>,
) -> Result<()> {
    let identity = |p: &Path| -> Result<Option<(u64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        match fs::metadata(from.join(p)) {
            Ok(m) => Ok(Some((m.dev(), m.ino()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &from.join(p))(e)),
        }
    };
    let read = |p: &Path| -> Result<Option<Vec<u8>>> {
        match fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", p)(e)),
        }
    };
    // The meta the `.dat` goes with: between a trim's two renames (or after a crash between
    // them, until the feed is next opened) the new `.dat` is in place and its meta is still
    // `.meta.trim`, as `FixedFeed::open` finishes it.
    let (dat_trim, meta_trim) = (
        from.join(dat).with_extension("dat.trim"),
        from.join(meta).with_extension("meta.trim"),
    );
    let read_meta = || -> Result<Option<Vec<u8>>> {
        if !dat_trim.exists()
            && let Some(b) = read(&meta_trim)?
        {
            return Ok(Some(b));
        }
        read(&from.join(meta))
    };
    for _ in 0..FIXED_TRIES {
        let (meta_before, dat_before) = (read_meta()?, identity(dat)?);
        let (Some(meta_bytes), Some(_)) = (&meta_before, dat_before) else {
            return Ok(()); // deleted (or not created yet): nothing to restore
        };
        let _ = fs::remove_file(to.join(dat));
        let mut copied = Vec::new();
        copy_if_present(from, to, dat, Some(4), &mut copied)?;
        if read_meta()? == meta_before && identity(dat)? == dat_before {
            let dst = to.join(meta);
            let _ = fs::remove_file(&dst);
            crate::atomic_file::write_synced(&dst, meta_bytes)?;
            out.extend(copied);
            out.push(Copied {
                path: meta.to_path_buf(),
                bytes: meta_bytes.len() as u64,
            });
            return Ok(());
        }
    }
    Err(StorageError::Io {
        op: "backing up",
        path: from.join(dat),
        source: io::Error::other(format!(
            "the feed changed under each of {FIXED_TRIES} copies"
        )),
    })
}

/// The names in `dir`, sorted; none if it does not exist.
fn sorted_entries(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut names = entries
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(io_err("listing", dir))?;
    names.sort();
    Ok(names)
}

/// Copies the newest checkpoint of the shard log `rel` (and one under the old name, if any).
/// A checkpoint deleted before it was copied was replaced by a newer one, which is copied
/// instead (and the attempt made again: [`copy_once`] sees the change).
fn copy_checkpoint(from: &Path, to: &Path, rel: &Path, out: &mut Vec<Copied>) -> Result<()> {
    for _ in 0..FIXED_TRIES {
        let mut named_seen = false;
        let mut vanished = false;
        for (path, named) in checkpoint::files(&from.join(rel))? {
            if named.is_some() {
                if named_seen {
                    continue;
                }
                named_seen = true;
            }
            let Some(name) = path.file_name() else {
                continue;
            };
            // A retry copies again what an earlier round copied (the old-named checkpoint
            // beside a vanished new one): the copy is made afresh.
            let _ = fs::remove_file(to.join(rel).join(name));
            out.retain(|c| c.path != rel.join(name));
            let before = out.len();
            copy_if_present(from, to, &rel.join(name), None, out)?;
            vanished |= out.len() == before;
        }
        if !vanished {
            return Ok(());
        }
    }
    Err(StorageError::Io {
        op: "backing up",
        path: from.join(rel),
        source: io::Error::other(format!(
            "the checkpoint changed under each of {FIXED_TRIES} copies"
        )),
    })
}

/// Copies `rel` from `from` to `to` unless it vanished meanwhile (a trimmed segment, a
/// deleted feed); with `record`, the copy is cut to whole records.
fn copy_if_present(
    from: &Path,
    to: &Path,
    rel: &Path,
    record: Option<u64>,
    out: &mut Vec<Copied>,
) -> Result<()> {
    let src = from.join(rel);
    let file = match File::open(&src) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("opening", &src)(e)),
    };
    let dst = to.join(rel);
    if let Some(dir) = dst.parent() {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    }
    let mut bytes = copy_synced(file, &src, &dst)?;
    if let Some(r) = record.filter(|r| bytes % r != 0) {
        bytes -= bytes % r;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&dst)
            .map_err(io_err("opening", &dst))?;
        f.set_len(bytes)
            .and_then(|()| f.sync_all())
            .map_err(io_err("cutting", &dst))?;
    }
    out.push(Copied {
        path: rel.to_path_buf(),
        bytes,
    });
    Ok(())
}

/// Copies everything `src` (already open) holds now to a new file `dst`, synced; returns
/// the bytes copied.
pub fn copy_synced(mut src: File, src_path: &Path, dst: &Path) -> Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    // Owner only: the copies hold password hashes, keys and everyone's data.
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(io_err("creating", dst))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("reading", src_path)(e)),
        };
        out.write_all(&buf[..n]).map_err(io_err("writing", dst))?;
        total += n as u64;
    }
    out.sync_all().map_err(io_err("syncing", dst))?;
    Ok(total)
}

/// Syncs every directory under `root` (and `root`), so the files just copied there are
/// found after a power cut.
pub fn sync_tree(root: &Path) -> Result<()> {
    crate::atomic_file::sync_dir(root)?;
    for entry in fs::read_dir(root).map_err(io_err("listing", root))? {
        let entry = entry.map_err(io_err("listing", root))?;
        if entry.file_type().map_err(io_err("reading", root))?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// A path inside a backup that would leave it (`..`, absolute): refused.
pub fn check_relative(rel: &Path) -> Result<()> {
    let inside = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if inside {
        Ok(())
    } else {
        Err(StorageError::Io {
            op: "restoring",
            path: rel.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, "path leaves the backup"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of every feed with files in the data directory `s`, as a catalog knowing
    /// them all would answer.
    fn all_feeds(s: &Path) -> std::collections::HashSet<u32> {
        let ids = |dir: &str, prefix: &str, suffix: &str| -> Vec<u32> {
            fs::read_dir(s.join(dir))
                .map(|d| {
                    d.filter_map(|e| {
                        let name = e.ok()?.file_name().into_string().ok()?;
                        name.strip_prefix(prefix)?
                            .strip_suffix(suffix)?
                            .parse()
                            .ok()
                    })
                    .collect()
                })
                .unwrap_or_default()
        };
        let mut all: std::collections::HashSet<u32> =
            ids(FIXED_DIR, "", ".dat").into_iter().collect();
        all.extend(ids(VARIABLE_DIR, "feed_", ".MYD"));
        all
    }

    #[test]
    fn copies_logs_checkpoints_and_feeds_but_not_caches_and_cuts_torn_tails() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        for (p, len) in [
            ("wal/workers", 2),
            ("wal/0/00000000000000000000.wal", 100),
            ("wal/0/checkpoint", 30),
            ("wal/0/checkpoint.tmp", 30),
            ("wal/1/checkpoint-00000000000000000007", 30),
            // Older than the one above: not needed.
            ("wal/1/checkpoint-00000000000000000003", 30),
            ("wal/1/checkpoint-00000000000000000009.tmp", 30),
            ("phpfina/1.dat", 4 * 10 + 3),
            ("phpfina/1.meta", 16),
            ("phpfina/1.levels", 48),
            // Deleted while the backup ran: its meta is gone, so its data is left out.
            ("phpfina/3.dat", 8),
            ("phptimeseries/feed_2.MYD", 9 * 3 + 5),
            ("phptimeseries/feed_2.MYD.tmp", 9),
            // Created after the catalog was copied: not in it, so left out.
            ("phpfina/4.dat", 8),
            ("phpfina/4.meta", 16),
            ("phptimeseries/feed_5.MYD", 9),
        ] {
            let path = s.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, vec![7u8; len]).unwrap();
        }
        let copied = copy_live(s, dst.path(), &mut || Ok((1..4).collect())).unwrap();
        let got: Vec<(String, u64)> = copied
            .iter()
            .map(|c| (c.path.display().to_string(), c.bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("wal/workers".to_string(), 2),
                ("wal/0/checkpoint".into(), 30),
                ("wal/1/checkpoint-00000000000000000007".into(), 30),
                ("phpfina/1.dat".into(), 40),
                ("phpfina/1.meta".into(), 16),
                ("phptimeseries/feed_2.MYD".into(), 27),
                ("wal/0/00000000000000000000.wal".into(), 100),
            ]
        );
        assert_eq!(
            fs::metadata(dst.path().join("phpfina/1.dat"))
                .unwrap()
                .len(),
            40
        );
        assert!(!dst.path().join("phpfina/1.levels").exists());
        assert!(!dst.path().join("phpfina/3.dat").exists());
    }

    /// A checkpoint amended (rewritten under its own name) while the feed files are copied is
    /// copied again: the copy holds the amended one beside the feed files.
    #[test]
    fn a_checkpoint_amended_during_the_copy_is_copied_again() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        let cp = s.join("wal/0/checkpoint-00000000000000000007");
        fs::create_dir_all(cp.parent().unwrap()).unwrap();
        fs::write(&cp, b"before").unwrap();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        crate::fixed::write_meta(&s.join("phpfina/1.meta"), 10, 1_000).unwrap();
        fs::write(s.join("phpfina/1.dat"), [0u8; 8]).unwrap();
        // `wanted` is asked while the feed files are copied: the amend happens then, once.
        let amended = std::cell::Cell::new(false);
        let amend = || {
            if !amended.replace(true) {
                let tmp = cp.with_extension("tmp");
                fs::write(&tmp, b"amended").unwrap();
                fs::rename(&tmp, &cp).unwrap();
            }
            true
        };
        copy_live(s, dst.path(), &mut || {
            amend();
            Ok(all_feeds(s))
        })
        .unwrap();
        assert_eq!(
            fs::read(dst.path().join("wal/0/checkpoint-00000000000000000007")).unwrap(),
            b"amended"
        );
    }

    /// A flush during the copy (its checkpoint amended, the feed files written, a newer
    /// checkpoint written and the log trimmed) makes the copy start over: it holds the newer
    /// checkpoint with the files and log after it, never the older checkpoint with files
    /// flushed past it.
    #[test]
    fn a_flush_during_the_copy_makes_it_start_over() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        let shard = s.join("wal/0");
        let at = |lsn, state: &[u8]| checkpoint::Checkpoint {
            next_lsn: lsn,
            state: state.to_vec(),
        };
        fs::create_dir_all(&shard).unwrap();
        checkpoint::write(&shard, &at(7, b"before")).unwrap();
        fs::write(shard.join("00000000000000000007.wal"), [1u8; 10]).unwrap();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        crate::fixed::write_meta(&s.join("phpfina/1.meta"), 10, 1_000).unwrap();
        fs::write(s.join("phpfina/1.dat"), [0u8; 8]).unwrap();
        let flushed = std::cell::Cell::new(false);
        // `wanted` is asked while the feed files are copied: the flush happens then, once.
        let flush = || {
            if !flushed.replace(true) {
                checkpoint::write(&shard, &at(7, b"amended")).unwrap();
                fs::write(s.join("phpfina/1.dat"), [0u8; 12]).unwrap();
                fs::write(shard.join("00000000000000000009.wal"), [2u8; 10]).unwrap();
                checkpoint::write(&shard, &at(9, b"newer")).unwrap();
                fs::remove_file(shard.join("00000000000000000007.wal")).unwrap();
            }
            true
        };
        let copied = copy_live(s, dst.path(), &mut || {
            flush();
            Ok(all_feeds(s))
        })
        .unwrap();
        let d = dst.path();
        assert_eq!(
            checkpoint::read(&d.join("wal/0")).unwrap().unwrap(),
            at(9, b"newer")
        );
        assert_eq!(fs::metadata(d.join("phpfina/1.dat")).unwrap().len(), 12);
        assert!(d.join("wal/0/00000000000000000009.wal").exists());
        assert!(!d.join("wal/0/00000000000000000007.wal").exists());
        assert!(!d.join("wal/0/checkpoint-00000000000000000007").exists());
        assert!(
            copied.iter().all(|c| d.join(&c.path).exists()),
            "{copied:?}"
        );
    }

    /// A flush during every attempt: the backup fails, saying so, instead of keeping a copy
    /// whose process state and feed files are of different moments.
    #[test]
    fn a_flush_during_every_attempt_fails_the_backup() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        let shard = s.join("wal/0");
        fs::create_dir_all(&shard).unwrap();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        crate::fixed::write_meta(&s.join("phpfina/1.meta"), 10, 1_000).unwrap();
        fs::write(s.join("phpfina/1.dat"), [0u8; 8]).unwrap();
        let lsn = std::cell::Cell::new(1);
        let flush = || {
            let n = lsn.get();
            lsn.set(n + 1);
            let cp = checkpoint::Checkpoint {
                next_lsn: n,
                state: Vec::new(),
            };
            checkpoint::write(&shard, &cp).unwrap();
            true
        };
        let e = copy_live(s, dst.path(), &mut || {
            flush();
            Ok(all_feeds(s))
        })
        .unwrap_err();
        assert!(e.to_string().contains("flushed during each of"), "{e}");
        assert_eq!(
            lsn.get() - 1,
            2 * ATTEMPTS as u64,
            "asked twice per attempt"
        );
    }

    /// An attempt made again copies only the feed files that changed since the one before:
    /// one untouched for long is kept as copied, one a flush wrote is copied again.
    #[test]
    fn a_second_attempt_copies_only_what_changed() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        let shard = s.join("wal/0");
        fs::create_dir_all(&shard).unwrap();
        let cp = |lsn| checkpoint::Checkpoint {
            next_lsn: lsn,
            state: Vec::new(),
        };
        checkpoint::write(&shard, &cp(7)).unwrap();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for id in [1, 2] {
            crate::fixed::write_meta(&s.join(format!("phpfina/{id}.meta")), 10, 1_000).unwrap();
            let dat = s.join(format!("phpfina/{id}.dat"));
            fs::write(&dat, [0u8; 8]).unwrap();
            for p in [dat, s.join(format!("phpfina/{id}.meta"))] {
                File::options()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_modified(long_ago)
                    .unwrap();
            }
        }
        let calls = std::cell::Cell::new(0);
        let kept_inode = std::cell::Cell::new(None);
        // Asked twice in each attempt: the first time before the feed files are copied.
        let flush = || {
            use std::os::unix::fs::MetadataExt;
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                // A flush in the first attempt: feed 2 written, a newer checkpoint.
                fs::write(s.join("phpfina/2.dat"), [0u8; 12]).unwrap();
                checkpoint::write(&shard, &cp(9)).unwrap();
            }
            if calls.get() == 3 {
                // The second attempt, before feed 1: its copy from the first attempt.
                let copy = dst.path().join("phpfina/1.dat");
                kept_inode.set(Some(fs::metadata(copy).unwrap().ino()));
            }
        };
        copy_live(s, dst.path(), &mut || {
            flush();
            Ok(all_feeds(s))
        })
        .unwrap();
        use std::os::unix::fs::MetadataExt;
        let d = dst.path();
        assert_eq!(calls.get(), 4, "two attempts");
        assert_eq!(
            Some(fs::metadata(d.join("phpfina/1.dat")).unwrap().ino()),
            kept_inode.get(),
            "feed 1 kept as the first attempt copied it"
        );
        assert_eq!(fs::metadata(d.join("phpfina/2.dat")).unwrap().len(), 12);
        assert_eq!(checkpoint::read(&d.join("wal/0")).unwrap().unwrap(), cp(9));
    }

    /// A feed the restored catalog knows but the copy's first look at it did not (created
    /// during the attempt) makes the copy start over, so its files are there; the files of
    /// a feed the restored catalog no longer knows (deleted meanwhile) are left out.
    #[test]
    fn feeds_created_or_deleted_during_the_copy_follow_the_restored_catalog() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("wal/0")).unwrap();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        for id in [1, 2] {
            crate::fixed::write_meta(&s.join(format!("phpfina/{id}.meta")), 10, 1_000).unwrap();
            fs::write(s.join(format!("phpfina/{id}.dat")), [0u8; 8]).unwrap();
        }
        let answers = |first: &[u32], then: &[u32]| {
            let calls = std::cell::Cell::new(0);
            let (first, then): (Vec<u32>, Vec<u32>) = (first.to_vec(), then.to_vec());
            move || {
                calls.set(calls.get() + 1);
                let ids = if calls.get() == 1 { &first } else { &then };
                Ok(ids.iter().copied().collect())
            }
        };
        let created = tempfile::tempdir().unwrap();
        let copied = copy_live(s, created.path(), &mut answers(&[1], &[1, 2])).unwrap();
        assert!(created.path().join("phpfina/2.dat").exists(), "{copied:?}");
        let deleted = tempfile::tempdir().unwrap();
        let copied = copy_live(s, deleted.path(), &mut answers(&[1, 2], &[1])).unwrap();
        assert!(!deleted.path().join("phpfina/2.dat").exists());
        assert!(!deleted.path().join("phpfina/2.meta").exists());
        let of_2 = |c: &Copied| c.path.to_string_lossy().starts_with("phpfina/2.");
        assert!(!copied.iter().any(of_2), "{copied:?}");
        assert!(deleted.path().join("phpfina/1.dat").exists());
    }

    /// A feed whose row the catalog had from the start but whose files appeared only after
    /// the copy listed its directory (the shard makes them after the row): the copy starts
    /// over, so they are in it.
    #[test]
    fn a_feed_whose_files_appear_during_the_copy_is_copied() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("wal/0")).unwrap();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        let calls = std::cell::Cell::new(0);
        let copied = copy_live(s, dst.path(), &mut || {
            calls.set(calls.get() + 1);
            if calls.get() == 2 {
                crate::fixed::write_meta(&s.join("phpfina/1.meta"), 10, 1_000).unwrap();
                fs::write(s.join("phpfina/1.dat"), [0u8; 8]).unwrap();
            }
            Ok([1].into_iter().collect())
        })
        .unwrap();
        assert!(dst.path().join("phpfina/1.dat").exists(), "{copied:?}");
        assert_eq!(calls.get(), 4, "two attempts");
    }

    /// A checkpoint rewritten in place during the copy, on the same inode (as a filesystem
    /// handing a freed inode out again leaves it), is still seen as changed.
    #[test]
    fn a_checkpoint_rewritten_on_its_inode_is_seen_as_changed() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        let shard = s.join("wal/0");
        fs::create_dir_all(&shard).unwrap();
        let at = |state: &[u8]| checkpoint::Checkpoint {
            next_lsn: 7,
            state: state.to_vec(),
        };
        checkpoint::write(&shard, &at(b"feed 1 at 100")).unwrap();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        crate::fixed::write_meta(&s.join("phpfina/1.meta"), 10, 1_000).unwrap();
        fs::write(s.join("phpfina/1.dat"), [0u8; 8]).unwrap();
        let path = checkpoint::path_for(&shard, 7);
        let rewritten = std::cell::Cell::new(false);
        let rewrite = || {
            if !rewritten.replace(true) {
                let other = tempfile::tempdir().unwrap();
                checkpoint::write(other.path(), &at(b"feed 1 at 000")).unwrap();
                let bytes = fs::read(checkpoint::path_for(other.path(), 7)).unwrap();
                fs::write(&path, bytes).unwrap();
            }
            true
        };
        copy_live(s, dst.path(), &mut || {
            rewrite();
            Ok(all_feeds(s))
        })
        .unwrap();
        assert_eq!(
            checkpoint::read(&dst.path().join("wal/0"))
                .unwrap()
                .unwrap(),
            at(b"feed 1 at 000")
        );
    }

    /// The same bytes written again over a checkpoint (as `FeedStore` does after clearing a
    /// feed with nothing logged since) are still seen as a change.
    #[test]
    fn a_checkpoint_written_again_unchanged_is_seen_as_changed() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        let shard = s.join("wal/0");
        fs::create_dir_all(&shard).unwrap();
        let cp = checkpoint::Checkpoint {
            next_lsn: 7,
            state: b"same".to_vec(),
        };
        checkpoint::write(&shard, &cp).unwrap();
        let path = checkpoint::path_for(&shard, 7);
        let calls = std::cell::Cell::new(0);
        copy_live(s, dst.path(), &mut || {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let bytes = fs::read(&path).unwrap();
                fs::write(&path, bytes).unwrap();
            }
            Ok(Default::default())
        })
        .unwrap();
        assert_eq!(calls.get(), 4, "two attempts");
    }

    /// A hold is seen by the shards (any process's, this one's included) while it lasts.
    #[test]
    fn a_hold_is_seen_while_it_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("wal/0");
        fs::create_dir_all(&shard).unwrap();
        assert!(!running(&shard));
        let h = hold(&dir.path().join("wal")).unwrap();
        let again = hold(&dir.path().join("wal")).unwrap();
        assert!(running(&shard));
        drop(h);
        assert!(running(&shard));
        drop(again);
        assert!(!running(&shard));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("wal").join(HOLD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    /// A trim cut between its two renames (or copied between them): the new data is in place
    /// and its meta still `.meta.trim`. The copy pairs the data with that meta, as opening the
    /// feed would, not with the old start time.
    #[test]
    fn a_trim_between_its_renames_is_copied_with_its_new_meta() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("phpfina")).unwrap();
        let dir = s.join("phpfina");
        crate::fixed::write_meta(&dir.join("1.meta"), 10, 1_000).unwrap();
        crate::fixed::write_meta(&dir.join("1.meta.trim"), 10, 1_050).unwrap();
        fs::write(dir.join("1.dat"), vec![1u8; 8]).unwrap();
        copy_live(s, dst.path(), &mut || Ok(all_feeds(s))).unwrap();
        let restored = crate::fixed::FixedFeed::open(&dst.path().join("phpfina"), 1).unwrap();
        assert_eq!(restored.meta().start_time, 1_050);
        // With the `.dat.trim` still there the trim had not replaced anything: the old meta.
        fs::write(dir.join("1.dat.trim"), vec![1u8; 4]).unwrap();
        let again = tempfile::tempdir().unwrap();
        copy_live(s, again.path(), &mut || Ok(all_feeds(s))).unwrap();
        let restored = crate::fixed::FixedFeed::open(&again.path().join("phpfina"), 1).unwrap();
        assert_eq!(restored.meta().start_time, 1_000);
    }

    #[test]
    fn paths_leaving_the_backup_are_refused() {
        assert!(check_relative(Path::new("phpfina/1.dat")).is_ok());
        assert!(check_relative(Path::new("../etc/passwd")).is_err());
        assert!(check_relative(Path::new("/etc/passwd")).is_err());
        assert!(check_relative(Path::new("phpfina/../../x")).is_err());
    }
}
