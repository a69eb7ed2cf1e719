-- Feeds, with emoncms's column names. The data lives in the engines' files; last values live
-- with the shard that owns the user.
CREATE TABLE feeds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    userid       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    tag          TEXT    NOT NULL DEFAULT '',
    public       INTEGER NOT NULL DEFAULT 0,
    engine       INTEGER NOT NULL,
    unit         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX feeds_userid ON feeds(userid);
