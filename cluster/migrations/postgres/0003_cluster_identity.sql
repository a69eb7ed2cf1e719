-- The cluster's identity and the settings every node must share: one row. The identity is
-- also written into the shared directory (`.ynni-cluster`), so that a node whose
-- `cluster.shared_dir` is not the others' (an empty mount point) refuses to start instead of
-- serving users from an empty directory.
CREATE TABLE cluster_meta (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    cluster_id    TEXT NOT NULL,
    secret_digest TEXT NOT NULL,
    lease_ms      BIGINT NOT NULL,
    created       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
