//! Usage for the billing systems operators already run, as Stripe meter events or Lago events,
//! each carrying an idempotency key so a replayed export never bills twice (Stripe
//! deduplicates on `identifier`, Lago on `transaction_id`):
//!
//! - each day's feed charge (`ynni_feed_days`, the feeds charged), keyed by its ledger key
//!   (`accrual:<user>:<day>`); a charge that was reversed is left out (one exported before
//!   its reversal has to be cancelled in the billing system: Stripe's meter event
//!   adjustment takes its identifier);
//! - each finished day's values received over HTTP and MQTT (`ynni_values_received`, key
//!   `values:<user>:<day>`) and bytes stored (`ynni_bytes_stored`, key `storage:<user>:<day>`),
//!   from the metering. Only finished days: a day's count still grows, and a key sent once
//!   is not sent again.

use std::collections::HashSet;

use chrono::NaiveDate;
use serde_json::{Value, json};
use ynni_core::catalog::{LedgerTx, UsageDay};

use crate::books::ACCRUAL;

/// The meter or billable metric of the feed charges: feed-days.
pub const EVENT_NAME: &str = "ynni_feed_days";
/// Values received in a day.
pub const VALUES_EVENT: &str = "ynni_values_received";
/// Bytes stored at the day's snapshot.
pub const STORAGE_EVENT: &str = "ynni_bytes_stored";

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

/// One usage event: `value` of `name` for `userid` on `date` under `key`; Lago's properties
/// also carry `extra`.
fn event(
    format: Format,
    name: &str,
    key: &str,
    userid: i64,
    date: &str,
    value: i64,
    extra: Value,
) -> Value {
    match format {
        Format::Stripe => json!({
            "event_name": name,
            "identifier": key,
            "timestamp": timestamp(date),
            "payload": {
                "stripe_customer_id": customer_ref(userid),
                "value": value.to_string(),
            },
        }),
        Format::Lago => {
            let mut properties = json!({"value": value, "date": date});
            if let (Some(p), Value::Object(extra)) = (properties.as_object_mut(), extra) {
                p.extend(extra);
            }
            json!({
                "event": {
                    "transaction_id": key,
                    "external_subscription_id": customer_ref(userid),
                    "code": name,
                    "timestamp": timestamp(date),
                    "properties": properties,
                },
            })
        }
    }
}

/// The feed charges in `txs` (other transactions are not usage) whose keys are not in
/// `reversed`, then the usage of the finished days in `usage`.
pub fn events(
    txs: &[LedgerTx],
    reversed: &HashSet<String>,
    usage: &[UsageDay],
    format: Format,
) -> Vec<Value> {
    let mut out: Vec<Value> = txs
        .iter()
        .filter(|t| t.kind == ACCRUAL && !reversed.contains(&t.key))
        .filter_map(|t| {
            let userid = t.userid?;
            let extra = json!({"feeds": t.quantity, "pence": t.customer_amount});
            Some(event(
                format,
                EVENT_NAME,
                &t.key,
                userid,
                &t.effective_date,
                t.quantity,
                extra,
            ))
        })
        .collect();
    for u in usage {
        let values = u.http_values.saturating_add(u.mqtt_values);
        if values > 0 {
            let key = format!("values:{}:{}", u.userid, u.day);
            let extra = json!({"http": u.http_values, "mqtt": u.mqtt_values});
            out.push(event(
                format,
                VALUES_EVENT,
                &key,
                u.userid,
                &u.day,
                values,
                extra,
            ));
        }
        if u.bytes > 0 {
            let key = format!("storage:{}:{}", u.userid, u.day);
            out.push(event(
                format,
                STORAGE_EVENT,
                &key,
                u.userid,
                &u.day,
                u.bytes,
                json!({}),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_and_finished_days_become_events_keyed_once() {
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
        let mut reversed_day = t.clone();
        reversed_day.key = "accrual:4:2026-03-03".into();
        let reversed = HashSet::from(["accrual:4:2026-03-03".to_string()]);
        let usage = [UsageDay {
            userid: 4,
            day: "2026-03-02".into(),
            http_values: 10,
            mqtt_values: 5,
            bytes: 4096,
            ..Default::default()
        }];
        let all = [t.clone(), topup, reversed_day];
        let s = events(&all, &reversed, &usage, Format::Stripe);
        let keys: Vec<&str> = s.iter().filter_map(|e| e["identifier"].as_str()).collect();
        assert_eq!(
            keys,
            [
                "accrual:4:2026-03-02",
                "values:4:2026-03-02",
                "storage:4:2026-03-02"
            ]
        );
        assert_eq!(s[0]["payload"]["value"], "3");
        assert_eq!(s[0]["timestamp"], 1_772_452_800);
        assert_eq!(s[1]["event_name"], VALUES_EVENT);
        assert_eq!(s[1]["payload"]["value"], "15");
        assert_eq!(s[2]["payload"]["value"], "4096");
        let l = events(&[t], &reversed, &usage, Format::Lago);
        assert_eq!(l[0]["event"]["transaction_id"], "accrual:4:2026-03-02");
        assert_eq!(l[0]["event"]["external_subscription_id"], "ynni-user-4");
        assert_eq!(l[0]["event"]["properties"]["feeds"], 3);
        assert_eq!(l[1]["event"]["properties"]["mqtt"], 5);
        assert_eq!(l[1]["event"]["properties"]["value"], 15);
    }
}
