//! Cluster mode: a request for an account whose vshard another node owns is sent on to that
//! node and answered with its reply (DESIGN §5).
//!
//! The forwarding node has already authenticated the caller (to learn the account); the owner
//! authenticates the request again from the same shared catalog, so a forwarded request is
//! trusted for nothing but two facts, and only with the cluster's secret in
//! [`FORWARDED`]: that it must not be forwarded again (a stale owner map answers 503 instead of
//! sending it round in circles), and which address the client had ([`CLIENT`]), for login
//! limits and `myip`.
//!
//! A request is routed by its caller's account, except one that reads another account's
//! data (a public feed or dashboard, read by anybody): the node that finds that account's
//! vshard served elsewhere sends the request on to its owner, naming the account in
//! [`FOR_ACCOUNT`]. Such a request went at most two hops (to the caller's owner, then to the
//! data's) and is never sent further.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts};
use axum::response::Response;

pub(crate) mod batcher;
pub mod wire;

use batcher::Batchers;
pub use wire::{SubReply, SubRequest};

/// Carries the cluster's secret on node-to-node requests.
pub const FORWARDED: &str = "x-ynni-forwarded";
/// The original client's address on a forwarded request.
pub const CLIENT: &str = "x-ynni-client";
/// On a forwarded request that reads another account's data: that account's id, whose
/// owner must answer it (instead of the caller's).
pub const FOR_ACCOUNT: &str = "x-ynni-for";
/// On every reply in cluster mode: the node that produced it.
pub const NODE: &str = "x-ynni-node";

/// How long the owner may take to answer a forwarded request (a long `feed/data` read
/// included).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Headers that describe one connection, not the request, and are not passed on. `Host` is
/// kept: the owner compares a browser's `Origin` with it (see `csrf`), and the client named
/// the entry node, not the owner.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Which node serves which vshard, as the cluster's lease table last said.
pub struct Forwarder {
    node_id: String,
    secret: String,
    client: reqwest::Client,
    /// vshard → the owner's `advertise` address, for vshards owned by other nodes.
    owners: RwLock<HashMap<u32, String>>,
    /// Small writes go to their owner in batches.
    batchers: Batchers,
    /// KiB of request bodies being forwarded at once ([`FORWARD_BUDGET_KIB`]).
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// KiB of request bodies this node may hold while other nodes answer them: a slow or paused
/// owner keeps each forwarded body (up to the body limit, 4 MiB) for as long as the forward
/// may take, and 4,096 connections' bodies would hold 16 GiB. Past it, 503 with
/// `Retry-After` at once (never a wait: two nodes forwarding to each other must not each
/// wait on room the other holds).
pub const FORWARD_BUDGET_KIB: u32 = 256 << 10;

impl Forwarder {
    pub fn new(
        node_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self, reqwest::Error> {
        // No overall timeout on the client: a live page's stream stays open for as long as
        // the page; ordinary requests get theirs in `forward`.
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let secret = secret.into();
        Ok(Self {
            node_id: node_id.into(),
            batchers: Batchers::new(client.clone(), secret.clone(), FORWARD_TIMEOUT),
            secret,
            client,
            owners: RwLock::new(HashMap::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(FORWARD_BUDGET_KIB as usize)),
        })
    }

    /// Room for a body of `bytes` while it is forwarded (held until the answer's headers
    /// arrive), or `None` when the budget is spent (answer [`unavailable`]).
    pub fn room(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        Arc::clone(&self.in_flight).try_acquire_many_owned(kib).ok()
    }

    /// This node's `cluster.node_id`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Replaces the owner map (the cluster loop calls this after every round).
    pub fn set_owners(&self, owners: HashMap<u32, String>) {
        *self.owners.write().unwrap_or_else(|p| p.into_inner()) = owners;
    }

    /// The cluster's secret (node-to-node calls and handed-over connections carry it).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The `advertise` address of the node owning `vshard`, if another node owns it.
    pub fn owner(&self, vshard: u32) -> Option<String> {
        self.owners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&vshard)
            .cloned()
    }

