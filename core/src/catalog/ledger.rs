//! The billing ledger's rows (issue 18): append-only, double-entry, integer pence.
//!
//! This module stores and reads; what a transaction means (plans, accruals, statements) is the
//! billing crate's. Two rules are kept here because they are about the rows themselves:
//!
//! - **Balanced or refused.** [`Catalog::post_ledger`] inserts a transaction only if it has
//!   entries and they sum to zero (debits positive, credits negative), all in one database
//!   transaction, so a half-written transaction cannot exist.
//! - **Once per key.** A transaction's key is unique; posting a key that exists inserts
//!   nothing and returns the existing transaction's id, so a retried or repeated operation
//!   (an accrual run twice, or on two nodes at once) counts once. Rows are never changed or
//!   deleted (the schema's triggers refuse it); a correction is a reversing transaction.

use super::on_db;
use super::{Catalog, CatalogError, now_secs};

/// One line of a transaction: a signed amount (debit positive) on an account.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerEntry {
    /// `customer` (one per user, `userid` set), `cash`, `revenue`, `promotions`.
    pub account: String,
    pub userid: Option<i64>,
    pub amount: i64,
}

/// A transaction to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLedgerTx {
    pub key: String,
    pub kind: String,
    pub userid: Option<i64>,
    /// The UTC day it belongs to, `YYYY-MM-DD`.
    pub effective_date: String,
    pub memo: String,
    /// Accruals: how many feeds the day was charged for.
    pub quantity: i64,
    /// Accruals: the price per feed per year (pence) they were charged at.
    pub rate: i64,
    pub entries: Vec<LedgerEntry>,
}

/// One change of a user's plan (`from_plan` `None`: the default plan).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PlanChange {
    pub at: i64,
    pub from_plan: Option<String>,
    pub to_plan: String,
}

/// A user's plan now and its recorded changes, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanHistory {
    /// `None`: the default plan.
    pub current: Option<String>,
    pub changes: Vec<PlanChange>,
}

impl PlanHistory {
    /// The plan in force just before `until` (Unix seconds): the one the last change before
    /// then chose; before the first recorded change, the plan that change left (changes are
    /// recorded only since they were kept); with no change since, the plan now. `None`: the
    /// default plan.
    pub fn plan_at(&self, until: i64) -> Option<&str> {
        match self.changes.iter().rev().find(|c| c.at < until) {
            Some(c) => Some(&c.to_plan),
            None => match self.changes.first() {
                Some(c) => c.from_plan.as_deref(),
                None => self.current.as_deref(),
            },
        }
    }
}

/// A stored transaction, with the amount it moved on its user's customer account.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerTx {
    pub id: i64,
    pub key: String,
    pub kind: String,
    pub userid: Option<i64>,
    pub effective_date: String,
    pub created: i64,
    pub memo: String,
    pub quantity: i64,
    pub rate: i64,
    /// The sum of this transaction's entries on the user's customer account (a top-up is
    /// negative: a credit to what the service owes the user).
    pub customer_amount: i64,
}

/// What posting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Inserted, with this id.
    New(i64),
    /// The key was already there: nothing inserted; the existing transaction's id.
    Existing(i64),
}

impl Posted {
    pub fn id(self) -> i64 {
        match self {
            Posted::New(id) | Posted::Existing(id) => id,
        }
    }
}

/// A transaction that cannot be posted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LedgerRefusal {
    #[error("a ledger transaction needs entries")]
    Empty,
    #[error("ledger transaction {key} does not balance: its entries sum to {sum}")]
    Unbalanced { key: String, sum: i64 },
}

impl NewLedgerTx {
    /// Whether this transaction may be posted.
    pub fn check(&self) -> Result<(), LedgerRefusal> {
        if self.entries.is_empty() {
            return Err(LedgerRefusal::Empty);
        }
        let sum = self
            .entries
            .iter()
            .try_fold(0i64, |s, e| s.checked_add(e.amount));
        match sum {
            Some(0) => Ok(()),
            sum => Err(LedgerRefusal::Unbalanced {
                key: self.key.clone(),
                sum: sum.unwrap_or(i64::MAX),
            }),
        }
    }
}

