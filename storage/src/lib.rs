//! Feed storage: the data directory, the emoncms-compatible feed engines, the write-ahead log,
//! and the in-memory buffers between them.

pub mod atomic_file;
pub mod checkpoint;
pub mod data_dir;
pub mod emoncms_files;
pub mod engine;
pub mod error;
pub mod fixed;
pub mod query;
pub mod store;
pub mod variable;
pub mod wal;

pub use data_dir::{DataDir, DataDirError};
pub use error::StorageError;

pub use engine::{Engine, Storage};
/// emoncms's engine id of fixed-interval (PHPFina) feeds.
pub const ENGINE_FIXED: u8 = Engine::Fixed as u8;
/// emoncms's engine id of variable-interval (PHPTimeSeries) feeds.
pub const ENGINE_VARIABLE: u8 = Engine::Variable as u8;
pub use store::{FeedStore, Point, StoreConfig};

/// The configuration of this crate's property tests (the fuzz targets run as unit tests):
/// `cases` per property, chosen so that each runs in well under a few seconds in a debug
/// build, unless `PROPTEST_CASES` asks for more (or fewer), e.g. for a longer run by hand.
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::Config;
    // `Config::default()` reads `PROPTEST_CASES`; `with_cases` would override it.
    if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default()
    } else {
        Config::with_cases(cases)
    }
}
