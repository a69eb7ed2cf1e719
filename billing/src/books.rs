//! The transactions billing posts, each built balanced (entries summing to zero, debits
//! positive) with the key that makes it count once.
//!
//! | transaction | key                    | debit            | credit           |
//! |-------------|------------------------|------------------|------------------|
//! | top-up      | `topup:<reference>`    | cash             | customer (user)  |
//! | voucher     | `voucher:<code>`       | promotions       | customer (user)  |
//! | refund      | `refund:<reference>`   | customer (user)  | cash             |
//! | accrual     | `accrual:<user>:<day>` | customer (user)  | revenue          |
//! | overage     | `overage:<user>:<YYYY-MM>` | customer (user) | revenue       |
//! | reversal    | `reverse:<key>`        | each entry of the original, negated |
//!
//! A user's balance is what the service owes them: the negated total of their customer
//! account (credits are negative).

use chrono::NaiveDate;
use ynni_core::catalog::{LedgerEntry, LedgerTx, NewLedgerTx};

pub const CUSTOMER: &str = "customer";
pub const CASH: &str = "cash";
pub const REVENUE: &str = "revenue";
pub const PROMOTIONS: &str = "promotions";

pub const TOPUP: &str = "topup";
pub const VOUCHER: &str = "voucher";
pub const REFUND: &str = "refund";
pub const ACCRUAL: &str = "accrual";
pub const REVERSAL: &str = "reversal";
pub const OVERAGE: &str = "overage";

fn entry(account: &str, userid: Option<i64>, amount: i64) -> LedgerEntry {
    LedgerEntry {
        account: account.into(),
        userid,
        amount,
    }
}

/// What a transaction is, apart from its entries.
struct Head<'a> {
    key: String,
    kind: &'a str,
    userid: i64,
    date: NaiveDate,
    memo: String,
}

/// Moves `pence` from `credit` to `debit`.
fn transfer(
    head: Head<'_>,
    debit: (&str, Option<i64>),
    credit: (&str, Option<i64>),
    pence: i64,
) -> NewLedgerTx {
    NewLedgerTx {
        key: head.key,
        kind: head.kind.into(),
        userid: Some(head.userid),
        effective_date: head.date.to_string(),
        memo: head.memo,
        quantity: 0,
        rate: 0,
        entries: vec![
            entry(debit.0, debit.1, pence),
            entry(credit.0, credit.1, -pence),
        ],
    }
}

pub fn topup(userid: i64, pence: i64, reference: &str, date: NaiveDate) -> NewLedgerTx {
    transfer(
        Head {
            key: format!("topup:{reference}"),
            kind: TOPUP,
            userid,
            date,
            memo: format!("Top-up {reference}"),
        },
        (CASH, None),
        (CUSTOMER, Some(userid)),
        pence,
    )
}

pub fn voucher(userid: i64, pence: i64, code: &str, memo: &str, date: NaiveDate) -> NewLedgerTx {
    let memo = if memo.is_empty() {
        format!("Voucher {code}")
    } else {
        format!("Voucher {code}: {memo}")
    };
    transfer(
        Head {
            key: format!("voucher:{code}"),
            kind: VOUCHER,
            userid,
            date,
            memo,
        },
        (PROMOTIONS, None),
        (CUSTOMER, Some(userid)),
        pence,
    )
}

pub fn refund(userid: i64, pence: i64, reference: &str, date: NaiveDate) -> NewLedgerTx {
    transfer(
        Head {
            key: format!("refund:{reference}"),
            kind: REFUND,
            userid,
            date,
            memo: format!("Refund {reference}"),
        },
        (CUSTOMER, Some(userid)),
        (CASH, None),
        pence,
    )
}

/// The cash `history` (one user's transactions) paid in: top-ups less refunds, either
/// reversed counting as not made. Voucher credit is not cash: a refund may not pay it out.
pub fn cash_paid_in(history: &[LedgerTx]) -> i64 {
    let cash_key = |key: &str| key.starts_with("topup:") || key.starts_with("refund:");
    history
        .iter()
        .filter(|t| {
            t.kind == TOPUP
                || t.kind == REFUND
                || (t.kind == REVERSAL && t.key.strip_prefix("reverse:").is_some_and(cash_key))
        })
        .map(|t| -t.customer_amount)
        .sum()
}

/// The charge for `date`: `feeds` feeds at `rate` pence per feed per year (and the monthly
/// fee, included in `pence`, on the first of a month).
pub fn accrual(
    userid: i64,
    date: NaiveDate,
    pence: i64,
    feeds: i64,
    rate: i64,
    fee: i64,
) -> NewLedgerTx {
    let memo = if fee > 0 {
        format!("{feeds} feed(s) at {rate}p a year, and the month's fee of {fee}p")
    } else {
        format!("{feeds} feed(s) at {rate}p a year")
    };
    let mut tx = transfer(
        Head {
            key: accrual_key(userid, date),
            kind: ACCRUAL,
            userid,
            date,
            memo,
        },
        (CUSTOMER, Some(userid)),
        (REVENUE, None),
        pence,
    );
    tx.quantity = feeds;
    tx.rate = rate;
    tx
}

/// The charge for what `month` (`YYYY-MM`, ending on `last_day`) used past the plan's
/// allowances.
/// The key of `userid`'s overage charge for `month` (`YYYY-MM`): one per month.
pub fn overage_key(userid: i64, month: &str) -> String {
    format!("overage:{userid}:{month}")
}

pub fn overage(
    userid: i64,
    month: &str,
    last_day: NaiveDate,
    pence: i64,
    memo: String,
) -> NewLedgerTx {
    transfer(
        Head {
            key: overage_key(userid, month),
            kind: OVERAGE,
            userid,
            date: last_day,
            memo,
        },
        (CUSTOMER, Some(userid)),
        (REVENUE, None),
        pence,
    )
}

pub fn accrual_key(userid: i64, date: NaiveDate) -> String {
    format!("accrual:{userid}:{date}")
}

/// Undoes `original` (whose entries are `entries`) on `date`.
pub fn reversal(original: &LedgerTx, entries: &[LedgerEntry], date: NaiveDate) -> NewLedgerTx {
    NewLedgerTx {
        key: format!("reverse:{}", original.key),
        kind: REVERSAL.into(),
        userid: original.userid,
        effective_date: date.to_string(),
        memo: format!("Reverses {}", original.key),
        quantity: 0,
        rate: 0,
        entries: entries
            .iter()
            .map(|e| entry(&e.account, e.userid, -e.amount))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every transaction billing builds balances, whatever the amounts.
        #[test]
        fn every_transaction_balances(user in 1i64..1_000_000, pence in 0i64..1_000_000_000,
                                      feeds in 0i64..10_000, day in 0u32..3650) {
            let date = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(day.into());
            for tx in [
                topup(user, pence, "r1", date),
                voucher(user, pence, "C1", "", date),
                refund(user, pence, "r2", date),
                accrual(user, date, pence, feeds, 100, 0),
            ] {
                prop_assert_eq!(tx.check(), Ok(()));
                let stored = LedgerTx {
                    id: 1, key: tx.key.clone(), kind: tx.kind.clone(), userid: tx.userid,
                    effective_date: tx.effective_date.clone(), created: 0, memo: String::new(),
                    quantity: 0, rate: 0, customer_amount: 0,
                };
                prop_assert_eq!(reversal(&stored, &tx.entries, date).check(), Ok(()));
            }
        }
    }
}
