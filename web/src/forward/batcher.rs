//! Forwarded writes to one owner, sent together.
//!
//! Devices post small requests (`input/post`, `input/bulk`) many times a second. Sent one by
//! one, each forwarded post costs a request and a reply between the nodes, and a parse and a
//! wake-up on both; together they cost three times what the post itself does. So a forwarded
//! write joins a queue per owner, and one task per owner sends what has queued as one
//! `POST /ynni/batch` (format in [`super::wire`]).
//!
//! Nothing waits to fill a batch when the owner is not answering one already: the first
//! request goes at once, alone if it is alone, so an idle cluster adds no latency. While a
//! batch is on its way, a request waits for its answer, up to [`GATHER`], and goes with those
//! that arrived meanwhile; only a batch out longer than that lets another go beside it, up to
//! [`IN_FLIGHT`]. Against a local owner (answers in a fraction of a millisecond) batches are
//! sent one at a time and grow with the load; with four sent as soon as each had a request,
//! they stayed small and the owner paid its per-batch parse and wake-ups for nearly every
//! request (measured with a connection per request, as emonhub posts: docs/capacity.md). An
//! owner whose log syncs slowly (a network filesystem) still has up to [`IN_FLIGHT`] batches
//! of up to [`MAX_REQUESTS`] on their way, one more every [`GATHER`] while requests queue.
//!
//! A batch the owner does not answer (unreachable, timed out, refused) answers each of its
//! requests 503 with `Retry-After`, as a failed single forward does, and so are the requests
//! that queued before it failed: an owner that went away would otherwise cost each batch
//! behind it the whole timeout in turn. Requests queued after the failure try the owner again.
//! A request whose client went away while it queued is not sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use super::wire::{self, SubReply, SubRequest};

/// Batches on their way to one owner at once, at most.
const IN_FLIGHT: usize = 4;
/// How long a request waits for the batch on its way to be answered before it goes in one of
/// its own (see the module docs).
const GATHER: Duration = Duration::from_millis(2);
/// Requests in one batch, at most (the owner refuses a batch of more).
pub const MAX_REQUESTS: usize = 256;
/// A batch stops growing past this many bytes.
const MAX_BYTES: usize = 1 << 20;
/// A request with a larger body is forwarded on its own.
pub const MAX_BODY: usize = 64 << 10;
/// Requests queued for one owner before more are refused 503 (the owner is not keeping up).
const QUEUE: usize = 8192;

struct Pending {
    request: SubRequest,
    reply: oneshot::Sender<SubReply>,
    queued: Instant,
}

/// One queue and sending task per owner address.
pub struct Batchers {
    client: reqwest::Client,
    secret: String,
    timeout: Duration,
    /// [`GATHER`], except in tests.
    gather: Duration,
    queues: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
}

impl Batchers {
    pub fn new(client: reqwest::Client, secret: String, timeout: Duration) -> Self {
        Self {
            client,
            secret,
            timeout,
            gather: GATHER,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// A longer wait for company, so that a test sees gathering without racing the clock.
    #[cfg(test)]
    fn gathering_for(mut self, gather: Duration) -> Self {
        self.gather = gather;
        self
    }

    /// Sends `request` to `owner` in the next batch and returns its reply; `None` when the
    /// owner could not be asked (the caller answers 503).
    pub async fn send(&self, owner: &str, request: SubRequest) -> Option<SubReply> {
        let queue = self.queue(owner);
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            request,
            reply: tx,
            queued: Instant::now(),
        };
        queue.try_send(pending).ok()?;
        rx.await.ok()
    }

    fn queue(&self, owner: &str) -> mpsc::Sender<Pending> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = queues.get(owner).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let sender = Sender {
            client: self.client.clone(),
            url: format!("http://{owner}/ynni/batch"),
            secret: self.secret.clone(),
            timeout: self.timeout,
            gather: self.gather,
            answered: Notify::new(),
            failed: Mutex::new(None),
        };
        tokio::spawn(sender.run(rx));
        queues.insert(owner.to_string(), tx.clone());
        tx
    }
}

