-- Usage per user and UTC day: migrations/sqlite/0010_usage.sql with PostgreSQL's types.
CREATE TABLE usage_days (
    userid      BIGINT NOT NULL,
    day         TEXT   NOT NULL,
    http_values BIGINT NOT NULL DEFAULT 0,
    mqtt_values BIGINT NOT NULL DEFAULT 0,
    points      BIGINT NOT NULL DEFAULT 0,
    feeds       BIGINT NOT NULL DEFAULT 0,
    inputs      BIGINT NOT NULL DEFAULT 0,
    bytes       BIGINT NOT NULL DEFAULT 0,
    refusals    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (userid, day)
);
CREATE INDEX usage_days_day ON usage_days (day);
