//! Devices over HTTP, as EmonESP and scripts post: `input/post?node=…&time=…&fulljson=…` with
//! the write apikey. ynni answers once the values are durable, so the round trip is the
//! stored latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;

use super::stats::Counters;
use super::{Clock, Plan, new_device, payload};
use crate::cli::SimulateArgs;

pub async fn run(
    url: &str,
    args: &SimulateArgs,
    plans: Vec<Plan>,
    clock: Clock,
    counters: Arc<Counters>,
    ticks: Arc<Vec<AtomicU64>>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .context("HTTP client")?;
    let base = url.trim_end_matches('/').to_string();
    let mut tasks = Vec::with_capacity(plans.len());
    for plan in plans {
        let device = new_device(args.profile, args.seed, &plan);
        let (client, base, counters, ticks) = (
            client.clone(),
            base.clone(),
            counters.clone(),
            ticks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            post(client, device, &plan, &base, clock, &counters, &ticks).await;
        }));
    }
    for t in tasks {
        t.await.context("device task")?;
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
    let mut k = 0u64;
    loop {
        let at = clock.send_at(plan.index, k);
        if clock.over(at) {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let t = clock.time_of(k);
        let values = device.read(t, clock.interval);
        let json = payload::fulljson(device.names(), &values);
        let time = format!("{t}");
        let request = client.get(&url).query(&[
            ("node", plan.node.as_str()),
            ("time", time.as_str()),
            ("fulljson", json.as_str()),
            ("apikey", plan.account.apikey_write.as_str()),
        ]);
        counters.sent(values.len());
        let started = Instant::now();
        match request.send().await {
            Ok(r) if r.status().is_success() => match r.text().await {
                // emoncms's two success replies: `ok`, and `{"success": true}` for fulljson.
                Ok(body)
                    if body == "ok"
                        || body.contains("\"success\": true")
                        || body.contains("\"success\":true") =>
                {
                    counters.acked(values.len(), Some(started.elapsed()));
                }
                _ => counters.error(),
            },
            _ => counters.error(),
        }
        k += 1;
        ticks[plan.index].store(k, Ordering::Relaxed);
    }
}
