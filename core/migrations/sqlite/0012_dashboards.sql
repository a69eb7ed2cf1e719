-- emoncms's dashboard module (issue 19): each dashboard's settings and its content (the
-- designer's absolutely positioned widget boxes, as HTML), as emoncms stores them.
CREATE TABLE dashboards (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    userid          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    content         TEXT    NOT NULL DEFAULT '',
    height          INTEGER NOT NULL DEFAULT 600,
    name            TEXT    NOT NULL DEFAULT 'no name',
    alias           TEXT    NOT NULL DEFAULT '',
    description     TEXT    NOT NULL DEFAULT 'no description',
    main            INTEGER NOT NULL DEFAULT 0,
    public          INTEGER NOT NULL DEFAULT 0,
    published       INTEGER NOT NULL DEFAULT 0,
    showdescription INTEGER NOT NULL DEFAULT 0,
    backgroundcolor TEXT    NOT NULL DEFAULT 'EDF7FC',
    gridsize        INTEGER NOT NULL DEFAULT 20,
    fullscreen      INTEGER NOT NULL DEFAULT 0,
    feedmode        TEXT    NOT NULL DEFAULT 'feedid'
);
CREATE INDEX dashboards_userid ON dashboards(userid);
