//! Feed storage: the data directory, the emoncms-compatible feed engines, the write-ahead log,
//! and the in-memory buffers between them.

pub mod atomic_file;
pub mod backup;
pub mod checkpoint;
pub mod data_dir;
pub mod emoncms_files;
pub mod engine;
pub mod error;
pub mod fixed;
pub mod huge_pages;
pub mod levels;
pub mod metrics;
pub mod php_time;
pub mod prefetch;
pub mod query;
pub mod store;
pub mod variable;
pub mod wal;

pub use data_dir::{DataDir, DataDirError, FIXED_DIR, VARIABLE_DIR};
pub use error::StorageError;

pub use engine::{Engine, Storage};
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
