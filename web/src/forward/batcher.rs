//! Forwarded writes to one owner, sent together.
//!
//! Devices post small requests (`input/post`, `input/bulk`) many times a second. Sent one by
//! one, each forwarded post costs a request and a reply between the nodes, and a parse and a
//! wake-up on both; together they cost three times what the post itself does. So a forwarded
//! write joins a queue per owner, and one task per owner sends what has queued as one
//! `POST /ynni/batch` (format in [`super::wire`]).
//!
//! Nothing waits to fill a batch: when the owner is not answering one already, the first
//! request goes at once, alone if it is alone. While a batch is on its way, requests gather,
//! so batches grow with the load and an idle cluster adds no latency. One batch at a time:
//! measured with a connection per request (as emonhub posts), four in flight kept batches
//! small and the owner paid its per-batch parse and wake-ups for each (0.034–0.036 CPU-ms per
//! request against 0.027–0.030 with one, `benches/cluster.sh`, docs/capacity.md),
//! while the wait a request may add is one round trip to the owner (longer behind a batch of
//! large `input/bulk` bodies, which stops growing at [`MAX_BYTES`]). A batch the owner does
//! not answer (unreachable, timed out, refused) answers each of its requests 503 with
//! `Retry-After`, as a failed single forward does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::wire::{self, SubReply, SubRequest};

/// Batches on their way to one owner at once (see the module docs for why one).
const IN_FLIGHT: usize = 1;
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
}

/// One queue and sending task per owner address.
pub struct Batchers {
    client: reqwest::Client,
    secret: String,
    timeout: Duration,
    queues: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
}

impl Batchers {
    pub fn new(client: reqwest::Client, secret: String, timeout: Duration) -> Self {
        Self {
            client,
            secret,
            timeout,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` to `owner` in the next batch and returns its reply; `None` when the
    /// owner could not be asked (the caller answers 503).
    pub async fn send(&self, owner: &str, request: SubRequest) -> Option<SubReply> {
        let queue = self.queue(owner);
        let (tx, rx) = oneshot::channel();
        queue.try_send(Pending { request, reply: tx }).ok()?;
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
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut bytes = first.request.encoded_len();
            let mut batch = vec![first];
            while batch.len() < MAX_REQUESTS && bytes < MAX_BYTES {
                match queue.try_recv() {
                    Ok(p) => {
                        bytes += p.request.encoded_len();
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            let this = this.clone();
            tokio::spawn(async move {
                this.deliver(batch).await;
                drop(slot);
            });
        }
    }

    async fn deliver(&self, batch: Vec<Pending>) {
        let (requests, waiters): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        match self.post(&requests).await {
            Ok(replies) if replies.len() == waiters.len() => {
                for (waiter, reply) in waiters.into_iter().zip(replies) {
                    let _ = waiter.send(reply);
                }
            }
            Ok(replies) => tracing::warn!(
                sent = waiters.len(),
                answered = replies.len(),
                "a batch's reply did not answer every request"
            ),
            // Dropping the waiters answers each 503.
            Err(e) => tracing::warn!(error = %e, "forwarding a batch to the vshard's owner failed"),
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
