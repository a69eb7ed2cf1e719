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
    /// A feed file stores times as u32 unix seconds; a source point outside that cannot be
    /// written to one.
    #[error("{path}: time {time} is outside the range a feed file can hold (0 to 4294967295)")]
    TimeOutOfRange { path: PathBuf, time: i64 },
    #[error("write-ahead log {path}: {reason}")]
    CorruptWal { path: PathBuf, reason: String },
    /// Writing or syncing the write-ahead log failed (a full disk among others). The log is
    /// cut back to its last durable record, so the failed records are not in it and the next
    /// append may succeed (see `wal`'s "Write failures").
    #[error("write-ahead log {path}: {op} failed: {source}")]
    WalIo {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("a write-ahead log record of {len} bytes is larger than the limit of {limit}")]
    RecordTooLarge { len: usize, limit: usize },
    #[error("checkpoint {path}: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },
    #[error("the write-ahead log writer has stopped")]
    WalClosed,
    #[error("the feed store stopped after a failed write; restart to recover from the log")]
    StoreFailed,
    /// Replaying a record needed a service outside the storage (the catalog) that failed;
    /// the log and the files are fine, and opening again later may succeed.
    #[error("replaying record {lsn}: {reason}")]
    ReplayFailed { lsn: u64, reason: String },
    /// Cluster mode: this node's lease on the shard has ended, so it may not write for it
    /// (another node takes it over; the client retries there).
    #[error("this server no longer holds the shard's lease")]
    Fenced,
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
            // Nothing of the failed records is in the log, which takes the next append.
            StorageError::WalIo { .. } => true,
            // A stopped store recovers by a restart: the client should try again later.
            StorageError::StoreFailed => true,
            StorageError::Fenced => true,
            StorageError::ReplayFailed { .. } => true,
            _ => false,
        }
    }

    /// The disk (or the file system's space) is full.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } | StorageError::WalIo { source, .. } => {
                source.kind() == io::ErrorKind::StorageFull
            }
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
