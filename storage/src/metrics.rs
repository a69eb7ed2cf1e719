//! What the storage engine reports through the `metrics` facade. Recording costs nothing
//! unless the server installed a recorder (`[http] metrics_token` set).

use metrics::{Unit, describe_counter, describe_histogram};

/// Seconds each write-ahead-log group took to write and sync.
pub const WAL_SYNC_SECONDS: &str = "ynni_wal_sync_duration_seconds";
/// Bytes appended to write-ahead logs (framing included).
pub const WAL_BYTES: &str = "ynni_wal_written_bytes_total";
/// Flushes of a shard's buffered points to the feed files.
pub const FLUSHES: &str = "ynni_feed_flushes_total";
/// Seconds each flush took, checkpoint included.
pub const FLUSH_SECONDS: &str = "ynni_feed_flush_duration_seconds";
/// Points written to feed files by flushes.
pub const FLUSHED_POINTS: &str = "ynni_feed_flushed_points_total";

/// Gives each metric above its help text and unit.
pub fn describe() {
    describe_histogram!(
        WAL_SYNC_SECONDS,
        Unit::Seconds,
        "Time to write and fsync one group of write-ahead-log records"
    );
    describe_counter!(
        WAL_BYTES,
        Unit::Bytes,
        "Bytes appended to the write-ahead logs"
    );
    describe_counter!(FLUSHES, "Flushes of buffered points to the feed files");
    describe_histogram!(
        FLUSH_SECONDS,
        Unit::Seconds,
        "Time one flush took, checkpoint and log trim included"
    );
    describe_counter!(
        FLUSHED_POINTS,
        "Points written to the feed files by flushes"
    );
}