    /// The other nodes that own vshards now, by address, each once.
    pub fn other_nodes(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .owners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// Another node's `ynni/nodestatus.json` (its id and shards), for the administrator page.
    pub async fn node_status(&self, addr: &str) -> Result<serde_json::Value, String> {
        let r = self
            .client
            .get(format!("http://{addr}/ynni/nodestatus.json"))
            .header(FORWARDED, &self.secret)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let body = r.bytes().await.map_err(|e| e.without_url().to_string())?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    /// The cluster's secret as a header value (`None` if it cannot be one).
    pub fn secret_header(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.secret).ok()
    }

    /// Whether the request came from another node of this cluster.
    pub fn is_forwarded(&self, headers: &HeaderMap) -> bool {
        headers.get(FORWARDED).is_some_and(|v| {
            ynni_core::password::constant_time_eq(v.as_bytes(), self.secret.as_bytes())
        })
    }

    /// The client's address a node of this cluster forwarded, if this request is such.
    pub fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        if !self.is_forwarded(headers) {
            return None;
        }
        headers.get(CLIENT)?.to_str().ok()?.parse().ok()
    }

    /// Sends the request to `owner` and returns its reply as it comes (status, headers, a
    /// streamed body). An owner that cannot be reached is a 503 with `Retry-After`: the vshard
    /// is probably changing hands.
    pub async fn forward(
        &self,
        owner: &str,
        parts: &Parts,
        body: Bytes,
        client: IpAddr,
    ) -> Response {
        self.send(owner, parts, body, client, None, Some(FORWARD_TIMEOUT))
            .await
    }

    /// [`Forwarder::forward`] for a request that reads the data of `account` (not the
    /// caller's), sent to that account's owner.
    pub async fn forward_for(
        &self,
        owner: &str,
        parts: &Parts,
        body: Bytes,
        client: IpAddr,
        account: i64,
    ) -> Response {
        self.send(
            owner,
            parts,
            body,
            client,
            Some(account),
            Some(FORWARD_TIMEOUT),
        )
        .await
    }

    /// The account a node of this cluster sent this request to be answered for, if it did.
    pub fn forwarded_for(&self, headers: &HeaderMap) -> Option<i64> {
        if !self.is_forwarded(headers) {
            return None;
        }
        headers.get(FOR_ACCOUNT)?.to_str().ok()?.parse().ok()
    }

    /// [`Forwarder::forward`] for a small write (`input/post`, `input/bulk`): sent in the next
    /// batch to `owner` (see [`batcher`]), the reply read whole.
    pub async fn forward_batched(
        &self,
        owner: &str,
        parts: &Parts,
        body: Bytes,
        client: IpAddr,
    ) -> Response {
        if body.len() > batcher::MAX_BODY {
            return self.forward(owner, parts, body, client).await;
        }
        let request = SubRequest {
            method: parts.method.clone(),
            target: parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            client,
            headers: passed_on(&parts.headers),
            body,
        };
        match self.batchers.send(owner, request).await {
            Some(reply) => {
                let mut out = Response::new(Body::from(reply.body));
                *out.status_mut() = reply.status;
                *out.headers_mut() = reply.headers;
                out
            }
            None => unavailable(),
        }
    }

    /// [`Forwarder::forward`] for a reply that streams for as long as the client listens (a
    /// live page): no overall deadline.
    pub async fn forward_stream(
        &self,
        owner: &str,
        parts: &Parts,
        body: Bytes,
        client: IpAddr,
    ) -> Response {
        self.send(owner, parts, body, client, None, None).await
    }

    async fn send(
        &self,
        owner: &str,
        parts: &Parts,
        body: Bytes,
        client: IpAddr,
        account: Option<i64>,
        timeout: Option<Duration>,
    ) -> Response {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("http://{owner}{path}");
        let mut headers = passed_on(&parts.headers);
        if let Ok(secret) = HeaderValue::from_str(&self.secret) {
            headers.insert(HeaderName::from_static(FORWARDED), secret);
        }
        if let Ok(ip) = HeaderValue::from_str(&client.to_string()) {
            headers.insert(HeaderName::from_static(CLIENT), ip);
        }
        if let Some(account) = account {
            headers.insert(
                HeaderName::from_static(FOR_ACCOUNT),
                HeaderValue::from(account),
            );
        }
        let mut request = self
            .client
            .request(parts.method.clone(), &url)
            .headers(headers)
            .body(body);
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let sent = request.send().await;
        let reply = match sent {
            Ok(r) => r,
            Err(e) => {
                // Without the URL: its query may hold the client's apikey.
                let e = e.without_url();
                tracing::warn!(owner, error = %e, "forwarding to the vshard's owner failed");
                return unavailable();
            }
        };
        let https = parts.extensions.get::<crate::server::Https>().is_some();
        let mut out = Response::builder().status(reply.status());
        if let Some(h) = out.headers_mut() {
            for (name, value) in reply.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
                    // The owner saw plain HTTP from this node; the client came over HTTPS:
                    // its cookies must not be sent back over plain HTTP.
                    let value = if https && name == header::SET_COOKIE {
                        secure_cookie(value)
                    } else {
                        value.clone()
                    };
                    h.append(name.clone(), value);
                }
            }
        }
        out.body(Body::from_stream(reply.bytes_stream()))
            .unwrap_or_else(|_| unavailable())
    }
}

