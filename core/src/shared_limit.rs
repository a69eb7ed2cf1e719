//! A cluster's login limits, counted once for all its nodes in Redis (`cluster.redis`), with
//! the networks each account logged in from remembered there too (as
//! [`crate::login_limit::LoginLimiter`] remembers them on one node).
//!
//! Each node keeps its own [`crate::login_limit::LoginLimiter`] (and registration limiter),
//! whose counters alone would let a client spreading attempts over N nodes make N times the
//! limit. Registrations per address are counted here too ([`SharedLimits::over`]). With Redis configured, a
//! login also counts on a counter per address and one per account that every node shares,
//! with the same limit and window; the password is not checked once either is over. A correct
//! password takes the account's count back (and the address's, as the local limiter does), a
//! form refused before any password was checked takes both back.
//!
//! Redis is never the only copy of anything: if it cannot be reached, the local limits still
//! apply and the failure is logged; counters that expire or are lost only reopen the window.

use std::net::IpAddr;
use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SharedLimitError {
    #[error("invalid configuration: `cluster.redis` {0}")]
    Setting(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The counters one attempt landed on, to take back later, and the mark a correct password
/// sets on the account's address.
#[derive(Debug, Clone)]
pub struct SharedAttempt {
    ip: Option<String>,
    account: String,
    known: String,
}

/// How long a network an account logged in from stays known to the cluster.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 86_400);

#[derive(Clone)]
pub struct SharedLimits {
    conn: ConnectionManager,
}

impl SharedLimits {
    /// Connects to `url`, failing within `timeout` when Redis cannot be reached.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, SharedLimitError> {
        let client = redis::Client::open(url)
            .map_err(|e| SharedLimitError::Setting(format!("is not a Redis address: {e}")))?;
        let conn = tokio::time::timeout(timeout, ConnectionManager::new(client))
            .await
            .map_err(|_| {
                SharedLimitError::Setting(format!("cannot be reached within {timeout:?}"))
            })?
            .map_err(|e| SharedLimitError::Setting(format!("cannot be reached: {e}")))?;
        Ok(Self { conn })
    }

    /// Counts an attempt by `ip` at `username` in `scope` (`login`, `auth`); `Ok(None)` when the
    /// address's or the account's count is over `limit` within `window`.
    pub async fn begin(
        &self,
        scope: &str,
        ip: IpAddr,
        username: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Option<SharedAttempt>, SharedLimitError> {
        // As the local limiter does: a network the account logged in from before counts on
        // its own counter for the account, so strangers guessing at the account cannot lock
        // its owner out; the address's own counter is skipped (strangers may share it), but
        // for `user/auth`, counted per address whatever.
        let (user, net) = (username.to_ascii_lowercase(), network(ip));
        let pair = format!("{user}\0{net}");
        let known_key = key(scope, "known", &pair);
        let mut conn = self.conn.clone();
        let known: bool = redis::cmd("EXISTS")
            .arg(&known_key)
            .query_async(&mut conn)
            .await?;
        let attempt = SharedAttempt {
            ip: (!known || scope == "auth").then(|| key(scope, "ip", &net)),
            account: if known {
                key(scope, "pair", &pair)
            } else {
                key(scope, "user", &user)
            },
            known: known_key,
        };
        let mut keys = vec![attempt.account.as_str()];
        keys.extend(attempt.ip.as_deref());
        let counts = self.count(&keys, window).await?;
        let over = counts.iter().any(|&n| n > u64::from(limit));
        Ok((!over).then_some(attempt))
    }

    /// Counts one event of `scope` by `ip` (a registration); true when that makes more than
    /// `limit` within `window`.
    pub async fn over(
        &self,
        scope: &str,
        ip: IpAddr,
        limit: u32,
        window: Duration,
    ) -> Result<bool, SharedLimitError> {
        let k = key(scope, "ip", &network(ip));
        let counts = self.count(&[&k], window).await?;
        Ok(counts.iter().any(|&n| n > u64::from(limit)))
    }

    /// Adds one to each counter and returns the new counts. Each counter lives one window
    /// from its first count (`EXPIRE … NX` keeps the first expiry), as the local limiter's
    /// windows do.
    async fn count(&self, keys: &[&str], window: Duration) -> Result<Vec<u64>, SharedLimitError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in keys {
            pipe.incr(*k, 1)
                .cmd("EXPIRE")
                .arg(*k)
                .arg(window.as_secs().max(1))
                .arg("NX")
                .ignore();
        }
        let mut conn = self.conn.clone();
        Ok(pipe.query_async(&mut conn).await?)
    }

    /// The password was right: the account's count is taken back, and the address's unless
    /// `keep_ip` (emoncms counts every `user/auth` call per address).
    pub async fn succeeded(
        &self,
        a: &SharedAttempt,
        keep_ip: bool,
    ) -> Result<(), SharedLimitError> {
        let mut keys = vec![a.account.as_str()];
        if !keep_ip {
            keys.extend(a.ip.as_deref());
        }
        self.take_back(&keys).await?;
        let mut conn = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(&a.known)
            .arg(1)
            .arg("EX")
            .arg(KNOWN_FOR.as_secs())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Nothing was guessed: both counts are taken back.
    pub async fn not_a_guess(&self, a: &SharedAttempt) -> Result<(), SharedLimitError> {
        let mut keys = vec![a.account.as_str()];
        keys.extend(a.ip.as_deref());
        self.take_back(&keys).await
    }

    async fn take_back(&self, keys: &[&str]) -> Result<(), SharedLimitError> {
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.decr(*k, 1).ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }
}

/// A counter's name: fixed length whatever the username, and no client text in Redis.
fn key(scope: &str, kind: &str, value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    format!("ynni:limit:{scope}:{kind}:{}", hex::encode(&digest[..16]))
}

/// The network an address is counted by, as the local limiter counts it
/// ([`crate::ratelimit::client_key`]): an IPv4 address, or an IPv6 address's /64 (one
/// household's or one server's, which can rotate through all of it).
fn network(ip: IpAddr) -> String {
    hex::encode(crate::ratelimit::client_key(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_length_and_case_blind_for_accounts() {
        let a = key("login", "user", &"Alice".to_ascii_lowercase());
        let b = key("login", "user", "alice");
        assert_eq!(a, b);
        assert_ne!(a, key("auth", "user", "alice"));
        assert_eq!(
            key("login", "user", &"x".repeat(500)).len(),
            a.len(),
            "the length does not follow the name's"
        );
    }

    /// An IPv6 client counts by its /64, as the local limiter counts it: rotating through its
    /// own network gains nothing.
    #[test]
    fn addresses_count_by_network() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        assert_eq!(network(ip("2001:db8::1")), network(ip("2001:db8::ffff:2")));
        assert_ne!(network(ip("2001:db8::1")), network(ip("2001:db8:0:1::1")));
        assert_ne!(network(ip("192.0.2.1")), network(ip("192.0.2.2")));
    }
}
