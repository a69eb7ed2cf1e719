//! What ingest reports through the `metrics` facade (a no-op unless the server installed a
//! recorder).

use metrics::{describe_counter, describe_gauge};

/// Input values made durable, by the way they came (`source` = `http` or `mqtt`).
pub const VALUES: &str = "ynni_values_ingested_total";
/// Jobs (submissions, reads, feed changes) a shard worker found waiting when it last woke
/// (`worker` = its thread's number).
pub const QUEUE_DEPTH: &str = "ynni_shard_queue_depth";
/// Submissions refused by a limit (`reason` = `node_limit`, `input_limit`, `busy`, ...).
pub const REFUSED: &str = "ynni_ingest_refused_total";

/// Gives each metric above its help text.
pub fn describe() {
    describe_counter!(
        VALUES,
        "Input values made durable, by source (http or mqtt)"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Jobs waiting for a shard worker when it last took its queue"
    );
    describe_counter!(
        REFUSED,
        "Submissions refused before they were logged, by reason"
    );
}

/// Counts `e` as a refusal if it is one (a limit, or a full queue), and gives it back.
pub(crate) fn refused(e: crate::shard::IngestError) -> crate::shard::IngestError {
    if e.is_limit() || matches!(e, crate::shard::IngestError::Busy) {
        metrics::counter!(REFUSED, "reason" => e.reason()).increment(1);
    }
    e
}

/// A label for `worker`'s gauges.
pub(crate) fn worker_label(kind: &str, n: usize) -> String {
    format!("{kind}-{n}")
}
