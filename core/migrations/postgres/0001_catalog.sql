-- The catalog on PostgreSQL, for a cluster (DESIGN §5): the SQLite schema of
-- migrations/sqlite/0001-0008 in one step, with PostgreSQL's types. Ids are BIGSERIAL, so
-- they are unique across every node; whole numbers are BIGINT (read as i64), flags BOOLEAN.
-- Column names follow emoncms's tables, as in SQLite; `processList` folds to `processlist`
-- here and is selected as "processList".

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    password      TEXT    NOT NULL,
    salt          TEXT,
    apikey_write  TEXT    NOT NULL UNIQUE,
    apikey_read   TEXT    NOT NULL UNIQUE,
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    uuid          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL DEFAULT 'UTC',
    language      TEXT    NOT NULL DEFAULT 'en_EN',
    gravatar      TEXT    NOT NULL DEFAULT '',
    name          TEXT    NOT NULL DEFAULT '',
    location      TEXT    NOT NULL DEFAULT '',
    bio           TEXT    NOT NULL DEFAULT '',
    tags          TEXT    NOT NULL DEFAULT '',
    startingpage  TEXT    NOT NULL DEFAULT 'feed/list',
    created       BIGINT  NOT NULL,
    lastlogin     BIGINT  NOT NULL DEFAULT 0,
    ha_discovery  BOOLEAN NOT NULL DEFAULT FALSE
);
-- Usernames are unique without regard to case, as in emoncms (SQLite: COLLATE NOCASE).
CREATE UNIQUE INDEX users_username ON users (lower(username));

CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    userid      BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created     BIGINT  NOT NULL,
    expires     BIGINT  NOT NULL
);
CREATE INDEX sessions_userid ON sessions(userid);

CREATE TABLE inputs (
    id           BIGSERIAL PRIMARY KEY,
    userid       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    nodeid       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    processList  TEXT    NOT NULL DEFAULT '',
    UNIQUE (userid, nodeid, name)
);
CREATE INDEX inputs_userid ON inputs(userid);

CREATE TABLE input_disable (
    userid  BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    time    BIGINT NOT NULL
);

CREATE TABLE feeds (
    id           BIGSERIAL PRIMARY KEY,
    userid       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    tag          TEXT    NOT NULL DEFAULT '',
    public       BOOLEAN NOT NULL DEFAULT FALSE,
    engine       BIGINT  NOT NULL,
    unit         TEXT    NOT NULL DEFAULT '',
    processList  TEXT    NOT NULL DEFAULT '',
    size         BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX feeds_userid ON feeds(userid);

CREATE TABLE devices (
    id           BIGSERIAL PRIMARY KEY,
    userid       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    nodeid       TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    description  TEXT    NOT NULL DEFAULT '',
    type         TEXT    NOT NULL DEFAULT '',
    devicekey    TEXT    NOT NULL UNIQUE,
    time         BIGINT,
    UNIQUE (userid, nodeid)
);
CREATE INDEX devices_userid ON devices(userid);
