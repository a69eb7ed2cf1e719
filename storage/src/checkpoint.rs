//! The checkpoint of a shard: the first LSN not yet reflected in the feed files, plus opaque
//! state bytes (process state, from the ingest issue on).
//!
//! ```text
//! wal/<shard>/checkpoint-<next_lsn, 20 digits>
//!     "YNNICKP1" | u64 LE next_lsn | u32 LE state length | state
//!     | u32 LE CRC-32 of everything before it
//! wal/<shard>/checkpoint    the same, as ynni named it before 2026-12-05 (still read)
//! ```
//!
//! Written to `<name>.tmp`, fsynced, renamed to its name, directory fsynced
//! ([`crate::atomic_file`]): a crash leaves the old or the new checkpoint, never a mix. The
//! older checkpoints are deleted after that, and [`read`] takes the one with the highest LSN.
//!
//! The LSN is in the name so that no checkpoint can ever take the place of a newer one. In a
//! cluster, a node that lost a shard's lease while paused between its last check of the lease
//! and the checkpoint's write (see `ingest::shard::fence`) still writes that checkpoint when it
//! resumes, after the new owner may have written newer ones and trimmed the log they cover.
//! Under one name it would replace them, and the next owner would find the log it must replay
//! gone; under its own LSN it is only an older checkpoint, ignored and deleted by the next.

use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomically;
use crate::error::{Result, StorageError, io_err};
use crate::wal::Lsn;

const MAGIC: &[u8; 8] = b"YNNICKP1";
const LEGACY: &str = "checkpoint";
const PREFIX: &str = "checkpoint-";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Records with a smaller LSN are fully in the feed files.
    pub next_lsn: Lsn,
    pub state: Vec<u8>,
}

/// The checkpoint files in `dir`: the LSN each is named for (none for the old name), newest
/// name first. Temporary files are not checkpoints.
pub fn files(dir: &Path) -> Result<Vec<(PathBuf, Option<Lsn>)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_err("listing", dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == LEGACY {
            out.push((dir.join(name), None));
        } else if let Some(lsn) = name.strip_prefix(PREFIX)
            && lsn.len() == 20
            && let Ok(lsn) = lsn.parse::<Lsn>()
        {
            out.push((dir.join(name), Some(lsn)));
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.1));
    Ok(out)
}

/// Reads the newest checkpoint in `dir`; `None` if there is none yet.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>> {
    let mut newest: Option<Checkpoint> = None;
    // The newest named file, and the old name's file if there is one: only the newest counts,
    // so older named files (a paused former owner's, one a crash kept from deletion) are not
    // read at all.
    let mut named_seen = false;
    for (path, named) in files(dir)? {
        if named.is_some() {
            if named_seen {
                continue;
            }
            named_seen = true;
        }
        let Some(cp) = read_file(&path)? else {
            // Deleted since the listing: a newer checkpoint replaced it, so start over.
            return read(dir);
        };
        if let Some(lsn) = named
            && cp.next_lsn != lsn
        {
            return Err(StorageError::CorruptCheckpoint {
                path,
                reason: format!("named for LSN {lsn} but holds {}", cp.next_lsn),
            });
        }
        if newest.as_ref().is_none_or(|n| cp.next_lsn > n.next_lsn) {
            newest = Some(cp);
        }
    }
    Ok(newest)
}

/// One checkpoint file; `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<Checkpoint>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", path)(e)),
    };
    let bad = |reason: &str| StorageError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    if bytes.len() < 8 + 8 + 4 + 4 || &bytes[..8] != MAGIC {
        return Err(bad("bad header"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    let next_lsn = u64::from_le_bytes(body[8..16].try_into().map_err(|_| bad("short"))?);
    let len = u32::from_le_bytes(body[16..20].try_into().map_err(|_| bad("short"))?) as usize;
    if body.len() != 20 + len {
        return Err(bad("state length mismatch"));
    }
    Ok(Some(Checkpoint {
        next_lsn,
        state: body[20..].to_vec(),
    }))
}

/// The file a checkpoint for `next_lsn` is written to.
pub fn path_for(dir: &Path, next_lsn: Lsn) -> PathBuf {
    dir.join(format!("{PREFIX}{next_lsn:020}"))
}

/// Writes `cp` atomically and durably beside the older checkpoints in `dir`, then deletes
/// those older than it (a failure to delete one is only logged: [`read`] ignores it).
pub fn write(dir: &Path, cp: &Checkpoint) -> Result<()> {
    let mut bytes = Vec::with_capacity(24 + cp.state.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&cp.next_lsn.to_le_bytes());
    bytes.extend_from_slice(&(cp.state.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&cp.state);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    write_atomically(&path_for(dir, cp.next_lsn), &bytes)?;
    for (path, named) in files(dir)? {
        let older = match named {
            Some(lsn) => lsn < cp.next_lsn,
            // The old name's file goes unless it is newer (or unreadable: kept for a look).
            None => matches!(read_file(&path), Ok(Some(old)) if old.next_lsn <= cp.next_lsn),
        };
        if older
            && let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not delete an older checkpoint");
        }
    }
    Ok(())
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
        let cp = Checkpoint {
            next_lsn: 42,
            state: b"state".to_vec(),
        };
        write(dir.path(), &cp).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(cp));
        let p = path_for(dir.path(), 42);
        let mut b = fs::read(&p).expect("read");
        b[10] ^= 1;
        fs::write(&p, b).expect("write");
        assert!(matches!(
            read(dir.path()),
            Err(StorageError::CorruptCheckpoint { .. })
        ));
    }

    #[test]
    fn an_older_checkpoint_written_late_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |n: Lsn| Checkpoint {
            next_lsn: n,
            state: format!("state {n}").into_bytes(),
        };
        // Written as before 2026-12-05: still read, and deleted by the next checkpoint.
        write(dir.path(), &at(5)).expect("write");
        fs::rename(path_for(dir.path(), 5), dir.path().join(LEGACY)).expect("rename");
        assert_eq!(read(dir.path()).expect("read"), Some(at(5)));
        write(dir.path(), &at(200)).expect("write");
        assert!(!dir.path().join(LEGACY).exists());
        // A former owner's checkpoint, written after the new owner's.
        write(dir.path(), &at(100)).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(at(200)));
        assert!(path_for(dir.path(), 200).exists(), "the newer one is kept");
        // The next checkpoint deletes every older one.
        write(dir.path(), &at(300)).expect("write");
        let names: Vec<_> = files(dir.path())
            .expect("list")
            .into_iter()
            .map(|(_, lsn)| lsn)
            .collect();
        assert_eq!(names, vec![Some(300)]);
        // An old-name file newer than what is written stays, and wins.
        fs::write(
            dir.path().join(LEGACY),
            fs::read(path_for(dir.path(), 300)).expect("read"),
        )
        .expect("write");
        write(dir.path(), &at(250)).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(at(300)));
        // A file whose name and contents disagree is damage.
        fs::copy(path_for(dir.path(), 300), path_for(dir.path(), 400)).expect("copy");
        assert!(matches!(
            read(dir.path()),
            Err(StorageError::CorruptCheckpoint { .. })
        ));
    }
}
