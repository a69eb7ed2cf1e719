//! In-memory attempt counters with a fixed window that starts at the first attempt (emoncms's
//! Redis INCR + EXPIRE scheme). Counters are per process; a multi-node deployment will move
//! them to Redis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many live counters, expired ones are swept on the next insert.
const SWEEP_THRESHOLD: usize = 10_000;

#[derive(Debug, Default)]
pub struct RateLimiter {
    counters: Mutex<HashMap<String, Counter>>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u32,
    until: Instant,
}

impl RateLimiter {
    /// Counts an attempt under `key` and returns true if the count is now above `limit`.
    pub fn hit(&self, key: &str, limit: u32, window: Duration) -> bool {
        self.add(key, window) > limit
    }

    /// True if `key` already has `limit` or more attempts in its window (does not count).
    pub fn reached(&self, key: &str, limit: u32) -> bool {
        let now = Instant::now();
        let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|c| c.until > now && c.count >= limit)
    }

    /// Counts an attempt under `key` (e.g. a failed login) and returns the count.
    pub fn add(&self, key: &str, window: Duration) -> u32 {
        let now = Instant::now();
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_THRESHOLD {
            map.retain(|_, c| c.until > now);
        }
        let c = map.entry(key.to_string()).or_insert(Counter {
            count: 0,
            until: now + window,
        });
        if c.until <= now {
            *c = Counter {
                count: 0,
                until: now + window,
            };
        }
        c.count = c.count.saturating_add(1);
        c.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_blocks_above_limit() {
        let r = RateLimiter::default();
        let w = Duration::from_secs(60);
        assert!(!r.hit("register:1.2.3.4", 2, w));
        assert!(!r.hit("register:1.2.3.4", 2, w));
        assert!(r.hit("register:1.2.3.4", 2, w));
        assert!(!r.hit("register:5.6.7.8", 2, w));
    }

    #[test]
    fn reached_does_not_count() {
        let r = RateLimiter::default();
        let w = Duration::from_secs(60);
        assert!(!r.reached("k", 1));
        r.add("k", w);
        assert!(r.reached("k", 1));
        assert!(!r.reached("k", 2));
    }

    #[test]
    fn window_expiry_resets() {
        let r = RateLimiter::default();
        assert!(!r.hit("k", 1, Duration::ZERO));
        // A zero window has already expired, so the next hit starts a new one.
        assert!(!r.hit("k", 1, Duration::ZERO));
    }
}
