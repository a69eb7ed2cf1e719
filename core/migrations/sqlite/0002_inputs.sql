-- Inputs, with emoncms's column names (`processList` included) so imports map one to
-- one. Input last values live with the shard that owns the user (checkpointed with the data),
-- not here.
CREATE TABLE inputs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    userid       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    nodeid       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    processList  TEXT    NOT NULL DEFAULT '',
    UNIQUE (userid, nodeid, name)
);
CREATE INDEX inputs_userid ON inputs(userid);

-- Users who switched automatic input creation off (emoncms's `input_disable`).
CREATE TABLE input_disable (
    userid  INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    time    INTEGER NOT NULL
);
