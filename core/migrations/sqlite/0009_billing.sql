-- Hosted-service billing (issue 18): an append-only double-entry ledger in integer pence,
-- each user's plan, voucher codes and statement numbers. Amounts are signed: a debit is
-- positive, a credit negative, and the entries of one transaction sum to zero (checked by
-- the catalog before it inserts them; the triggers below refuse any later change).

CREATE TABLE ledger_transactions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unique: `accrual:<user>:<date>`, `topup:<reference>`, `voucher:<code>`, ...
    key            TEXT    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL,
    userid         INTEGER,
    -- The UTC day the transaction belongs to, YYYY-MM-DD.
    effective_date TEXT    NOT NULL,
    created        INTEGER NOT NULL,
    memo           TEXT    NOT NULL DEFAULT '',
    -- Accruals: the feeds charged for that day, and the plan's price per feed per year
    -- (pence) they were charged at.
    quantity       INTEGER NOT NULL DEFAULT 0,
    rate           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ledger_transactions_user ON ledger_transactions (userid, effective_date);
CREATE INDEX ledger_transactions_date ON ledger_transactions (effective_date);

CREATE TABLE ledger_entries (
    tx      INTEGER NOT NULL REFERENCES ledger_transactions(id),
    -- customer (per user), cash, revenue, promotions
    account TEXT    NOT NULL,
    userid  INTEGER,
    amount  INTEGER NOT NULL
);
CREATE INDEX ledger_entries_tx ON ledger_entries (tx);
CREATE INDEX ledger_entries_account ON ledger_entries (account, userid);

CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

-- A user without a row is on the configured default plan.
CREATE TABLE billing_plans (
    userid INTEGER PRIMARY KEY,
    plan   TEXT    NOT NULL
);

CREATE TABLE vouchers (
    code    TEXT    PRIMARY KEY,
    pence   INTEGER NOT NULL,
    memo    TEXT    NOT NULL DEFAULT '',
    created INTEGER NOT NULL
);

-- A statement's number is its row id, given the first time a month's statement is made.
CREATE TABLE statements (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    userid  INTEGER NOT NULL,
    month   TEXT    NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (userid, month)
);

-- Days whose accrual run finished for every user: a later run does not charge them again
-- (a user with no feeds that day has no row to show it was looked at).
CREATE TABLE billing_days (
    day       TEXT PRIMARY KEY,
    completed INTEGER NOT NULL
);
