-- emoncms's dashboard module: migrations/sqlite/0012_dashboards.sql with PostgreSQL's types.
CREATE TABLE dashboards (
    id              BIGSERIAL PRIMARY KEY,
    userid          BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    content         TEXT    NOT NULL DEFAULT '',
    height          BIGINT  NOT NULL DEFAULT 600,
    name            TEXT    NOT NULL DEFAULT 'no name',
    alias           TEXT    NOT NULL DEFAULT '',
    description     TEXT    NOT NULL DEFAULT 'no description',
    main            BOOLEAN NOT NULL DEFAULT FALSE,
    public          BOOLEAN NOT NULL DEFAULT FALSE,
    published       BOOLEAN NOT NULL DEFAULT FALSE,
    showdescription BOOLEAN NOT NULL DEFAULT FALSE,
    backgroundcolor TEXT    NOT NULL DEFAULT 'EDF7FC',
    gridsize        BIGINT  NOT NULL DEFAULT 20,
    fullscreen      BOOLEAN NOT NULL DEFAULT FALSE,
    feedmode        TEXT    NOT NULL DEFAULT 'feedid'
);
CREATE INDEX dashboards_userid ON dashboards(userid);
