//! Slows down password guessing over MQTT. rumqttd's auth hook is not told the client's
//! address, so failures are counted per username: after a few, every attempt for that name
//! waits a little longer before it is answered (up to a few seconds). A device with the right
//! key still gets in, only later; a guesser gets a handful of tries a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before attempts are slowed down.
const FREE_FAILURES: u32 = 5;
/// How long failures are remembered.
const WINDOW: Duration = Duration::from_secs(15 * 60);
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Usernames tracked at most (a bound on memory; the oldest window is dropped first).
const MAX_NAMES: usize = 10_000;

#[derive(Default)]
pub struct LoginGuard {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginGuard {
    /// How long an attempt for `username` waits before it is checked.
    pub fn delay(&self, username: &str) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(username) {
            Some(&(n, since)) if since.elapsed() < WINDOW => delay_for(n),
            _ => Duration::ZERO,
        }
    }

    /// Records the outcome of an attempt.
    pub fn record(&self, username: &str, ok: bool) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            map.remove(username);
            return;
        }
        if map.len() >= MAX_NAMES
            && !map.contains_key(username)
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, since))| *since)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let entry = map
            .entry(username.to_string())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// Doubles with every failure past the free ones, up to the maximum.
fn delay_for(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_later_attempts_and_success_clears_them() {
        let g = LoginGuard::default();
        for _ in 0..FREE_FAILURES {
            assert_eq!(g.delay("alice"), Duration::ZERO);
            g.record("alice", false);
        }
        assert_eq!(g.delay("alice"), FIRST_DELAY);
        g.record("alice", false);
        assert_eq!(g.delay("alice"), FIRST_DELAY * 2);
        for _ in 0..20 {
            g.record("alice", false);
        }
        assert_eq!(g.delay("alice"), MAX_DELAY);
        assert_eq!(g.delay("bob"), Duration::ZERO, "other names are not slowed");
        g.record("alice", true);
        assert_eq!(g.delay("alice"), Duration::ZERO);
    }
}