/// A query for [`LedgerTx`] rows: the transaction's columns and its customer amount, then
/// `$rest` (the conditions and order).
macro_rules! select_txs {
    ($($rest:literal),+) => {
        concat!(
            "SELECT t.id, t.key, t.kind, t.userid, t.effective_date, t.created, t.memo, ",
            "t.quantity, t.rate, CAST(COALESCE((SELECT SUM(e.amount) FROM ledger_entries e ",
            "WHERE e.tx = t.id AND e.account = 'customer'), 0) AS BIGINT) AS customer_amount ",
            "FROM ledger_transactions t ",
            $($rest),+
        )
    };
}

impl Catalog {
    /// Posts `tx` once (see the module doc). A transaction that does not balance is refused
    /// before anything is written.
    pub async fn post_ledger(
        &self,
        tx: &NewLedgerTx,
    ) -> Result<Result<Posted, LedgerRefusal>, CatalogError> {
        if let Err(refusal) = tx.check() {
            return Ok(Err(refusal));
        }
        let posted = on_db!(&self.db, p => {
            let mut t = p.begin().await?;
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO ledger_transactions \
                 (key, kind, userid, effective_date, created, memo, quantity, rate) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key) DO NOTHING RETURNING id",
            )
            .bind(&tx.key)
            .bind(&tx.kind)
            .bind(tx.userid)
            .bind(&tx.effective_date)
            .bind(now_secs())
            .bind(&tx.memo)
            .bind(tx.quantity)
            .bind(tx.rate)
            .fetch_optional(&mut *t)
            .await?;
            match inserted {
                Some((id,)) => {
                    for e in &tx.entries {
                        sqlx::query(
                            "INSERT INTO ledger_entries (tx, account, userid, amount) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(id)
                        .bind(&e.account)
                        .bind(e.userid)
                        .bind(e.amount)
                        .execute(&mut *t)
                        .await?;
                    }
                    t.commit().await?;
                    Posted::New(id)
                }
                None => {
                    t.rollback().await?;
                    let (id,): (i64,) =
                        sqlx::query_as("SELECT id FROM ledger_transactions WHERE key = $1")
                            .bind(&tx.key)
                            .fetch_one(p)
                            .await?;
                    Posted::Existing(id)
                }
            }
        });
        Ok(Ok(posted))
    }

    /// The transaction with this key, if posted.
    pub async fn ledger_tx(&self, key: &str) -> Result<Option<LedgerTx>, CatalogError> {
        let sql = select_txs!("WHERE t.key = $1");
        Ok(self.select_optional(sql, key).await?)
    }

    /// `userid`'s transactions with `from <= effective_date < to` (dates `YYYY-MM-DD`), in
    /// the order they were posted.
    pub async fn ledger_for_user(
        &self,
        userid: i64,
        from: &str,
        to: &str,
    ) -> Result<Vec<LedgerTx>, CatalogError> {
        let sql = select_txs!(
            "WHERE t.userid = $1 AND t.effective_date >= $2 AND t.effective_date < $3 ",
            "ORDER BY t.effective_date, t.id"
        );
        Ok(on_db!(&self.db, p => sqlx::query_as(sql)
            .bind(userid)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await)?)
    }

    /// Every transaction with `from <= effective_date < to`, in the order they were posted.
    pub async fn ledger_between(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<LedgerTx>, CatalogError> {
        let sql =
            select_txs!("WHERE t.effective_date >= $1 AND t.effective_date < $2 ORDER BY t.id");
        Ok(on_db!(&self.db, p => sqlx::query_as(sql)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await)?)
    }

    /// The entries of transaction `tx`.
    pub async fn ledger_entries(&self, tx: i64) -> Result<Vec<LedgerEntry>, CatalogError> {
        let sql = "SELECT account, userid, amount FROM ledger_entries WHERE tx = $1";
        Ok(self.select_all(sql, tx).await?)
    }

    /// The sum of every entry on each account (`customer` per user), for the books' check.
    pub async fn ledger_account_totals(
        &self,
    ) -> Result<Vec<(String, Option<i64>, i64)>, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_as(
            "SELECT account, userid, CAST(SUM(amount) AS BIGINT) FROM ledger_entries \
             GROUP BY account, userid ORDER BY account, userid",
        )
        .fetch_all(p)
        .await)?)
    }

    /// Each user's customer account total (debits minus credits: a user in credit has a
    /// negative total), for users with any entry.
    pub async fn customer_totals(&self) -> Result<Vec<(i64, i64)>, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_as(
            "SELECT userid, CAST(SUM(amount) AS BIGINT) FROM ledger_entries \
             WHERE account = 'customer' AND userid IS NOT NULL GROUP BY userid",
        )
        .fetch_all(p)
        .await)?)
    }

    /// `userid`'s plan, if one was set (otherwise the configured default applies).
    pub async fn billing_plan(&self, userid: i64) -> Result<Option<String>, CatalogError> {
        let row: Option<(String,)> = self
            .select_optional("SELECT plan FROM billing_plans WHERE userid = $1", userid)
            .await?;
        Ok(row.map(|(p,)| p))
    }

    /// Every plan that was set, by user.
    pub async fn billing_plans(&self) -> Result<Vec<(i64, String)>, CatalogError> {
        Ok(
            on_db!(&self.db, p => sqlx::query_as("SELECT userid, plan FROM billing_plans")
            .fetch_all(p)
            .await)?,
        )
    }

    /// Puts `userid` on `plan` from `at` (Unix seconds; the caller's now), and records the
    /// change (see [`Catalog::billing_plan_history`]). Changes of one user are made one at a
    /// time, each recorded as starting no earlier than the one before (a node whose clock is
    /// behind cannot put a change before the one it follows).
    pub async fn set_billing_plan(
        &self,
        userid: i64,
        plan: &str,
        at: i64,
    ) -> Result<(), CatalogError> {
        // SQLite: a write first takes the database's write lock for the transaction (a read
        // first could not be followed by a write if another connection wrote meanwhile).
        // PostgreSQL: a lock per user, held to the commit.
        let lock = match &self.db {
            super::Db::Sqlite(_) => "UPDATE billing_plans SET plan = plan WHERE userid = $1",
            super::Db::Postgres(_) => {
                "SELECT pg_advisory_xact_lock(hashtextextended('ynni.billing_plan.' || $1::text, 0))"
            }
        };
        on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            sqlx::query(lock).bind(userid).execute(&mut *tx).await?;
            let before: Option<(String,)> =
                sqlx::query_as("SELECT plan FROM billing_plans WHERE userid = $1")
                    .bind(userid)
                    .fetch_optional(&mut *tx)
                    .await?;
            let before = before.map(|(p,)| p);
            if before.as_deref() != Some(plan) {
                let last: Option<(i64,)> = sqlx::query_as(
                    "SELECT at FROM billing_plan_changes WHERE userid = $1 \
                     ORDER BY at DESC, id DESC LIMIT 1",
                )
                .bind(userid)
                .fetch_optional(&mut *tx)
                .await?;
                let at = last.map_or(at, |(last,)| at.max(last));
                sqlx::query(
                    "INSERT INTO billing_plans (userid, plan) VALUES ($1, $2) \
                     ON CONFLICT (userid) DO UPDATE SET plan = excluded.plan",
                )
                .bind(userid)
                .bind(plan)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO billing_plan_changes (userid, from_plan, to_plan, at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(userid)
                .bind(before)
                .bind(plan)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// `userid`'s plan now and every recorded change of it, oldest first: what
    /// [`PlanHistory::plan_at`] answers from. The plan now is read first, so a change made
    /// between the two reads is among the changes.
    pub async fn billing_plan_history(&self, userid: i64) -> Result<PlanHistory, CatalogError> {
        let current = self.billing_plan(userid).await?;
        let changes = on_db!(&self.db, p => sqlx::query_as::<_, PlanChange>(
            "SELECT at, from_plan, to_plan FROM billing_plan_changes WHERE userid = $1 \
             ORDER BY at, id",
        )
        .bind(userid)
        .fetch_all(p)
        .await)?;
        Ok(PlanHistory { current, changes })
    }

    /// Records a voucher code worth `pence`; false if the code exists.
    pub async fn create_voucher(
        &self,
        code: &str,
        pence: i64,
        memo: &str,
    ) -> Result<bool, CatalogError> {
        let inserted = on_db!(&self.db, p => sqlx::query(
            "INSERT INTO vouchers (code, pence, memo, created) VALUES ($1, $2, $3, $4)",
        )
        .bind(code)
        .bind(pence)
        .bind(memo)
        .bind(now_secs())
        .execute(p)
        .await
        .map(|r| r.rows_affected()));
        super::unless_unique_clash(inserted)
    }

    /// A voucher's value and memo.
    pub async fn voucher(&self, code: &str) -> Result<Option<(i64, String)>, CatalogError> {
        Ok(self
            .select_optional("SELECT pence, memo FROM vouchers WHERE code = $1", code)
            .await?)
    }

    /// The days in `from <= day < to` whose accrual run has finished.
    pub async fn billing_days_done(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<String>, CatalogError> {
        let rows: Vec<(String,)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT day FROM billing_days WHERE day >= $1 AND day < $2 ORDER BY day",
        )
        .bind(from)
        .bind(to)
        .fetch_all(p)
        .await)?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Records that the accrual run for `day` has finished for every user.
    pub async fn mark_billing_day(&self, day: &str) -> Result<(), CatalogError> {
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO billing_days (day, completed) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
        )
        .bind(day)
        .bind(now_secs())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The number of `userid`'s statement for `month` (`YYYY-MM`): given once, in the order
    /// statements are first made, and the same every time after. Numbers run on without a
    /// gap (invoices must): each is the highest before plus one, given in the INSERT that
    /// makes the statement; two nodes numbering at once compute the same number, one INSERT
    /// stands on the unique index and the other asks again.
    pub async fn statement_number(&self, userid: i64, month: &str) -> Result<i64, CatalogError> {
        for _ in 0..STATEMENT_NUMBER_TRIES {
            let found: Option<(Option<i64>,)> = on_db!(&self.db, p => sqlx::query_as(
                "SELECT number FROM statements WHERE userid = $1 AND month = $2",
            )
            .bind(userid)
            .bind(month)
            .fetch_optional(p)
            .await)?;
            match found {
                Some((Some(number),)) => return Ok(number),
                Some((None,)) => {
                    // Made by a node of a version that numbered by row id (during an upgrade
                    // of a cluster): numbered here, as a new one is.
                    let numbered = on_db!(&self.db, p => sqlx::query(
                        "UPDATE statements SET number = \
                         (SELECT COALESCE(MAX(number), 0) + 1 FROM statements) \
                         WHERE userid = $1 AND month = $2 AND number IS NULL",
                    )
                    .bind(userid)
                    .bind(month)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected()));
                    match numbered {
                        // Another node took that number first: ask again.
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
                        other => {
                            other?;
                        }
                    }
                    continue;
                }
                None => {}
            }
            on_db!(&self.db, p => sqlx::query(
                "INSERT INTO statements (userid, month, created, number) \
                 SELECT $1, $2, $3, next.n \
                 FROM (SELECT COALESCE(MAX(number), 0) + 1 AS n FROM statements) AS next \
                 WHERE NOT EXISTS \
                   (SELECT 1 FROM statements WHERE userid = $1 AND month = $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(userid)
            .bind(month)
            .bind(now_secs())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        }
        Err(CatalogError::NumberingBusy)
    }
}

/// How often [`Catalog::statement_number`] tries before it gives up (each lost try means
/// another node numbered a statement in between).
const STATEMENT_NUMBER_TRIES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{test_catalog, test_user};

    fn topup(key: &str, userid: i64, pence: i64) -> NewLedgerTx {
        NewLedgerTx {
            key: key.into(),
            kind: "topup".into(),
            userid: Some(userid),
            effective_date: "2026-01-02".into(),
            memo: String::new(),
            quantity: 0,
            rate: 0,
            entries: vec![
                LedgerEntry {
                    account: "cash".into(),
                    userid: None,
                    amount: pence,
                },
                LedgerEntry {
                    account: "customer".into(),
                    userid: Some(userid),
                    amount: -pence,
                },
            ],
        }
    }

    #[tokio::test]
    async fn a_key_posts_once_and_an_unbalanced_transaction_never() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        let first = cat.post_ledger(&topup("topup:1", u.id, 500)).await.unwrap();
        let Ok(Posted::New(id)) = first else {
            panic!("{first:?}")
        };
        let again = cat.post_ledger(&topup("topup:1", u.id, 999)).await.unwrap();
        assert_eq!(again, Ok(Posted::Existing(id)));
        let mut bad = topup("topup:2", u.id, 10);
        bad.entries[0].amount = 11;
        assert_eq!(
            cat.post_ledger(&bad).await.unwrap(),
            Err(LedgerRefusal::Unbalanced {
                key: "topup:2".into(),
                sum: 1
            })
        );
        assert_eq!(cat.customer_totals().await.unwrap(), vec![(u.id, -500)]);
        let rows = cat
            .ledger_for_user(u.id, "2026-01-01", "2026-02-01")
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].customer_amount, -500);
        assert_eq!(cat.ledger_entries(id).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn ledger_rows_cannot_be_changed_or_deleted() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        cat.post_ledger(&topup("topup:1", u.id, 500))
            .await
            .unwrap()
            .unwrap();
        let r = cat
            .execute1("UPDATE ledger_entries SET amount = $1", 1i64)
            .await;
        assert!(r.is_err(), "an update is refused");
        let r = cat
            .execute1("DELETE FROM ledger_transactions WHERE key = $1", "topup:1")
            .await;
        assert!(r.is_err(), "a delete is refused");
        assert_eq!(cat.customer_totals().await.unwrap(), vec![(u.id, -500)]);
    }

    #[tokio::test]
    async fn statement_numbers_are_given_once_in_order() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let b = test_user(&cat, "bobby").await;
        let n1 = cat.statement_number(a.id, "2026-01").await.unwrap();
        // Read again and again: the same number, and none used up by the reads.
        for _ in 0..3 {
            assert_eq!(cat.statement_number(a.id, "2026-01").await.unwrap(), n1);
        }
        // A statement an older version made (no number) is numbered when next asked for.
        on_db!(&cat.db, p => sqlx::query(
            "INSERT INTO statements (userid, month, created) VALUES ($1, '2025-12', 0)",
        )
        .bind(a.id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        assert_eq!(cat.statement_number(a.id, "2025-12").await.unwrap(), n1 + 1);
        let n1 = n1 + 1;
        let n2 = cat.statement_number(b.id, "2026-01").await.unwrap();
        assert_eq!(n2, n1 + 1);
        assert_eq!(cat.statement_number(a.id, "2026-02").await.unwrap(), n2 + 1);
        assert!(cat.create_voucher("HW-1", 1500, "hardware").await.unwrap());
        assert!(!cat.create_voucher("HW-1", 9, "again").await.unwrap());
        assert_eq!(
            cat.voucher("HW-1").await.unwrap(),
            Some((1500, "hardware".to_string()))
        );
    }
}
