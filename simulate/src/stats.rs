//! Counting what the simulator sent and what came back, for the progress line and the final
//! summary.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub struct Counters {
    /// Messages (MQTT publishes or HTTP requests) handed to the network.
    pub sent: AtomicU64,
    /// Values inside those messages.
    pub values: AtomicU64,
    /// Messages the server acknowledged: an HTTP "ok" or a PUBACK/PUBCOMP (both durable), or
    /// at QoS 0 written to the socket.
    pub acked: AtomicU64,
    /// Values inside acknowledged messages.
    pub acked_values: AtomicU64,
    pub errors: AtomicU64,
    /// Sends that failed and were made again (HTTP: through the next URL).
    pub retries: AtomicU64,
    /// A broker refused a login: the run stops.
    pub refused: std::sync::atomic::AtomicBool,
    /// Send → acknowledgement, in microseconds.
    latencies: Mutex<Vec<u32>>,
    /// Send → the value's feed update seen (stored durably and processed), in microseconds.
    stored: Mutex<Vec<u32>>,
}

impl Counters {
    pub fn record_sent(&self, values: usize) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.values.fetch_add(values as u64, Ordering::Relaxed);
    }

    pub fn record_acked(&self, values: usize, latency: Option<Duration>) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        self.acked_values
            .fetch_add(values as u64, Ordering::Relaxed);
        if let Some(l) = latency {
            let us = u32::try_from(l.as_micros()).unwrap_or(u32::MAX);
            self.latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(us);
        }
    }

    pub fn record_stored(&self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(us);
    }

    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// (p50, p99, max, samples) of send → acknowledgement, in milliseconds.
    pub fn latency_ms(&self) -> Option<(f64, f64, f64, usize)> {
        percentiles(&self.latencies)
    }

    /// (p50, p99, max, samples) of send → stored, in milliseconds.
    pub fn stored_ms(&self) -> Option<(f64, f64, f64, usize)> {
        percentiles(&self.stored)
    }
}

fn percentiles(samples: &Mutex<Vec<u32>>) -> Option<(f64, f64, f64, usize)> {
    let mut l = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if l.is_empty() {
        return None;
    }
    l.sort_unstable();
    let at = |q: f64| f64::from(l[((l.len() - 1) as f64 * q).round() as usize]) / 1000.0;
    Some((at(0.5), at(0.99), at(1.0), l.len()))
}

/// CPU seconds used so far and resident memory (KiB) of a process, from /proc.
pub fn process_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
    Some((ticks / 100.0, rss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_what_was_measured() {
        let c = Counters::default();
        assert!(c.latency_ms().is_none());
        for ms in 1..=100u64 {
            c.record_acked(2, Some(Duration::from_millis(ms)));
        }
        let (p50, p99, max, n) = c.latency_ms().expect("latencies");
        assert_eq!(n, 100);
        assert!((50.0..=51.0).contains(&p50), "{p50}");
        assert!((98.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(max, 100.0);
        assert_eq!(c.get(&c.acked_values), 200);
    }

    #[test]
    fn reads_its_own_usage() {
        let (cpu, rss) = process_usage(std::process::id()).expect("/proc");
        assert!(cpu >= 0.0 && rss > 0);
    }
}
