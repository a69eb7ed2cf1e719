-- Hosted-service billing: migrations/sqlite/0009_billing.sql with PostgreSQL's types. One
-- ledger for the whole cluster, so an accrual run on two nodes charges once (unique key).

CREATE TABLE ledger_transactions (
    id             BIGSERIAL PRIMARY KEY,
    key            TEXT    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL,
    userid         BIGINT,
    effective_date TEXT    NOT NULL,
    created        BIGINT  NOT NULL,
    memo           TEXT    NOT NULL DEFAULT '',
    quantity       BIGINT  NOT NULL DEFAULT 0,
    rate           BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX ledger_transactions_user ON ledger_transactions (userid, effective_date);
CREATE INDEX ledger_transactions_date ON ledger_transactions (effective_date);

CREATE TABLE ledger_entries (
    tx      BIGINT  NOT NULL REFERENCES ledger_transactions(id),
    account TEXT    NOT NULL,
    userid  BIGINT,
    amount  BIGINT  NOT NULL
);
CREATE INDEX ledger_entries_tx ON ledger_entries (tx);
CREATE INDEX ledger_entries_account ON ledger_entries (account, userid);

CREATE FUNCTION ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE billing_plans (
    userid BIGINT PRIMARY KEY,
    plan   TEXT   NOT NULL
);

CREATE TABLE vouchers (
    code    TEXT   PRIMARY KEY,
    pence   BIGINT NOT NULL,
    memo    TEXT   NOT NULL DEFAULT '',
    created BIGINT NOT NULL
);

CREATE TABLE statements (
    id      BIGSERIAL PRIMARY KEY,
    userid  BIGINT NOT NULL,
    month   TEXT   NOT NULL,
    created BIGINT NOT NULL,
    UNIQUE (userid, month)
);

-- Days whose accrual run finished for every user: a later run does not charge them again
-- (a user with no feeds that day has no row to show it was looked at).
CREATE TABLE billing_days (
    day       TEXT PRIMARY KEY,
    completed BIGINT NOT NULL
);
