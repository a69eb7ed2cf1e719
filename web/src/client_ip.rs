//! The address a request comes from: the socket's peer, unless the peer is a trusted reverse
//! proxy, in which case the proxy's `X-Forwarded-For` says who its client was.
//!
//! Each proxy appends the address it received the request from, so the list reads
//! `client, proxy1, proxy2`. Only entries added by trusted proxies can be believed: walking
//! from the right, the first address that is not a trusted proxy is the client. Anything to
//! its left was written by that client and may be forged.

use std::net::IpAddr;

use axum::http::HeaderMap;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage cannot be attributed: stop at the last address known good.
            return client;
        };
        client = ip;
        if !trusted.contains(&ip) {
            break;
        }
    }
    client
}

/// One entry: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &[ip("127.0.0.1")]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_its_client() {
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        let h = headers(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // Forged entries left of the real client are not believed.
        let h = headers(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        let h = headers(&["[2001:db8::7]:443, 203.0.113.9:5000"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn without_a_usable_header_the_proxy_is_the_client() {
        let trusted = [ip("127.0.0.1")];
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&[]), &trusted),
            ip("127.0.0.1")
        );
        let h = headers(&["not-an-address"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
        let h = headers(&["203.0.113.9, junk"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
    }
}
