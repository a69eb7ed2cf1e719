//! Copying a data directory's feed files and logs while the server writes them, so that the
//! copy restores every value acknowledged before the copy began.
//!
//! # Why this order is enough
//!
//! No lock is taken and no write waits. Per shard, the log's segments are copied first, then
//! its newest checkpoint (or its replacement, if a newer one replaced it meanwhile); the feed
//! files of every shard after that.
//!
//! - A value acknowledged before the copy began is in a log segment then. If its segment is
//!   still there when copied, the copy has it. If the segment was trimmed first, a checkpoint
//!   covering it was written first, and that checkpoint's flush had put the value in the
//!   feed files before; the feed files are copied later still, so they have it.
//! - The checkpoint copied is at least as new as any that trimmed a segment the copy lacks,
//!   so restored logs have no gap after their checkpoint ([`crate::wal`] refuses one), and
//!   everything below the checkpoint is in the copied feed files, which are newer still.
//! - A feed file copied while a flush writes it may mix old and new slots. Every slot it
//!   can lack is above the copied checkpoint and in the copied log, which the first start of
//!   the restored directory replays, as after a crash. The tail of a file is cut to whole
//!   records, as the engines do after a crash.
//! - A checkpoint rewritten under its own name while the copy ran (amended before a flush with
//!   what its replay must not read from the feed files, which the flush then changed) is
//!   copied again after the feed files, so the copy holds the amended one. The flush that
//!   follows an amend writes a newer checkpoint, which would delete the amended one before it
//!   could be copied again; the copy marks each checkpoint it copies and holds a
//!   [`checkpoint::KeepOlder`] throughout, so a marked checkpoint stays until a checkpoint
//!   written after the copy. (Without the amend,
//!   a process list's replay would read a feed it first read from its file after the copied
//!   checkpoint from the flushed file instead, and count that feed's energy since the
//!   checkpoint twice.)
//! - A fixed feed's `.dat` is copied with the `.meta` it was written under: the meta is read
//!   before and after the data, and the pair is copied again if either changed (a first flush
//!   setting the start time, a trim replacing both files). Between a trim's two renames the
//!   new `.dat`'s meta is the `.meta.trim` beside it, which is read instead.
//!
//! The `.levels` caches are not copied (they are rebuilt), nor are temporary files.

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

/// Copies the logs, checkpoints and feed files of the data directory `from` into `to`
/// (which must exist), in the order the module docs give. Only the feeds `wanted` accepts are
/// copied: the ones the copied catalog knows. A feed created after the catalog was copied
/// would otherwise leave files behind whose id the restored catalog hands to a new feed.
pub fn copy_live(from: &Path, to: &Path, wanted: &dyn Fn(u32) -> bool) -> Result<Vec<Copied>> {
    let mut out = Vec::new();
    let wal = Path::new("wal");
    let mut kept = checkpoint::keep_older(&from.join(wal))?;
    copy_if_present(from, to, &wal.join("workers"), None, &mut out)?;
    for shard in sorted_entries(&from.join(wal))? {
        let rel = wal.join(&shard);
        if !from.join(&rel).is_dir() {
            continue;
        }
        for name in sorted_entries(&from.join(&rel))? {
            if name.to_string_lossy().ends_with(".wal") {
                copy_if_present(from, to, &rel.join(&name), None, &mut out)?;
            }
        }
        copy_checkpoint(from, to, &rel, &mut kept, &mut out)?;
    }
    // The checkpoints as copied, to look at again once the feed files are copied.
    let checkpoints: Vec<(PathBuf, Option<(u64, u64)>)> = out
        .iter()
        .filter(|c| c.path.starts_with(wal) && c.path.to_string_lossy().contains("checkpoint"))
        .map(|c| (c.path.clone(), identity(&from.join(&c.path))))
        .collect();
    let fixed = Path::new(FIXED_DIR);
    for name in sorted_entries(&from.join(fixed))? {
        let name = name.to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".dat") {
            if !id.parse().is_ok_and(wanted) {
                continue;
            }
            copy_fixed(
                from,
                to,
                &fixed.join(&name),
                &fixed.join(format!("{id}.meta")),
                &mut out,
            )?;
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
            let rec = Some(crate::variable::RECORD);
            copy_if_present(from, to, &variable.join(&name), rec, &mut out)?;
        }
    }
    // A checkpoint rewritten under its own name meanwhile was amended before a flush (facts
    // about the feed files it covers, `FeedStore::amend_before_flush`), and the feed files
    // copied may be from after that flush: the amended one goes with them.
    for (rel, copied) in checkpoints {
        let now = identity(&from.join(&rel));
        if now.is_some() && now != copied {
            let _ = fs::remove_file(to.join(&rel));
            out.retain(|c| c.path != rel);
            copy_if_present(from, to, &rel, None, &mut out)?;
        }
    }
    Ok(out)
}

