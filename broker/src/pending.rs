//! Handshakes in progress per client address.
//!
//! Between the TCP accept and the end of the login check a connection holds one of the
//! broker's connection permits for up to the CONNECT deadline (10 s) while sending nothing of
//! use. Without a bound per address, one host opening connections and never sending a CONNECT
//! holds every permit and shuts out all devices. So each address (an IPv4 address, or an IPv6
//! /64, as the login limits count) may have at most a set number of handshakes in progress;
//! a connection past that is closed at once, before anything is read from it. Handshakes of
//! real devices take milliseconds, so even many devices behind one NAT rarely have more than a
//! few in progress; a device refused here reconnects after its back-off like after any failed
//! connection. Loopback addresses are not counted when the broker is set up so: a local TCP
//! proxy in front of the broker, or a benchmark on the same machine, brings every client from
//! one of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ynni_core::ratelimit::client_key;

/// The handshakes in progress of every address.
#[derive(Debug)]
pub(crate) struct Pending {
    /// At most this many per address; 0: no limit.
    limit: usize,
    count_loopback: bool,
    counts: Mutex<HashMap<[u8; 16], usize>>,
}

/// One handshake in progress; it ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Handshake {
    pending: Arc<Pending>,
    key: Option<[u8; 16]>,
}

impl Pending {
    pub(crate) fn new(limit: usize, count_loopback: bool) -> Arc<Self> {
        Arc::new(Self {
            limit,
            count_loopback,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A handshake from `ip`, or `None` when that address already has the limit in progress.
    pub(crate) fn begin(self: &Arc<Self>, ip: IpAddr) -> Option<Handshake> {
        let counted = self.limit > 0 && (self.count_loopback || !is_loopback(ip));
        let key = if counted {
            let key = client_key(ip);
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(key).or_insert(0);
            if *n >= self.limit {
                return None;
            }
            *n += 1;
            Some(key)
        } else {
            None
        };
        Some(Handshake {
            pending: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.counts.lock().map(|c| c.len()).unwrap_or(0)
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let Some(key) = self.key else {
            return;
        };
        let mut counts = self
            .pending
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn each_address_has_at_most_the_limit_in_progress() {
        let p = Pending::new(2, false);
        let a1 = p.begin(ip("192.0.2.1")).expect("first");
        let a2 = p.begin(ip("192.0.2.1")).expect("second");
        assert!(p.begin(ip("192.0.2.1")).is_none(), "a third is refused");
        assert!(
            p.begin(ip("::ffff:192.0.2.1")).is_none(),
            "the same address mapped to IPv6"
        );
        let other = p.begin(ip("192.0.2.9")).expect("another address");
        drop(a1);
        let a3 = p
            .begin(ip("192.0.2.1"))
            .expect("a finished handshake frees its place");
        drop((a2, a3, other));
        assert_eq!(p.addresses(), 0, "nothing is kept for addresses with none");
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address() {
        let p = Pending::new(1, false);
        let _a = p.begin(ip("2001:db8:1:2::1")).expect("first");
        assert!(p.begin(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(p.begin(ip("2001:db8:1:3::1")).is_some(), "another /64");
    }

    #[test]
    fn loopback_counts_only_when_asked_and_zero_is_no_limit() {
        let local = Pending::new(1, false);
        let held: Vec<_> = (0..5)
            .map(|_| local.begin(ip("127.0.0.1")).expect("not counted"))
            .collect();
        assert_eq!(held.len(), 5);
        assert!(local.begin(ip("::1")).is_some());
        let counted = Pending::new(1, true);
        let _h = counted.begin(ip("127.0.0.1")).expect("first");
        assert!(counted.begin(ip("127.0.0.1")).is_none());
        let off = Pending::new(0, true);
        let held: Vec<_> = (0..5)
            .map(|_| off.begin(ip("192.0.2.1")).expect("no limit"))
            .collect();
        assert_eq!(held.len(), 5);
    }
}
