//! Devices over HTTP, as EmonESP and scripts post: `input/post?node=…&time=…&fulljson=…` with
//! the write apikey. ynni answers once the values are durable, so the round trip is the
//! stored latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::stats::Counters;
use super::{Clock, Plan, Ticker, new_device, payload};
use crate::{SimulateArgs, SimulateError};

pub async fn run(
    url: &str,
    args: &SimulateArgs,
    plans: Vec<Plan>,
    clock: Clock,
    counters: Arc<Counters>,
    ticks: Arc<Vec<AtomicU64>>,
) -> Result<(), SimulateError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| SimulateError::Http {
            step: "HTTP client",
            source,
        })?;
    let base = url.trim_end_matches('/').to_string();
    // Dropping the set (Ctrl-C) stops every device.
    let mut tasks = JoinSet::new();
    for plan in plans {
        let device = new_device(args.profile, args.seed, &plan);
        let (client, base, counters, ticks) = (
            client.clone(),
            base.clone(),
            counters.clone(),
            ticks.clone(),
        );
        tasks.spawn(async move {
            post(client, device, &plan, &base, clock, &counters, &ticks).await;
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(SimulateError::Task)?;
    }
    Ok(())
}

async fn post(
    client: reqwest::Client,
    mut device: super::profile::Device,
    plan: &Plan,
    base: &str,
    clock: Clock,
    counters: &Counters,
    ticks: &[AtomicU64],
) {
    let url = format!("{base}/input/post");
    let mut ticker = Ticker::new(clock, plan.index);
    while let Some((k, t)) = ticker.next().await {
        let values = device.read(t, clock.interval);
        let json = payload::fulljson(device.names(), &values);
        let time = format!("{t}");
        let request = client.get(&url).query(&[
            ("node", plan.node.as_str()),
            ("time", time.as_str()),
            ("fulljson", json.as_str()),
            ("apikey", plan.account.apikey_write.as_str()),
        ]);
        counters.record_sent(values.len());
        let started = Instant::now();
        match request.send().await {
            Ok(r) if r.status().is_success() => match r.text().await {
                Ok(body) if accepted(&body) => {
                    counters.record_acked(values.len(), Some(started.elapsed()));
                }
                _ => counters.record_error(),
            },
            _ => counters.record_error(),
        }
        ticks[plan.index].store(k + 1, Ordering::Relaxed);
    }
}

/// emoncms's two success replies: `ok`, and `{"success": true}` for fulljson.
fn accepted(body: &str) -> bool {
    body == "ok"
        || serde_json::from_str::<serde_json::Value>(body)
            .is_ok_and(|v| v.get("success") == Some(&serde_json::Value::Bool(true)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn success_replies() {
        assert!(super::accepted("ok"));
        assert!(super::accepted(r#"{"success": true}"#));
        assert!(!super::accepted(r#"{"success": false, "message": "x"}"#));
        assert!(!super::accepted("Invalid API key"));
    }
}
