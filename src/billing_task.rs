//! The server's billing upkeep: the daily accrual (tried hourly: each day is charged once,
//! whichever node or run gets there first) and, every `refresh_s`, the set of accounts whose
//! writes are refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tokio::sync::watch;
use ynni_billing::{Billing, utc_day};

/// How often the accrual is tried within one day.
const ACCRUE_EVERY: Duration = Duration::from_secs(3600);

pub async fn keep(billing: Arc<Billing>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut accrued: Option<(NaiveDate, Instant)> = None;
    // Refused accounts and plans first: the accrual and snapshot below can take a while (or
    // fail), and until a refresh every account would post under the default plan's limits.
    if let Err(e) = billing
        .refresh(utc_day(chrono::Utc::now().timestamp()))
        .await
    {
        tracing::warn!(error = %e, "billing: refreshing refused accounts failed");
    }
    loop {
        let today = utc_day(chrono::Utc::now().timestamp());
        if accrued.is_none_or(|(day, at)| day != today || at.elapsed() >= ACCRUE_EVERY) {
            match billing.accrue(today).await {
                Ok(run) if run.posted > 0 => {
                    tracing::info!(
                        days = run.posted,
                        pence = run.pence,
                        "billing: days charged"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "billing: accrual failed; retried later"),
            }
            if let Err(e) = billing.snapshot_usage(today).await {
                tracing::warn!(error = %e, "billing: recording usage failed; retried later");
            }
            accrued = Some((today, Instant::now()));
        }
        if let Err(e) = billing.save_refusals(today).await {
            tracing::warn!(error = %e, "billing: recording refusals failed");
        }
        // Users newly refused go to the broker through `Billing::notify_refused`.
        if let Err(e) = billing.refresh(today).await {
            tracing::warn!(error = %e, "billing: refreshing refused accounts failed");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
