-- emoncms's app module (issue 19): each user's app instances (My Electric, My Solar, ...),
-- their feed mapping and settings as one flat JSON object, as emoncms stores them.
CREATE TABLE apps (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    userid  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    app     TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    public  INTEGER NOT NULL DEFAULT 0,
    config  TEXT    NOT NULL DEFAULT '{}',
    UNIQUE (userid, name)
);
CREATE INDEX apps_userid ON apps(userid);

-- Read-only share links: a token (its SHA-256 kept here) that reads only the feeds it names
-- (or those of one app), until it ends or is revoked.
CREATE TABLE shares (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    userid     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT    NOT NULL UNIQUE,
    label      TEXT    NOT NULL DEFAULT '',
    -- 'feeds' or 'app'
    kind       TEXT    NOT NULL,
    app        INTEGER,
    -- 'feeds': the feed ids, comma-separated
    feeds      TEXT    NOT NULL DEFAULT '',
    created    INTEGER NOT NULL,
    -- unix seconds; 0: no end
    expires    INTEGER NOT NULL DEFAULT 0,
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX shares_userid ON shares(userid);
