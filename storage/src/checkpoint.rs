//! The checkpoint of a shard: the first LSN not yet reflected in the feed files, plus opaque
//! state bytes (process state, from the ingest issue on).
//!
//! ```text
//! wal/<shard>/checkpoint   "YNNICKP1" | u64 LE next_lsn | u32 LE state length | state
//!                          | u32 LE CRC-32 of everything before it
//! ```
//!
//! Written to `checkpoint.tmp`, fsynced, renamed over `checkpoint`, directory fsynced
//! ([`crate::atomic_file`]): a crash leaves the old or the new checkpoint, never a mix.

use std::fs;
use std::path::Path;

use crate::atomic_file::write_atomically;
use crate::error::{Result, StorageError, io_err};
use crate::wal::Lsn;

const MAGIC: &[u8; 8] = b"YNNICKP1";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Records with a smaller LSN are fully in the feed files.
    pub next_lsn: Lsn,
    pub state: Vec<u8>,
}

/// Reads the checkpoint in `dir`; `None` if there is none yet.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join("checkpoint");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    let bad = |reason: &str| StorageError::CorruptCheckpoint {
        path: path.clone(),
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

/// Replaces the checkpoint in `dir` atomically and durably.
pub fn write(dir: &Path, cp: &Checkpoint) -> Result<()> {
    let mut bytes = Vec::with_capacity(24 + cp.state.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&cp.next_lsn.to_le_bytes());
    bytes.extend_from_slice(&(cp.state.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&cp.state);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    write_atomically(&dir.join("checkpoint"), &bytes)
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
        let p = dir.path().join("checkpoint");
        let mut b = fs::read(&p).expect("read");
        b[10] ^= 1;
        fs::write(&p, b).expect("write");
        assert!(matches!(
            read(dir.path()),
            Err(StorageError::CorruptCheckpoint { .. })
        ));
    }
}
