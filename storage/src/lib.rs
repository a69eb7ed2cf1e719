//! Feed storage: the data directory, the emoncms-compatible feed engines, the write-ahead log,
//! and the in-memory buffers between them.

pub mod checkpoint;
pub mod data_dir;
pub mod error;
pub mod fixed;
pub mod query;
pub mod store;
pub mod variable;
pub mod wal;

pub use data_dir::{DataDir, DataDirError};
pub use error::StorageError;

/// emoncms's engine id of fixed-interval (PHPFina) feeds.
pub const ENGINE_FIXED: u8 = 5;
/// emoncms's engine id of variable-interval (PHPTimeSeries) feeds.
pub const ENGINE_VARIABLE: u8 = 2;
pub use store::{FeedStore, Point, StoreConfig};
