//! In-memory attempt counters with a fixed window that starts at the first attempt (emoncms's
//! Redis INCR + EXPIRE scheme). Counters are per process; a multi-node deployment will move
//! them to Redis.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Expired counters are swept at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Beyond this many live counters new keys are not tracked (and so not limited): memory stays
/// bounded under a flood of distinct addresses, at the price of failing open for them.
const MAX_COUNTERS: usize = 200_000;

#[derive(Debug, Default)]
pub struct RateLimiter {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    counters: HashMap<String, Counter>,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u32,
    until: Instant,
}

/// The part of a client address that identifies one client: the whole IPv4 address, or the
/// /64 network of an IPv6 one (a single host usually owns a whole /64).
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl RateLimiter {
    /// Counts an attempt under `key` and returns true if the count is now above `limit`.
    pub fn hit(&self, key: &str, limit: u32, window: Duration) -> bool {
        self.add(key, window) > limit
    }

    /// True if `key` already has `limit` or more attempts in its window (does not count).
    pub fn reached(&self, key: &str, limit: u32) -> bool {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .counters
            .get(key)
            .is_some_and(|c| c.until > now && c.count >= limit)
    }

    /// Takes back one attempt counted under `key` (e.g. a login that succeeded).
    pub fn undo(&self, key: &str) {
        if let Some(c) = self.lock().counters.get_mut(key) {
            c.count = c.count.saturating_sub(1);
        }
    }

    /// Counts an attempt under `key` and returns the count in the current window.
    pub fn add(&self, key: &str, window: Duration) -> u32 {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            inner.counters.retain(|_, c| c.until > now);
            inner.last_sweep = Some(now);
        }
        if inner.counters.len() >= MAX_COUNTERS && !inner.counters.contains_key(key) {
            tracing::warn!("rate limiter full; not tracking {key}");
            return 0;
        }
        let c = inner.counters.entry(key.to_string()).or_insert(Counter {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind; they are still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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
    fn undo_takes_an_attempt_back() {
        let r = RateLimiter::default();
        let w = Duration::from_secs(60);
        r.add("k", w);
        r.add("k", w);
        r.undo("k");
        assert!(r.reached("k", 1));
        assert!(!r.reached("k", 2));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(client_key(mapped), "192.0.2.7");
    }

    #[test]
    fn window_expiry_resets() {
        let r = RateLimiter::default();
        assert!(!r.hit("k", 1, Duration::ZERO));
        // A zero window has already expired, so the next hit starts a new one.
        assert!(!r.hit("k", 1, Duration::ZERO));
    }
}
