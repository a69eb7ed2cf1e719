//! Monthly statements: the opening balance, every transaction of the month (charges day by
//! day, top-ups, vouchers, refunds), the closing balance, and a number given once per user and
//! month, in the order statements are first made. Rendered as JSON, CSV, or a printable page
//! by the web UI from the JSON.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use ynni_core::catalog::LedgerTx;

use crate::error::BillingError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub date: String,
    pub kind: String,
    pub description: String,
    /// Feeds charged for (accruals).
    pub feeds: i64,
    /// Positive adds to the balance (a top-up), negative takes from it (a charge).
    pub amount_pence: i64,
    pub balance_pence: i64,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// `None` while the month is not over (a draft).
    pub number: Option<i64>,
    pub userid: i64,
    pub username: String,
    pub month: String,
    pub opening_pence: i64,
    pub charges_pence: i64,
    pub credits_pence: i64,
    pub closing_pence: i64,
    pub lines: Vec<Line>,
}

/// The first day of `month` (`YYYY-MM`) and of the month after.
pub fn month_bounds(month: &str) -> Result<(NaiveDate, NaiveDate), BillingError> {
    let bad = || BillingError::BadDate(month.to_string());
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if first.format("%Y-%m").to_string() != month {
        return Err(bad());
    }
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .ok_or_else(bad)?;
    Ok((first, next))
}

/// Builds the statement from the transactions before the month (`before`) and in it.
pub fn build(
    userid: i64,
    username: &str,
    month: &str,
    number: Option<i64>,
    before: &[LedgerTx],
    during: &[LedgerTx],
) -> Statement {
    let opening: i64 = -before.iter().map(|t| t.customer_amount).sum::<i64>();
    let mut balance = opening;
    let (mut charges, mut credits) = (0, 0);
    let lines = during
        .iter()
        .map(|t| {
            let amount = -t.customer_amount;
            balance += amount;
            if amount < 0 {
                charges -= amount;
            } else {
                credits += amount;
            }
            Line {
                date: t.effective_date.clone(),
                kind: t.kind.clone(),
                description: t.memo.clone(),
                feeds: t.quantity,
                amount_pence: amount,
                balance_pence: balance,
                key: t.key.clone(),
            }
        })
        .collect();
    Statement {
        number,
        userid,
        username: username.to_string(),
        month: month.to_string(),
        opening_pence: opening,
        charges_pence: charges,
        credits_pence: credits,
        closing_pence: balance,
        lines,
    }
}

/// Pence as pounds with two decimals (`-0.27`).
pub fn pounds(pence: i64) -> String {
    let sign = if pence < 0 { "-" } else { "" };
    let p = pence.unsigned_abs();
    format!("{sign}{}.{:02}", p / 100, p % 100)
}

/// The statement as CSV: a header block, then one row per line.
pub fn csv(s: &Statement) -> String {
    let mut out = String::new();
    let number = s.number.map_or("draft".to_string(), |n| n.to_string());
    out.push_str(&format!(
        "statement,{number}\nmonth,{}\nuser,{}\n",
        s.month,
        field(&s.username)
    ));
    out.push_str(&format!("opening balance,{}\n", pounds(s.opening_pence)));
    out.push_str("date,type,description,feeds,amount,balance,reference\n");
    for l in &s.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            l.date,
            l.kind,
            field(&l.description),
            l.feeds,
            pounds(l.amount_pence),
            pounds(l.balance_pence),
            field(&l.key)
        ));
    }
    out.push_str(&format!("closing balance,{}\n", pounds(s.closing_pence)));
    out
}

/// A CSV field, quoted when it holds a separator, a quote or a line break, and kept from being
/// read as a formula by a spreadsheet.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(kind: &str, date: &str, customer_amount: i64) -> LedgerTx {
        LedgerTx {
            id: 0,
            key: format!("{kind}:{date}"),
            kind: kind.into(),
            userid: Some(1),
            effective_date: date.into(),
            created: 0,
            memo: "m".into(),
            quantity: 0,
            rate: 0,
            customer_amount,
        }
    }

    #[test]
    fn opening_lines_and_closing_add_up() {
        let before = [
            tx("topup", "2026-01-05", -1000),
            tx("accrual", "2026-01-31", 3),
        ];
        let during = [
            tx("accrual", "2026-02-01", 3),
            tx("topup", "2026-02-10", -500),
            tx("accrual", "2026-02-11", 2),
        ];
        let s = build(1, "alice", "2026-02", Some(7), &before, &during);
        assert_eq!(s.opening_pence, 997);
        assert_eq!((s.charges_pence, s.credits_pence), (5, 500));
        assert_eq!(s.closing_pence, 997 - 5 + 500);
        assert_eq!(s.lines.last().unwrap().balance_pence, s.closing_pence);
        let csv = csv(&s);
        assert!(csv.starts_with("statement,7\nmonth,2026-02\nuser,alice\nopening balance,9.97\n"));
        assert!(csv.contains("2026-02-01,accrual,m,0,-0.03,9.94,accrual:2026-02-01\n"));
        assert!(csv.ends_with("closing balance,14.92\n"));
    }

    #[test]
    fn months_are_checked() {
        let (a, b) = month_bounds("2026-12").unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2026-12-01".into(), "2027-01-01".into())
        );
        assert!(month_bounds("2026-13").is_err());
        assert!(month_bounds("2026-1").is_err());
        assert!(month_bounds("x").is_err());
        assert_eq!(field("=cmd"), "'=cmd");
        assert_eq!(field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
