//! Handshakes in progress per client address.
//!
//! Between the TCP accept and the end of the login check a connection holds one of the
//! broker's connection permits (for up to the CONNECT deadline, then the login check) while
//! sending nothing of use. Without a bound per address, one host opening connections and never
//! sending a CONNECT holds every permit and shuts out all devices. So each address (an IPv4
//! address, or an IPv6 /64, as the login limits count) keeps at most a set number of
//! handshakes in progress, and a new one past that ends the **oldest** of them.
//!
//! Ending the oldest rather than refusing the newest matters where many clients share an
//! address (a NAT, a TCP load balancer or proxy that hides client addresses): a host that
//! holds idle connections there cannot shut the others out, because its idle connections are
//! the oldest and each new connection ends one of them. A real device's handshake takes
//! milliseconds, so it is ended only if the address starts more than the limit of handshakes
//! within that time (at 64, some thousands a second), and it then reconnects after its
//! back-off, as after any failed connection.
//!
//! Addresses the broker is told to trust are not counted: [`is_loopback`] (a local TCP proxy
//! or a benchmark brings every client from it) and, in a cluster, the other nodes, which pass
//! on every connection of the users this node serves.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use ynni_core::ratelimit::client_key;

/// Addresses whose handshakes are not counted.
pub type Trusted = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// The handshakes in progress of every address.
pub(crate) struct Pending {
    /// At most this many per address; 0: no limit.
    limit: usize,
    trusted: Trusted,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Per address, its handshakes in progress, oldest first.
    open: HashMap<[u8; 16], VecDeque<(u64, Arc<Notify>)>>,
}

/// One handshake in progress; it ends when this is dropped.
pub(crate) struct Handshake {
    pending: Arc<Pending>,
    counted: Option<([u8; 16], u64)>,
    ended: Arc<Notify>,
}

impl Handshake {
    /// Completes when a newer handshake of the same address has ended this one.
    pub(crate) async fn ended(&self) {
        self.ended.notified().await;
    }
}

impl Pending {
    pub(crate) fn new(limit: usize, trusted: Trusted) -> Arc<Self> {
        Arc::new(Self {
            limit,
            trusted,
            state: Mutex::new(State::default()),
        })
    }

    /// Whether `ip` is one the limit does not count (loopback, the cluster's nodes).
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        (self.trusted)(ip)
    }

    /// A handshake from `ip`; when that address already has the limit in progress, the oldest
    /// of them is told to end.
    pub(crate) fn begin(self: &Arc<Self>, ip: IpAddr) -> Handshake {
        let ended = Arc::new(Notify::new());
        let counted = (self.limit > 0 && !(self.trusted)(ip)).then(|| {
            let key = client_key(ip);
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.next_id += 1;
            let id = state.next_id;
            let open = state.open.entry(key).or_default();
            while open.len() >= self.limit {
                if let Some((_, oldest)) = open.pop_front() {
                    // Stored if that connection is not waiting yet, so it ends when it does.
                    oldest.notify_one();
                }
            }
            open.push_back((id, ended.clone()));
            (key, id)
        });
        Handshake {
            pending: self.clone(),
            counted,
            ended,
        }
    }

    #[cfg(test)]
    fn in_progress(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.open.values().map(VecDeque::len).sum())
            .unwrap_or(0)
    }
}

/// A loopback address, IPv4-mapped ones included.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let Some((key, id)) = self.counted else {
            return;
        };
        let mut state = self.pending.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = state.open.get_mut(&key) {
            // Absent when a newer handshake already ended this one.
            open.retain(|(i, _)| *i != id);
            if open.is_empty() {
                state.open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn none() -> Trusted {
        Arc::new(|_| false)
    }

    async fn is_ended(h: &Handshake) -> bool {
        tokio::time::timeout(Duration::from_millis(20), h.ended())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_handshake_past_the_limit_ends_the_oldest_of_its_address() {
        let p = Pending::new(2, none());
        let a1 = p.begin(ip("192.0.2.1"));
        let a2 = p.begin(ip("192.0.2.1"));
        let other = p.begin(ip("192.0.2.9"));
        assert!(!is_ended(&a1).await && !is_ended(&a2).await);
        let a3 = p.begin(ip("::ffff:192.0.2.1"));
        assert!(is_ended(&a1).await, "the oldest ends");
        assert!(!is_ended(&a2).await && !is_ended(&a3).await);
        assert!(!is_ended(&other).await, "other addresses are not touched");
        assert_eq!(p.in_progress(), 3);
        drop(a2);
        let a4 = p.begin(ip("192.0.2.1"));
        assert!(!is_ended(&a3).await, "a finished handshake freed its place");
        drop((a1, a3, a4, other));
        assert_eq!(
            p.in_progress(),
            0,
            "nothing is kept for addresses with none"
        );
    }

    #[tokio::test]
    async fn an_ipv6_64_counts_as_one_address() {
        let p = Pending::new(1, none());
        let a = p.begin(ip("2001:db8:1:2::1"));
        let _b = p.begin(ip("2001:db8:1:2:ffff::9"));
        assert!(is_ended(&a).await);
        let c = p.begin(ip("2001:db8:1:3::1"));
        assert!(!is_ended(&c).await, "another /64");
    }

    #[tokio::test]
    async fn loopback_trusted_addresses_and_a_zero_limit_are_not_counted() {
        let trusted: Trusted =
            Arc::new(|ip| is_loopback(ip) || ip == "192.0.2.7".parse::<IpAddr>().expect("ip"));
        let p = Pending::new(1, trusted);
        for addr in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "192.0.2.7"] {
            let first = p.begin(ip(addr));
            let _second = p.begin(ip(addr));
            assert!(!is_ended(&first).await, "{addr} counted");
        }
        assert_eq!(p.in_progress(), 0);
        let off = Pending::new(0, none());
        let first = off.begin(ip("192.0.2.1"));
        let _second = off.begin(ip("192.0.2.1"));
        assert!(!is_ended(&first).await);
    }
}
