//! Errors of the storage crate.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("corrupt feed meta file {path}: {reason}")]
    CorruptMeta { path: PathBuf, reason: String },
    #[error("corrupt feed data file {path}: size {len} is not a multiple of {record} bytes")]
    BadDataSize {
        path: PathBuf,
        len: u64,
        record: u64,
    },
    /// emoncms's limit: a write may not pad more than 15,768,000 missing slots (5 years at 10 s).
    #[error("feed {id}: write would pad {padding} missing slots, more than the limit of {limit}")]
    PaddingLimit { id: u32, padding: u64, limit: u64 },
    #[error("feed {id} does not exist")]
    NoSuchFeed { id: u32 },
    #[error("feed {id} already exists")]
    FeedExists { id: u32 },
    #[error("write-ahead log {path}: {reason}")]
    CorruptWal { path: PathBuf, reason: String },
    #[error("checkpoint {path}: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },
    #[error("the write-ahead log writer has stopped")]
    WalClosed,
    #[error("the feed store stopped after a failed write; restart to recover from the log")]
    StoreFailed,
}

impl StorageError {
    /// Whether repeating the operation may succeed (a transient I/O condition), as opposed to a
    /// refused request or damaged files that need an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::StorageFull
            ),
            // A stopped store recovers by a restart: the client should try again later.
            StorageError::StoreFailed => true,
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Attaches the operation and path to an I/O error.
pub(crate) fn io_err(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(io::Error) -> StorageError + use<> {
    let path = path.to_path_buf();
    move |source| StorageError::Io { op, path, source }
}
