//! Where a user stands: balance, runway, and whether writes are still accepted.
//!
//! The balance runs down as days are charged. Below `warn_days` of runway the user is warned;
//! once a charge leaves the balance at or below zero a grace period of `grace_days` starts,
//! during which everything keeps working (with a banner); after it, writes are refused until
//! a top-up or voucher brings the balance above zero. Reads and the account pages always work;
//! nothing is deleted. A balance at zero that no charge brought there (a new account with
//! nothing charged yet) is not in arrears.

use chrono::{Days, NaiveDate};
use serde::Serialize;
use ynni_core::catalog::LedgerTx;

use crate::books::{ACCRUAL, OVERAGE};
use crate::plan::Policy;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Standing {
    Good,
    /// Fewer than `warn_days` of runway left.
    Low {
        runway_days: i64,
    },
    /// In arrears since `since`; writes accepted until `until`.
    Grace {
        since: NaiveDate,
        until: NaiveDate,
    },
    /// In arrears past the grace period: writes refused.
    Suspended {
        since: NaiveDate,
    },
}

impl Standing {
    pub fn refuses_writes(&self) -> bool {
        matches!(self, Standing::Suspended { .. })
    }
}

/// A user's balance (pence, positive in credit), runway and standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    pub balance_pence: i64,
    /// Whole days the balance lasts at the current daily cost; `None` when nothing is charged.
    pub runway_days: Option<i64>,
    pub standing: Standing,
}

/// The position after `history` (the user's transactions), spending `daily_centipence` a day,
/// on `today`. The balance is followed in the order transactions were posted (a top-up posted
/// before a catch-up charge of earlier days was there first); arrears date from the day of the
/// charge that used the balance up.
pub fn position(
    history: &[LedgerTx],
    daily_centipence: i64,
    today: NaiveDate,
    policy: &Policy,
) -> Position {
    let mut posted: Vec<&LedgerTx> = history.iter().collect();
    posted.sort_by_key(|t| t.id);
    let mut balance: i64 = 0;
    let mut arrears_since: Option<NaiveDate> = None;
    for tx in posted {
        balance = balance.saturating_sub(tx.customer_amount);
        if balance > 0 {
            arrears_since = None;
        } else if arrears_since.is_none() && (tx.kind == ACCRUAL || tx.kind == OVERAGE) {
            arrears_since = tx.effective_date.parse().ok();
        }
    }
    let runway_days = (daily_centipence > 0).then(|| (balance.max(0) * 100) / daily_centipence);
    let standing = match arrears_since {
        Some(since) if balance <= 0 => {
            let until = since
                .checked_add_days(Days::new(policy.grace_days.into()))
                .unwrap_or(since);
            if today < until {
                Standing::Grace { since, until }
            } else {
                Standing::Suspended { since }
            }
        }
        _ => match runway_days {
            Some(d) if d < i64::from(policy.warn_days) => Standing::Low { runway_days: d },
            _ => Standing::Good,
        },
    };
    Position {
        balance_pence: balance,
        runway_days,
        standing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tx(kind: &str, date: &str, customer_amount: i64) -> LedgerTx {
        LedgerTx {
            id: 0,
            key: String::new(),
            kind: kind.into(),
            userid: Some(1),
            effective_date: date.into(),
            created: 0,
            memo: String::new(),
            quantity: 0,
            rate: 0,
            customer_amount,
        }
    }

    fn policy() -> Policy {
        Policy {
            plans: BTreeMap::new(),
            default_plan: "x".into(),
            warn_days: 30,
            grace_days: 7,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn warned_then_grace_then_suspended_then_topped_up() {
        let p = policy();
        // 100p in, 1p a day (100 centipence).
        let mut h = vec![tx("topup", "2026-01-01", -100)];
        let pos = position(&h, 100, day("2026-01-01"), &p);
        assert_eq!(pos.balance_pence, 100);
        assert_eq!(pos.standing, Standing::Good);
        h.push(tx("accrual", "2026-01-02", 80));
        let pos = position(&h, 100, day("2026-01-03"), &p);
        assert_eq!(pos.standing, Standing::Low { runway_days: 20 });
        h.push(tx("accrual", "2026-01-03", 20));
        let grace = Standing::Grace {
            since: day("2026-01-03"),
            until: day("2026-01-10"),
        };
        assert_eq!(position(&h, 100, day("2026-01-09"), &p).standing, grace);
        h.push(tx("accrual", "2026-01-04", 1));
        assert_eq!(position(&h, 100, day("2026-01-09"), &p).standing, grace);
        let pos = position(&h, 100, day("2026-01-10"), &p);
        assert!(pos.standing.refuses_writes());
        assert_eq!(pos.balance_pence, -1);
        h.push(tx("topup", "2026-01-11", -500));
        let pos = position(&h, 100, day("2026-01-11"), &p);
        assert_eq!(pos.balance_pence, 499);
        assert_eq!(pos.standing, Standing::Good);
    }

    #[test]
    fn nothing_charged_is_not_arrears() {
        let pos = position(&[], 0, day("2026-01-01"), &policy());
        assert_eq!((pos.balance_pence, pos.runway_days), (0, None));
        assert_eq!(pos.standing, Standing::Good);
    }
}
