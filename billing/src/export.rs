//! Usage for the billing systems operators already run: each day's charge as a Stripe meter
//! event or a Lago event, carrying the ledger's idempotency key so a replayed export never
//! bills twice (Stripe deduplicates on `identifier`, Lago on `transaction_id`).

use chrono::NaiveDate;
use serde_json::{Value, json};
use ynni_core::catalog::LedgerTx;

use crate::books::ACCRUAL;

/// The meter or billable metric the events report: feed-days.
pub const EVENT_NAME: &str = "ynni_feed_days";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Stripe,
    Lago,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stripe" => Ok(Format::Stripe),
            "lago" => Ok(Format::Lago),
            other => Err(format!("unknown export format {other:?} (stripe or lago)")),
        }
    }
}

/// The customer or subscription id an event names: the operator maps it to their own.
pub fn customer_ref(userid: i64) -> String {
    format!("ynni-user-{userid}")
}

/// Noon UTC of the charged day, as unix seconds: inside the day whatever the billing system's
/// time zone rounding.
fn timestamp(date: &str) -> i64 {
    date.parse::<NaiveDate>()
        .ok()
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp())
}

/// One event per accrual in `txs` (other transactions are not usage).
pub fn events(txs: &[LedgerTx], format: Format) -> Vec<Value> {
    txs.iter()
        .filter(|t| t.kind == ACCRUAL)
        .filter_map(|t| {
            let userid = t.userid?;
            Some(match format {
                Format::Stripe => json!({
                    "event_name": EVENT_NAME,
                    "identifier": t.key,
                    "timestamp": timestamp(&t.effective_date),
                    "payload": {
                        "stripe_customer_id": customer_ref(userid),
                        "value": t.quantity.to_string(),
                    },
                }),
                Format::Lago => json!({
                    "event": {
                        "transaction_id": t.key,
                        "external_subscription_id": customer_ref(userid),
                        "code": EVENT_NAME,
                        "timestamp": timestamp(&t.effective_date),
                        "properties": {
                            "feeds": t.quantity,
                            "pence": t.customer_amount,
                            "date": t.effective_date,
                        },
                    },
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accruals_become_events_keyed_by_the_ledger() {
        let t = LedgerTx {
            id: 1,
            key: "accrual:4:2026-03-02".into(),
            kind: "accrual".into(),
            userid: Some(4),
            effective_date: "2026-03-02".into(),
            created: 0,
            memo: String::new(),
            quantity: 3,
            rate: 100,
            customer_amount: 1,
        };
        let mut topup = t.clone();
        topup.kind = "topup".into();
        let s = events(&[t.clone(), topup], Format::Stripe);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["identifier"], "accrual:4:2026-03-02");
        assert_eq!(s[0]["payload"]["value"], "3");
        assert_eq!(s[0]["timestamp"], 1_772_452_800);
        let l = events(&[t], Format::Lago);
        assert_eq!(l[0]["event"]["transaction_id"], "accrual:4:2026-03-02");
        assert_eq!(l[0]["event"]["external_subscription_id"], "ynni-user-4");
        assert_eq!(l[0]["event"]["properties"]["feeds"], 3);
    }
}
