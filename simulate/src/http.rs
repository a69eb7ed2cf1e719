//! Devices over HTTP, as EmonESP and scripts post: `input/post?node=…&time=…&fulljson=…` with
//! the write apikey. ynni answers once the values are durable, so the round trip is the
//! stored latency.
//!
//! With several URLs (a cluster's nodes), device `i` starts at URL `i` (round robin). A post
//! that fails in a way worth retrying (no connection, a timeout, a 5xx such as the 503 a node
//! answers while a shard changes owner) is sent again through the next URL after [`RETRY`],
//! until it is acknowledged, as emonhub keeps a reading until its post succeeds; the next
//! reading waits for it. A refusal (4xx, or a 200 that is not a success) is an error and not
//! sent again. Retrying stops [`DRAIN`] after the end of the run, and the reading still
//! unacknowledged then counts as an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::acklog::AckLog;
use super::stats::Counters;
use super::{Clock, Plan, Ticker, new_device, payload};
use crate::{SimulateArgs, SimulateError};

/// How long a failed post waits before it is sent again.
const RETRY: Duration = Duration::from_millis(100);
/// How long after the run's end a device keeps retrying its reading.
const DRAIN: Duration = Duration::from_secs(15);

/// What became of one attempt to post a reading.
enum Attempt {
    Acked,
    /// Worth sending again (through the next URL).
    Retry,
    Refused,
}

pub async fn run(
    urls: &[String],
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
    let acked = args
        .acked
        .as_deref()
        .map(AckLog::create)
        .transpose()?
        .map(Arc::new);
    let urls: Arc<Vec<String>> = Arc::new(urls.iter().map(|u| format!("{u}/input/post")).collect());
    // Dropping the set (Ctrl-C) stops every device.
    let mut tasks = JoinSet::new();
    for plan in plans {
        let device = new_device(args.profile, args.seed, &plan);
        let (client, urls, counters, ticks, acked) = (
            client.clone(),
            urls.clone(),
            counters.clone(),
            ticks.clone(),
            acked.clone(),
        );
        tasks.spawn(async move {
            let sender = Sender {
                client,
                urls: &urls,
                clock,
                counters: &counters,
                acked: acked.as_deref(),
            };
            sender.post(device, &plan, &ticks).await;
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(SimulateError::Task)?;
    }
    match acked {
        Some(log) => log.finish(),
        None => Ok(()),
    }
}

struct Sender<'a> {
    client: reqwest::Client,
    urls: &'a [String],
    clock: Clock,
    counters: &'a Counters,
    acked: Option<&'a AckLog>,
}

impl Sender<'_> {
    async fn post(&self, mut device: super::profile::Device, plan: &Plan, ticks: &[AtomicU64]) {
        let mut ticker = Ticker::new(self.clock, plan.index);
        let mut turn = plan.index;
        let give_up = self.clock.run_for.map(|d| self.clock.t0 + d + DRAIN);
        while let Some((k, t)) = ticker.next().await {
            let values = device.read(t, self.clock.interval);
            let json = payload::fulljson(device.names(), &values);
            let time = format!("{t}");
            self.counters.record_sent(values.len());
            let started = Instant::now();
            loop {
                let url = &self.urls[turn % self.urls.len()];
                match self.attempt(url, plan, &time, &json).await {
                    Attempt::Acked => {
                        self.counters
                            .record_acked(values.len(), Some(started.elapsed()));
                        if let Some(log) = self.acked {
                            log.record(&plan.account.username, &plan.node, t as i64, &json);
                        }
                        break;
                    }
                    Attempt::Retry if give_up.is_none_or(|end| Instant::now() < end) => {
                        self.counters.record_retry();
                        turn += 1;
                        tokio::time::sleep(RETRY).await;
                    }
                    Attempt::Retry | Attempt::Refused => {
                        self.counters.record_error();
                        break;
                    }
                }
            }
            ticks[plan.index].store(k + 1, Ordering::Relaxed);
        }
    }

    async fn attempt(&self, url: &str, plan: &Plan, time: &str, json: &str) -> Attempt {
        let request = self.client.get(url).query(&[
            ("node", plan.node.as_str()),
            ("time", time),
            ("fulljson", json),
            ("apikey", plan.account.apikey_write.as_str()),
        ]);
        match request.send().await {
            Ok(r) if r.status().is_success() => match r.text().await {
                Ok(body) if accepted(&body) => Attempt::Acked,
                Ok(_) => Attempt::Refused,
                Err(_) => Attempt::Retry,
            },
            Ok(r) if r.status().is_server_error() => Attempt::Retry,
            Ok(_) => Attempt::Refused,
            Err(_) => Attempt::Retry,
        }
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
