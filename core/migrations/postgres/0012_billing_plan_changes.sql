-- Each change of a user's plan, so that a day or a month is charged with the plan it was on:
-- a month's overage is settled days after the month ends, and a change in those days must
-- not reprice it. `from_plan` NULL: the configured default plan (the user had no row).
CREATE TABLE billing_plan_changes (
    id        BIGSERIAL PRIMARY KEY,
    userid    BIGINT NOT NULL,
    from_plan TEXT,
    to_plan   TEXT   NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX billing_plan_changes_user ON billing_plan_changes (userid, at);
