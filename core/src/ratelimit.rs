//! In-memory attempt counters with a fixed window that starts at the first attempt (emoncms's
//! Redis INCR + EXPIRE scheme). Counters are per process; a multi-node deployment will move
//! them to Redis.
//!
//! Every table is bounded, whatever clients send: keys are fixed-size digests (a megabyte of
//! username costs the same 16 bytes as a short one), and a full table never stops counting.
//! When it is full, a new key may push out only a counter holding at most one attempt (the
//! oldest such first), so a flood of fresh names or addresses cannot flush the counter of an
//! account or address that is being guessed at; if every counter holds more than that, the new
//! key is refused as if it were over its limit (fail closed). A limiter for secrets that cannot
//! be guessed ([`RateLimiter::evicting`]) gives the new key the least-counted counter's place
//! instead: there the limit guards against load, and refusing every newcomer would be an outage.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Expired counters are swept at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// A full table sweeps before refusing a key, but at most this often, so a flood against a full
/// table does not turn every request into a scan of it.
const SWEEP_WHEN_FULL_EVERY: Duration = Duration::from_secs(1);
/// How often a full table may say so in the log.
const FULL_LOG_EVERY: Duration = Duration::from_secs(60);
/// Counters per table. An entry is ~100 bytes with its map slot and eviction-order entry, so a
/// full table is ~5 MB. Filling one with counters of two or more failures inside a 15-minute
/// window takes 100,000 failed attempts, far more than argon2 lets a small server check in that
/// time.
pub const DEFAULT_CAPACITY: usize = 50_000;

/// A fixed-size digest naming one counter: what is counted (a scope such as `login:ip`) and
/// of whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u8; 16]);

impl Key {
    /// The key of `parts` in `scope`. Each part is hashed with its length in front, so two
    /// different lists of parts never feed the hash the same bytes.
    pub fn new(scope: &str, parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for part in std::iter::once(scope.as_bytes()).chain(parts.iter().copied()) {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let digest = h.finalize();
        let mut k = [0u8; 16];
        k.copy_from_slice(&digest[..16]);
        Key(k)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// The part of a client address that identifies one client: the whole IPv4 address (also when
/// IPv4-mapped), or the /64 network of an IPv6 one (a single host usually owns a whole /64), as
/// 16 bytes.
pub fn client_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_ipv6_mapped().octets(),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                o
            }
        },
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    inner: Mutex<Inner>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    /// Whether a full table pushes out its least-counted counter for a new key instead of
    /// refusing the key ([`RateLimiter::evicting`]).
    evicts: bool,
    counters: HashMap<Key, Counter>,
    /// Every counter as (attempts, window sequence, key): the first is the one to evict.
    order: BTreeSet<(u32, u64, Key)>,
    next_seq: u64,
    last_sweep: Option<Instant>,
    /// Keys refused because the table was full, since it last said so in the log.
    refused: u64,
    last_full_log: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u32,
    /// When the window started, as a sequence number: older windows are evicted first.
    seq: u64,
    until: Instant,
}