/// A file's device and inode, `None` if it is not there (a rename over it makes a new one).
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
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
/// instead: the copy must have a checkpoint at least as new as any that trimmed the log.
fn copy_checkpoint(
    from: &Path,
    to: &Path,
    rel: &Path,
    kept: &mut checkpoint::KeepOlder,
    out: &mut Vec<Copied>,
) -> Result<()> {
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
            kept.keep(&from.join(rel).join(name))?;
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
        let copied = copy_live(s, dst.path(), &|id| id < 4).unwrap();
        let got: Vec<(String, u64)> = copied
            .iter()
            .map(|c| (c.path.display().to_string(), c.bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("wal/workers".to_string(), 2),
                ("wal/0/00000000000000000000.wal".into(), 100),
                ("wal/0/checkpoint".into(), 30),
                ("wal/1/checkpoint-00000000000000000007".into(), 30),
                ("phpfina/1.dat".into(), 40),
                ("phpfina/1.meta".into(), 16),
                ("phptimeseries/feed_2.MYD".into(), 27),
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
        // `wanted` is asked while the feed files are copied: the amend happens then.
        let amend = || {
            let tmp = cp.with_extension("tmp");
            fs::write(&tmp, b"amended").unwrap();
            fs::rename(&tmp, &cp).unwrap();
            true
        };
        copy_live(s, dst.path(), &|_| amend()).unwrap();
        assert_eq!(
            fs::read(dst.path().join("wal/0/checkpoint-00000000000000000007")).unwrap(),
            b"amended"
        );
    }

    /// A checkpoint amended while the feed files are copied and then replaced by a newer one
    /// (the flush after an amend): the copy holds the amended one, not the one it first
    /// copied, and the source keeps the replaced checkpoints only while the copy runs.
    #[test]
    fn a_checkpoint_amended_then_replaced_during_the_copy_is_copied_amended() {
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
        fs::create_dir_all(s.join("phpfina")).unwrap();
        crate::fixed::write_meta(&s.join("phpfina/1.meta"), 10, 1_000).unwrap();
        fs::write(s.join("phpfina/1.dat"), [0u8; 8]).unwrap();
        let flushed = std::cell::Cell::new(false);
        // `wanted` is asked while the feed files are copied: the amend, the flush and the
        // newer checkpoint happen then.
        let flush = || {
            if !flushed.replace(true) {
                checkpoint::write(&shard, &at(7, b"amended")).unwrap();
                checkpoint::write(&shard, &at(9, b"newer")).unwrap();
            }
            true
        };
        copy_live(s, dst.path(), &|_| flush()).unwrap();
        let copied = checkpoint::read(&dst.path().join("wal/0"))
            .unwrap()
            .unwrap();
        assert_eq!(copied, at(7, b"amended"));
        // The copy is over: the next checkpoint deletes the ones it replaced, and the marks.
        assert_eq!(checkpoint::files(&shard).unwrap().len(), 2);
        checkpoint::write(&shard, &at(11, b"after")).unwrap();
        assert_eq!(checkpoint::files(&shard).unwrap().len(), 1);
        assert_eq!(fs::read_dir(&shard).unwrap().count(), 1);
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
        copy_live(s, dst.path(), &|_| true).unwrap();
        let restored = crate::fixed::FixedFeed::open(&dst.path().join("phpfina"), 1).unwrap();
        assert_eq!(restored.meta().start_time, 1_050);
        // With the `.dat.trim` still there the trim had not replaced anything: the old meta.
        fs::write(dir.join("1.dat.trim"), vec![1u8; 4]).unwrap();
        let again = tempfile::tempdir().unwrap();
        copy_live(s, again.path(), &|_| true).unwrap();
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
