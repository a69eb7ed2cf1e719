-- Usage per user and UTC day (issue 18). The shard workers write the counts of what they
-- handled (values received over HTTP and MQTT, points written to feeds) as absolute totals,
-- again after every checkpoint, so a replay after a crash rewrites the same numbers; the daily
-- accrual writes what existed (feeds, inputs, bytes stored); refusals are added by the nodes
-- that refused.
CREATE TABLE usage_days (
    userid      INTEGER NOT NULL,
    day         TEXT    NOT NULL,
    http_values INTEGER NOT NULL DEFAULT 0,
    mqtt_values INTEGER NOT NULL DEFAULT 0,
    points      INTEGER NOT NULL DEFAULT 0,
    feeds       INTEGER NOT NULL DEFAULT 0,
    inputs      INTEGER NOT NULL DEFAULT 0,
    bytes       INTEGER NOT NULL DEFAULT 0,
    refusals    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (userid, day)
);
CREATE INDEX usage_days_day ON usage_days (day);
