-- Accounts and browser sessions. Column names follow emoncms's `users` table where one exists,
-- so an import maps one to one.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT    NOT NULL,
    -- argon2 PHC string, or emoncms's legacy sha256 hex (then `salt` is set)
    password      TEXT    NOT NULL,
    salt          TEXT,
    apikey_write  TEXT    NOT NULL UNIQUE,
    apikey_read   TEXT    NOT NULL UNIQUE,
    admin         INTEGER NOT NULL DEFAULT 0,
    uuid          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL DEFAULT 'UTC',
    language      TEXT    NOT NULL DEFAULT 'en_EN',
    gravatar      TEXT    NOT NULL DEFAULT '',
    name          TEXT    NOT NULL DEFAULT '',
    location      TEXT    NOT NULL DEFAULT '',
    bio           TEXT    NOT NULL DEFAULT '',
    tags          TEXT    NOT NULL DEFAULT '',
    startingpage  TEXT    NOT NULL DEFAULT 'feed/list',
    created       INTEGER NOT NULL,
    lastlogin     INTEGER NOT NULL DEFAULT 0
);

-- Only a SHA-256 of each session token is stored, so a copy of the catalog opens no session.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    userid      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created     INTEGER NOT NULL,
    expires     INTEGER NOT NULL
);
CREATE INDEX sessions_userid ON sessions(userid);