/// A `Set-Cookie` value with the `Secure` attribute, added if it lacks it.
fn secure_cookie(value: &HeaderValue) -> HeaderValue {
    let secure = value.to_str().is_ok_and(|v| {
        v.split(';')
            .skip(1)
            .any(|a| a.trim().eq_ignore_ascii_case("secure"))
    });
    if secure {
        return value.clone();
    }
    let mut bytes = value.as_bytes().to_vec();
    bytes.extend_from_slice(b"; Secure");
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| value.clone())
}

/// A request's headers as they are passed on to another node: without those describing the
/// connection, and without any claim to come from a node (the sender adds its own).
pub fn passed_on(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(FORWARDED);
    headers.remove(CLIENT);
    headers.remove(FOR_ACCOUNT);
    headers
}

/// The account's vshard has no owner this node can reach right now.
pub fn unavailable() -> Response {
    let mut r = crate::reply::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Account moving between servers, retry shortly",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_forwarded_back_to_an_https_client_are_secure() {
        let plain = HeaderValue::from_static("ynni_session=abc; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(
            secure_cookie(&plain),
            "ynni_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let already = HeaderValue::from_static("ynni_session=abc; Path=/; secure");
        assert_eq!(secure_cookie(&already), already);
        // A value merely containing the word is not the attribute.
        let named = HeaderValue::from_static("secure=1; Path=/");
        assert_eq!(secure_cookie(&named), "secure=1; Path=/; Secure");
    }

    /// Bodies being forwarded share a budget: past it, no room (a 503 at once), and room again
    /// once one is answered.
    #[test]
    fn forwarded_bodies_share_a_budget() {
        let f = Forwarder::new("n1", "s3cret-of-the-cluster").unwrap();
        let four_mib = 4 << 20;
        let held: Vec<_> = (0..(FORWARD_BUDGET_KIB as usize * 1024 / four_mib))
            .map(|_| f.room(four_mib).expect("room"))
            .collect();
        assert!(f.room(four_mib).is_none(), "the budget is spent");
        assert!(f.room(0).is_none(), "even a small body waits for room");
        drop(held);
        assert!(f.room(four_mib).is_some());
    }

    #[test]
    fn only_the_clusters_secret_marks_a_request_forwarded() {
        let f = Forwarder::new("n1", "s3cret-of-the-cluster").unwrap();
        let mut h = HeaderMap::new();
        assert!(!f.is_forwarded(&h));
        h.insert(FORWARDED, HeaderValue::from_static("guess"));
        h.insert(CLIENT, HeaderValue::from_static("192.0.2.7"));
        assert!(!f.is_forwarded(&h));
        assert_eq!(
            f.forwarded_client(&h),
            None,
            "a forged client address is ignored"
        );
        h.insert(FORWARDED, HeaderValue::from_static("s3cret-of-the-cluster"));
        assert!(f.is_forwarded(&h));
        assert_eq!(f.forwarded_client(&h), Some("192.0.2.7".parse().unwrap()));
        h.insert(FOR_ACCOUNT, HeaderValue::from_static("42"));
        assert_eq!(f.forwarded_for(&h), Some(42));
        h.insert(FORWARDED, HeaderValue::from_static("guess"));
        assert_eq!(f.forwarded_for(&h), None, "a forged account is ignored");
        assert!(passed_on(&h).get(FOR_ACCOUNT).is_none());
    }

    #[test]
    fn the_owner_map_is_replaced_whole() {
        let f = Forwarder::new("n1", "x").unwrap();
        f.set_owners(HashMap::from([(3, "10.0.0.2:8080".to_string())]));
        assert_eq!(f.owner(3).as_deref(), Some("10.0.0.2:8080"));
        f.set_owners(HashMap::from([(4, "10.0.0.3:8080".to_string())]));
        assert_eq!(f.owner(3), None);
    }
}