struct Sender {
    client: reqwest::Client,
    url: String,
    secret: String,
    timeout: Duration,
    gather: Duration,
    /// Told when a batch is answered (or fails), for a request waiting to gather.
    answered: Notify,
    /// When a batch last failed: what queued before then is answered 503, not sent.
    failed: Mutex<Option<Instant>>,
}

impl Sender {
    async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            // The slot first: while none is free, requests gather in the queue.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Some(mut first) = queue.recv().await else {
                return;
            };
            // Another batch is out: wait for its answer (up to GATHER) so that what arrives
            // meanwhile goes together. `enable` before the check, so an answer between the two
            // is not missed.
            let answered = this.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if slots.available_permits() + 1 < IN_FLIGHT {
                let _ = tokio::time::timeout(this.gather, answered).await;
            }
            let failed = this.failed.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(at) = failed {
                // What queued before the failure is dropped (each is answered 503); the first
                // request queued since tries the owner again.
                let mut next = (first.queued > at).then_some(first);
                while next.is_none() {
                    match queue.try_recv() {
                        Ok(p) if p.queued <= at => {}
                        Ok(p) => next = Some(p),
                        Err(_) => break,
                    }
                }
                match next {
                    Some(p) => first = p,
                    None => continue,
                }
            }
            let mut bytes = first.request.encoded_len();
            let mut batch = vec![first];
            while batch.len() < MAX_REQUESTS && bytes < MAX_BYTES {
                match queue.try_recv() {
                    Ok(p) if p.reply.is_closed() => {}
                    Ok(p) => {
                        bytes += p.request.encoded_len();
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            batch.retain(|p| !p.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            let this = this.clone();
            tokio::spawn(async move {
                if !this.deliver(batch).await {
                    *this.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                }
                drop(slot);
                this.answered.notify_waiters();
            });
        }
    }

    /// Sends `batch` and hands each request its reply; false when the owner did not answer.
    async fn deliver(&self, batch: Vec<Pending>) -> bool {
        let (requests, waiters): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        match self.post(&requests).await {
            Ok(replies) if replies.len() == waiters.len() => {
                for (waiter, reply) in waiters.into_iter().zip(replies) {
                    let _ = waiter.send(reply);
                }
                true
            }
            Ok(replies) => {
                tracing::warn!(
                    sent = waiters.len(),
                    answered = replies.len(),
                    "a batch's reply did not answer every request"
                );
                true
            }
            // Dropping the waiters answers each 503.
            Err(e) => {
                tracing::warn!(error = %e, "forwarding a batch to the vshard's owner failed");
                false
            }
        }
    }

    async fn post(&self, requests: &[SubRequest]) -> Result<Vec<SubReply>, String> {
        let reply = self
            .client
            .post(&self.url)
            .header(super::FORWARDED, &self.secret)
            .timeout(self.timeout)
            .body(wire::encode_requests(requests))
            .send()
            .await
            // Without the URL: nothing secret is in it, but errors are logged the same way
            // everywhere.
            .map_err(|e| e.without_url().to_string())?;
        if !reply.status().is_success() {
            return Err(format!("the owner answered {}", reply.status()));
        }
        let body: Bytes = reply
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        wire::decode_replies(body).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    //! A real owner on a local port that holds each batch until the test lets it answer.

    use std::net::{IpAddr, Ipv4Addr};

    use axum::http::{HeaderMap, Method, StatusCode};
    use futures_util::FutureExt as _;

    use super::*;

    struct Owner {
        addr: String,
        /// Requests in each batch, in arrival order.
        batches: Arc<Mutex<Vec<usize>>>,
        /// One permit answers one batch.
        gate: Arc<Semaphore>,
    }

    async fn owner(fail: bool) -> Owner {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let (seen, held) = (batches.clone(), gate.clone());
        let app = axum::Router::new().route(
            "/ynni/batch",
            axum::routing::post(move |body: Bytes| async move {
                let requests = wire::decode_requests(body).expect("a batch");
                seen.lock().expect("lock").push(requests.len());
                held.acquire().await.expect("gate").forget();
                if fail {
                    return (StatusCode::INTERNAL_SERVER_ERROR, Vec::new());
                }
                let replies: Vec<SubReply> = requests
                    .iter()
                    .map(|r| SubReply {
                        status: StatusCode::OK,
                        headers: HeaderMap::new(),
                        body: Bytes::from(r.target.clone()),
                    })
                    .collect();
                (StatusCode::OK, wire::encode_replies(&replies))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Owner {
            addr,
            batches,
            gate,
        }
    }

    fn request(n: usize) -> SubRequest {
        SubRequest {
            method: Method::GET,
            target: format!("/input/post?n={n}"),
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    fn batchers() -> Arc<Batchers> {
        Arc::new(Batchers::new(
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            "secret".into(),
            Duration::from_secs(30),
        ))
    }

    async fn batches_seen(owner: &Owner, n: usize) {
        let seen = async {
            while owner.batches.lock().expect("lock").len() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), seen)
            .await
            .unwrap_or_else(|_| panic!("the owner never saw batch {n}"));
    }

    /// Requests that arrive while a batch is out wait for its answer and go together; one
    /// whose client went away meanwhile is not sent.
    #[tokio::test]
    async fn requests_gather_while_a_batch_is_out() {
        let owner = owner(false).await;
        let b = Arc::new(
            Arc::into_inner(batchers())
                .expect("one owner")
                .gathering_for(Duration::from_secs(30)),
        );
        let send = |n: usize| {
            let (b, addr) = (b.clone(), owner.addr.clone());
            tokio::spawn(async move { b.send(&addr, request(n)).await })
        };
        let first = send(0);
        batches_seen(&owner, 1).await;
        // One at a time, each given the time to be sent at once: they wait for the first
        // batch's answer instead, with a free slot for each.
        let mut rest = Vec::new();
        for n in 1..=9 {
            rest.push(send(n));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (b2, addr) = (b.clone(), owner.addr.clone());
        let gone = async move { b2.send(&addr, request(99)).await }.boxed();
        assert!(
            gone.now_or_never().is_none(),
            "queued, then its client leaves"
        );
        assert_eq!(
            owner.batches.lock().expect("lock").len(),
            1,
            "the rest wait"
        );
        owner.gate.add_permits(2);
        let first = first.await.expect("join").expect("answered");
        assert_eq!(first.body, "/input/post?n=0");
        for (reply, n) in rest.into_iter().zip(1..) {
            let reply = reply.await.expect("join").expect("answered");
            assert_eq!(reply.body, format!("/input/post?n={n}"));
        }
        assert_eq!(*owner.batches.lock().expect("lock"), [1, 9]);
    }

    /// When a batch fails, the requests queued behind it are answered at once (503 to their
    /// clients) instead of each batch waiting out its own timeout in turn.
    #[tokio::test]
    async fn a_failed_batch_fails_what_queued_behind_it() {
        let owner = owner(true).await;
        let b = batchers();
        let mut out = Vec::new();
        for n in 0..IN_FLIGHT {
            let (b1, addr) = (b.clone(), owner.addr.clone());
            out.push(tokio::spawn(
                async move { b1.send(&addr, request(n)).await },
            ));
            batches_seen(&owner, n + 1).await;
        }
        let queued: Vec<_> = (0..10)
            .map(|n| {
                let (b, addr) = (b.clone(), owner.addr.clone());
                tokio::spawn(async move { b.send(&addr, request(100 + n)).await })
            })
            .collect();
        // Every slot is taken: the ten wait in the queue.
        tokio::task::yield_now().await;
        owner.gate.add_permits(1);
        for q in queued {
            // Not sent at all: with the other batches held, a request sent would never return.
            let reply = tokio::time::timeout(Duration::from_secs(10), q)
                .await
                .expect("answered without the owner");
            assert!(reply.expect("join").is_none(), "answered 503");
        }
        assert_eq!(owner.batches.lock().expect("lock").len(), IN_FLIGHT);
        owner.gate.add_permits(IN_FLIGHT);
        for o in out {
            assert!(o.await.expect("join").is_none());
        }
        // A request after the failure tries the owner again.
        let addr = owner.addr.clone();
        let later = tokio::spawn(async move { b.send(&addr, request(200)).await });
        batches_seen(&owner, IN_FLIGHT + 1).await;
        owner.gate.add_permits(1);
        assert!(
            later.await.expect("join").is_none(),
            "this owner fails every batch"
        );
    }
}
