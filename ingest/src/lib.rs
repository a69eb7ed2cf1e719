//! Ingest: decoders that turn MQTT messages and HTTP posts into input batches, the shard
//! router, the per-shard workers and the process-list engine (see DESIGN.md §1).
//!
//! Decoders ([`decode`]) for every emoncms input form, the process-list engine ([`process`]),
//! and the shard router and workers ([`shard`]).

pub mod batch;
pub mod decode;
pub mod metrics;
pub mod number;
pub mod process;
pub mod shard;
pub mod submit;

pub use batch::{Decoded, Value};

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
