-- Devices (emoncms's device module): each has its own key, which may only post its node.
CREATE TABLE devices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    userid       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    nodeid       TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    description  TEXT    NOT NULL DEFAULT '',
    type         TEXT    NOT NULL DEFAULT '',
    devicekey    TEXT    NOT NULL UNIQUE,
    time         INTEGER,
    UNIQUE (userid, nodeid)
);
CREATE INDEX devices_userid ON devices(userid);
