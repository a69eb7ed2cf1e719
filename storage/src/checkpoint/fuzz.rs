//! Checkpoint files: any bytes are read without panicking, and only a file exactly as
//! [`write`] makes it is accepted; every other is [`StorageError::CorruptCheckpoint`] (a crash
//! leaves the old or the new file, so anything else is damage). What is written is read back.

use std::fs;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{Checkpoint, MAGIC, read, write};
use crate::error::StorageError;

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The file `write` makes for `cp` (its format, from the module documentation).
fn encoded(cp: &Checkpoint) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&cp.next_lsn.to_le_bytes());
    bytes.extend_from_slice(&(cp.state.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&cp.state);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (any::<u64>(), vec(any::<u8>(), 0..64))
        .prop_map(|(next_lsn, state)| Checkpoint { next_lsn, state })
}

/// Reads `bytes` as the checkpoint file of a fresh directory.
fn read_bytes(
    dir: &Path,
    bytes: &[u8],
) -> Result<crate::error::Result<Option<Checkpoint>>, TestCaseError> {
    fs::write(dir.join(super::LEGACY), bytes).map_err(fail)?;
    Ok(read(dir))
}

/// Damage to a file.
#[derive(Debug, Clone)]
enum Damage {
    Flip(Index, u8),
    Truncate(Index),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| Damage::Flip(at, mask)),
        any::<Index>().prop_map(Damage::Truncate),
        vec(any::<u8>(), 1..16).prop_map(Damage::Append),
    ]
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Any bytes, a valid file with some bytes overwritten, or one whose state length is
    /// wrong under a correct checksum: no panic; the answer is a checkpoint only for a file
    /// exactly as `write` makes it, and an error naming damage otherwise.
    #[test]
    fn any_file_is_read_or_refused(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..64),
            (checkpoint(), any::<Index>(), vec(any::<u8>(), 1..12)).prop_map(|(cp, at, junk)| {
                let mut b = encoded(&cp);
                let start = at.index(b.len());
                let end = (start + junk.len()).min(b.len());
                b[start..end].copy_from_slice(&junk[..end - start]);
                b
            }),
            (checkpoint(), any::<u32>()).prop_map(|(cp, len)| {
                let mut b = encoded(&cp);
                b.truncate(b.len() - 4);
                b[16..20].copy_from_slice(&len.to_le_bytes());
                let crc = crc32fast::hash(&b);
                b.extend_from_slice(&crc.to_le_bytes());
                b
            }),
        ],
    ) {
        let dir = tempfile::tempdir().map_err(fail)?;
        match read_bytes(dir.path(), &bytes)? {
            Ok(Some(cp)) => prop_assert_eq!(encoded(&cp), bytes),
            Ok(None) => return Err(fail("a file that exists was read as no checkpoint")),
            Err(StorageError::CorruptCheckpoint { .. }) => {}
            Err(e) => return Err(fail(format!("unexpected error: {e}"))),
        }
    }

    /// Every change to a valid file is detected: the checksum covers every byte before it,
    /// and the length field must match the file.
    #[test]
    fn damaged_files_are_refused(cp in checkpoint(), damage in damage()) {
        let mut bytes = encoded(&cp);
        match &damage {
            Damage::Flip(at, mask) => {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
            Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            Damage::Append(junk) => bytes.extend_from_slice(junk),
        }
        let dir = tempfile::tempdir().map_err(fail)?;
        let outcome = read_bytes(dir.path(), &bytes)?;
        prop_assert!(
            matches!(outcome, Err(StorageError::CorruptCheckpoint { .. })),
            "{:?} was read as {:?}", damage, outcome.map_err(|e| e.to_string())
        );
    }
}

proptest! {
    // Each case writes and syncs a file.
    #![proptest_config(crate::proptest_config(64))]

    /// What `write` stores, `read` gives back, in the documented format.
    #[test]
    fn written_checkpoints_read_back(cp in checkpoint()) {
        let dir = tempfile::tempdir().map_err(fail)?;
        write(dir.path(), &cp).map_err(fail)?;
        prop_assert_eq!(fs::read(super::path_for(dir.path(), cp.next_lsn)).map_err(fail)?, encoded(&cp));
        prop_assert_eq!(read(dir.path()).map_err(fail)?, Some(cp));
    }
}