impl RateLimiter {
    /// A limiter holding at most `capacity` counters (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self::build(capacity, false)
    }

    /// A limiter that, full, gives a new key the place of the counter with the fewest
    /// attempts (the oldest of those) instead of refusing it: for limits that guard against
    /// load rather than guessing (MQTT keys are 128-bit random), where refusing every new
    /// client while the table is full would be the outage the limit is there to prevent.
    pub fn evicting(capacity: usize) -> Self {
        Self::build(capacity, true)
    }

    fn build(capacity: usize, evicts: bool) -> Self {
        Self {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                evicts,
                counters: HashMap::new(),
                order: BTreeSet::new(),
                next_seq: 0,
                last_sweep: None,
                refused: 0,
                last_full_log: None,
            }),
        }
    }

    /// Counts an attempt under `key` and returns true if the count is now above `limit`, or if
    /// the table is too full to count it.
    pub fn hit(&self, key: Key, limit: u32, window: Duration) -> bool {
        self.hit_at(key, limit, window, Instant::now())
    }

    /// [`RateLimiter::hit`] at a given moment.
    pub(crate) fn hit_at(&self, key: Key, limit: u32, window: Duration, now: Instant) -> bool {
        self.lock().add(key, window, now).is_none_or(|n| n > limit)
    }

    /// Takes back one attempt counted under `key` (e.g. a login that succeeded).
    pub fn undo(&self, key: Key) {
        self.lock().undo(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let inner = self.lock();
        debug_assert_eq!(inner.counters.len(), inner.order.len());
        inner.counters.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind; they are still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `now + window`, saturating far in the future instead of overflowing on an absurd window.
fn deadline(now: Instant, window: Duration) -> Instant {
    now.checked_add(window)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

impl Inner {
    /// Counts an attempt and returns the count in the current window; `None` if the table is
    /// full and `key` could not be given a counter.
    fn add(&mut self, key: Key, window: Duration, now: Instant) -> Option<u32> {
        if self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
        {
            self.sweep(now);
        }
        if let Some(old) = self.counters.get(&key).copied() {
            let new = if old.until <= now {
                Counter {
                    count: 1,
                    seq: self.take_seq(),
                    until: deadline(now, window),
                }
            } else {
                Counter {
                    count: old.count.saturating_add(1),
                    ..old
                }
            };
            self.replace(key, old, new);
            return Some(new.count);
        }
        if self.counters.len() >= self.capacity && !self.make_room(now) {
            self.refused += 1;
            if self
                .last_full_log
                .is_none_or(|t| now.saturating_duration_since(t) >= FULL_LOG_EVERY)
            {
                tracing::warn!(
                    refused = self.refused,
                    capacity = self.capacity,
                    "attempt limiter full of repeated failures; refusing new clients and names"
                );
                self.last_full_log = Some(now);
                self.refused = 0;
            }
            return None;
        }
        let new = Counter {
            count: 1,
            seq: self.take_seq(),
            until: deadline(now, window),
        };
        self.order.insert((new.count, new.seq, key));
        self.counters.insert(key, new);
        Some(1)
    }

    fn undo(&mut self, key: Key) {
        if let Some(old) = self.counters.get(&key).copied()
            && old.count > 0
        {
            let new = Counter {
                count: old.count - 1,
                ..old
            };
            self.replace(key, old, new);
        }
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn replace(&mut self, key: Key, old: Counter, new: Counter) {
        self.order.remove(&(old.count, old.seq, key));
        self.order.insert((new.count, new.seq, key));
        self.counters.insert(key, new);
    }

    fn sweep(&mut self, now: Instant) {
        let order = &mut self.order;
        self.counters.retain(|key, c| {
            let live = c.until > now;
            if !live {
                order.remove(&(c.count, c.seq, *key));
            }
            live
        });
        self.last_sweep = Some(now);
    }

    /// Frees one slot of a full table if that loses no more than one counted attempt; false if
    /// every counter holds more (the new key is then refused, not tracked).
    fn make_room(&mut self, now: Instant) -> bool {
        if self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_WHEN_FULL_EVERY)
        {
            self.sweep(now);
            if self.counters.len() < self.capacity {
                return true;
            }
        }
        let Some(&(count, seq, key)) = self.order.first() else {
            return true;
        };
        let expired = self.counters.get(&key).is_some_and(|c| c.until <= now);
        if count > 1 && !expired && !self.evicts {
            return false;
        }
        self.order.remove(&(count, seq, key));
        self.counters.remove(&key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An evicting limiter full of repeated failures still counts a new key (in the place of
    /// the least-counted, oldest counter); a refusing one refuses it.
    #[test]
    fn a_full_evicting_table_still_counts_new_keys() {
        let now = Instant::now();
        let window = Duration::from_secs(900);
        for (limiter, refuses) in [
            (RateLimiter::with_capacity(3), true),
            (RateLimiter::evicting(3), false),
        ] {
            for i in 0..3u8 {
                let k = Key::new("t", &[&[i]]);
                limiter.hit_at(k, 10, window, now);
                limiter.hit_at(k, 10, window, now);
            }
            let fresh = Key::new("t", &[&[9]]);
            assert_eq!(limiter.hit_at(fresh, 10, window, now), refuses);
            assert_eq!(limiter.len(), 3);
        }
    }

    fn k(s: &str) -> Key {
        Key::new("test", &[s.as_bytes()])
    }

    #[test]
    fn counts_and_blocks_above_limit() {
        let r = RateLimiter::default();
        let w = Duration::from_secs(60);
        assert!(!r.hit(k("1.2.3.4"), 2, w));
        assert!(!r.hit(k("1.2.3.4"), 2, w));
        assert!(r.hit(k("1.2.3.4"), 2, w));
        assert!(!r.hit(k("5.6.7.8"), 2, w));
    }

    #[test]
    fn undo_takes_an_attempt_back() {
        let r = RateLimiter::default();
        let w = Duration::from_secs(60);
        assert!(!r.hit(k("k"), 2, w));
        assert!(!r.hit(k("k"), 2, w));
        r.undo(k("k"));
        assert!(!r.hit(k("k"), 2, w));
        assert!(r.hit(k("k"), 2, w));
    }

    #[test]
    fn keys_differ_by_scope_and_by_part_boundaries() {
        let part = |s: &'static str| s.as_bytes();
        assert_ne!(Key::new("a", &[part("x")]), Key::new("b", &[part("x")]));
        assert_ne!(
            Key::new("a", &[part("xy"), part("z")]),
            Key::new("a", &[part("x"), part("yz")])
        );
        assert_eq!(Key::new("a", &[part("x")]), Key::new("a", &[part("x")]));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            client_key(ip("::ffff:192.0.2.7")),
            client_key(ip("192.0.2.7"))
        );
        assert_ne!(client_key(ip("192.0.2.7")), client_key(ip("192.0.2.8")));
    }

    #[test]
    fn window_expiry_resets() {
        let r = RateLimiter::default();
        assert!(!r.hit(k("k"), 1, Duration::ZERO));
        // A zero window has already expired, so the next hit starts a new one.
        assert!(!r.hit(k("k"), 1, Duration::ZERO));
    }

    /// The fault: once 200,000 distinct names had failed, a new key was not tracked at all, so
    /// guesses at a real account were never limited.
    #[test]
    fn a_flood_of_distinct_keys_does_not_stop_limiting_a_new_one() {
        let r = RateLimiter::default();
        let w = Duration::from_secs(900);
        for i in 0..200_100u32 {
            r.hit(Key::new("login:user", &[&i.to_le_bytes()]), 10, w);
        }
        assert!(r.len() <= DEFAULT_CAPACITY);
        let target = k("alice");
        for n in 1..=10 {
            assert!(!r.hit(target, 10, w), "attempt {n} is within the limit");
        }
        assert!(r.hit(target, 10, w), "the 11th guess is limited");
    }

    #[test]
    fn a_flood_cannot_flush_a_counter_that_holds_failures() {
        let r = RateLimiter::with_capacity(1_000);
        let w = Duration::from_secs(900);
        let target = k("alice");
        for _ in 0..9 {
            assert!(!r.hit(target, 10, w));
        }
        for i in 0..10_000u32 {
            r.hit(Key::new("flood", &[&i.to_le_bytes()]), 10, w);
        }
        assert!(
            !r.hit(target, 10, w),
            "the 10th guess is still counted as the 10th"
        );
        assert!(r.hit(target, 10, w), "and the 11th is limited");
    }

    #[test]
    fn a_table_full_of_repeated_failures_refuses_new_keys() {
        let r = RateLimiter::with_capacity(100);
        let w = Duration::from_secs(900);
        for i in 0..100u32 {
            let key = Key::new("flood", &[&i.to_le_bytes()]);
            r.hit(key, 10, w);
            r.hit(key, 10, w);
        }
        assert!(
            r.hit(k("newcomer"), 10, w),
            "untracked keys are limited, not free"
        );
        assert_eq!(r.len(), 100);
        // Once the window has passed, the old counters give way.
        let later = Instant::now() + Duration::from_secs(901);
        assert!(!r.hit_at(k("newcomer"), 10, w, later));
    }

    #[test]
    fn huge_keys_cost_no_more_than_small_ones() {
        let r = RateLimiter::with_capacity(100);
        let w = Duration::from_secs(900);
        let mut name = "x".repeat(64 << 10);
        for i in 0..300u32 {
            name.replace_range(..4, &format!("{i:04}"));
            r.hit(Key::new("login:user", &[name.as_bytes()]), 10, w);
        }
        assert!(r.len() <= 100);
        assert_eq!(std::mem::size_of::<Key>(), 16);
    }
}
