-- Cluster membership and vshard ownership (cluster/src/lib.rs).
CREATE TABLE IF NOT EXISTS cluster_nodes (
    node_id    TEXT PRIMARY KEY,
    advertise  TEXT NOT NULL,
    -- Random per process start: tells a restarted node from a second process with the same id.
    instance   TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    heartbeat  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    draining   BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE IF NOT EXISTS vshard_leases (
    vshard  INTEGER PRIMARY KEY CHECK (vshard >= 0 AND vshard < 256),
    owner   TEXT,
    -- Raised by every acquisition: a shard's log records carry it, so a write by an earlier
    -- owner can be told apart.
    epoch   BIGINT NOT NULL DEFAULT 0,
    expires TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);

INSERT INTO vshard_leases (vshard) SELECT generate_series(0, 255) ON CONFLICT DO NOTHING;
