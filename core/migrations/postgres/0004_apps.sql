-- emoncms's app module and read-only share links: migrations/sqlite/0011_apps.sql with
-- PostgreSQL's types.
CREATE TABLE apps (
    id      BIGSERIAL PRIMARY KEY,
    userid  BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    app     TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    public  BOOLEAN NOT NULL DEFAULT FALSE,
    config  TEXT    NOT NULL DEFAULT '{}',
    UNIQUE (userid, name)
);
CREATE INDEX apps_userid ON apps(userid);

CREATE TABLE shares (
    id         BIGSERIAL PRIMARY KEY,
    userid     BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT    NOT NULL UNIQUE,
    label      TEXT    NOT NULL DEFAULT '',
    kind       TEXT    NOT NULL,
    app        BIGINT,
    feeds      TEXT    NOT NULL DEFAULT '',
    created    BIGINT  NOT NULL,
    expires    BIGINT  NOT NULL DEFAULT 0,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX shares_userid ON shares(userid);
