//! Feed storage: the data directory and, as they are built, the feed engines, the write-ahead
//! log and the buffers.

pub mod data_dir;

pub use data_dir::{DataDir, DataDirError};
