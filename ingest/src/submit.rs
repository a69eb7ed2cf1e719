//! The MQTT side's way into the shards. Many messages are in flight at once, so that one WAL
//! sync covers many of them; the window is bounded, so that a stalled shard pushes back on the
//! broker instead of messages piling up in memory; and each message's acknowledgement is
//! settled only once its shard has answered (the broker sends PUBACK/PUBREC then).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::batch::Decoded;
use crate::shard::{IngestError, Pending, Refused, Router, Submission};

/// Where submissions are queued: the shard router (or a stand-in in tests).
pub trait Shards {
    /// Resolves once the submission is durable (or refused).
    type Pending: Future<Output = Result<(), IngestError>> + Send + 'static;

    /// Queues `s` without waiting; a full queue gives it back (as [`Router::enqueue`] does).
    fn enqueue(&self, s: Submission) -> Result<Self::Pending, Refused>;
}

impl Shards for Router {
    type Pending = Pending;

    fn enqueue(&self, s: Submission) -> Result<Pending, Refused> {
        Router::enqueue(self, s)
    }
}

impl<S: Shards + ?Sized> Shards for Arc<S> {
    type Pending = S::Pending;

    fn enqueue(&self, s: Submission) -> Result<S::Pending, Refused> {
        (**self).enqueue(s)
    }
}

/// What a shard's answer means for the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Durable in the shard's WAL.
    Stored,
    /// Refused for good (a limit): sending it again changes nothing, so it is acknowledged.
    Refused,
    /// Not stored now (storage trouble, ingest stopping): the publisher may send it again.
    Failed,
}

impl Outcome {
    fn of(answer: Result<(), IngestError>, userid: i64) -> Self {
        match answer {
            Ok(()) => Outcome::Stored,
            Err(e) if e.is_limit() => {
                tracing::info!(error = %e, userid, "MQTT message refused");
                Outcome::Refused
            }
            Err(e) => {
                tracing::warn!(error = %e, userid, "MQTT message not stored");
                Outcome::Failed
            }
        }
    }
}

/// A queued message: waits for its shard's answer, then settles its acknowledgement.
type Settling = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long to wait before retrying a full shard queue when nothing else is in flight (the
/// queue is another connection's, or the HTTP side's).
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// Hands decoded messages to their shards with at most `window` of them waiting for an answer.
pub struct Submitter<S> {
    shards: S,
    window: usize,
    in_flight: FuturesUnordered<Settling>,
}

impl<S: Shards> Submitter<S> {
    /// `window`: how many messages may wait for their shard at once (at least one).
    pub fn new(shards: S, window: usize) -> Self {
        Self {
            shards,
            window: window.max(1),
            in_flight: FuturesUnordered::new(),
        }
    }

    /// Messages queued and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits for `next` (the source's next message) while settling the messages whose shard
    /// has answered. `next` is polled only while the window has room, so a full window stops
    /// taking messages until one is answered. If this future is dropped before it finishes,
    /// `next` is dropped too: give a cancel-safe one (such as `mpsc::Receiver::recv`).
    pub async fn when_ready<F: Future>(&mut self, next: F) -> F::Output {
        let mut next = std::pin::pin!(next);
        loop {
            // One branch is always enabled: a window with no room is not empty.
            tokio::select! {
                Some(()) = self.in_flight.next(), if !self.in_flight.is_empty() => {}
                out = &mut next, if self.in_flight.len() < self.window => return out,
            }
        }
    }

    /// Queues one of `userid`'s decoded messages; `ack` is told its outcome once its shard has
    /// answered (or at once, when it is refused before being queued). A full shard queue waits
    /// for an earlier message to settle, then retries: the source is slowed down and nothing
    /// is dropped. The window is kept by [`Submitter::when_ready`]: take each message through
    /// it.
    pub async fn submit<A>(&mut self, userid: i64, decoded: Decoded, ack: A)
    where
        A: FnOnce(Outcome) + Send + 'static,
    {
        let mut submission = Submission {
            userid,
            batches: vec![decoded],
            http: false,
        };
        let queued = loop {
            match self.shards.enqueue(submission) {
                Ok(pending) => break Ok(pending),
                Err(Refused {
                    error: IngestError::Busy,
                    submission: Some(s),
                }) => {
                    submission = s;
                    if self.in_flight.next().await.is_none() {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
                Err(refused) => break Err(refused.error),
            }
        };
        match queued {
            Ok(pending) => self.in_flight.push(Box::pin(async move {
                ack(Outcome::of(pending.await, userid));
            })),
            Err(e) => ack(Outcome::of(Err(e), userid)),
        }
    }

    /// Waits for every message in flight to be answered and settled.
    pub async fn finish(mut self) {
        while self.in_flight.next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::FutureExt;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
    use tokio::sync::oneshot;

    use super::*;

    type Answer = oneshot::Sender<Result<(), IngestError>>;
    type Answered = Pin<Box<dyn Future<Output = Result<(), IngestError>> + Send>>;
    type Ack = Box<dyn FnOnce(Outcome) + Send>;
    type Acks = UnboundedReceiver<(String, Outcome)>;

    /// A shard whose answers the test gives, refusing the first `busy` submissions as a full
    /// queue would.
    #[derive(Default)]
    struct FakeShards {
        busy: Mutex<usize>,
        queued: Mutex<Vec<(Submission, Answer)>>,
    }

    impl FakeShards {
        fn busy(n: usize) -> Self {
            Self {
                busy: Mutex::new(n),
                ..Self::default()
            }
        }

        /// Answers the oldest submission not yet answered; returns its node.
        fn answer(&self, result: Result<(), IngestError>) -> String {
            let (s, tx) = self.queued.lock().expect("lock").remove(0);
            let _ = tx.send(result);
            s.batches[0].node.clone()
        }

        fn queued(&self) -> usize {
            self.queued.lock().expect("lock").len()
        }
    }

    impl Shards for FakeShards {
        type Pending = Answered;

        fn enqueue(&self, s: Submission) -> Result<Answered, Refused> {
            let mut busy = self.busy.lock().expect("lock");
            if *busy > 0 {
                *busy -= 1;
                return Err(Refused {
                    error: IngestError::Busy,
                    submission: Some(s),
                });
            }
            let (tx, rx) = oneshot::channel();
            self.queued.lock().expect("lock").push((s, tx));
            Ok(Box::pin(async move {
                rx.await.unwrap_or(Err(IngestError::Stopped))
            }))
        }
    }

    fn message(node: &str) -> Decoded {
        Decoded {
            time: 1_700_000_000,
            node: node.into(),
            values: vec![("power".into(), Some(1.0))],
        }
    }

    /// An acknowledgement that reports (node, outcome) on a channel.
    fn acks() -> (impl Fn(&str) -> Ack, Acks) {
        let (tx, rx) = unbounded_channel();
        let ack = move |node: &str| -> Ack {
            let (tx, node) = (tx.clone(), node.to_string());
            Box::new(move |o| {
                let _ = tx.send((node, o));
            })
        };
        (ack, rx)
    }

    fn settled(rx: &mut Acks) -> Vec<(String, Outcome)> {
        let mut out = Vec::new();
        while let Ok(a) = rx.try_recv() {
            out.push(a);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[tokio::test]
    async fn each_acknowledgement_follows_its_shards_answer() {
        let shards = Arc::new(FakeShards::default());
        let mut submitter = Submitter::new(shards.clone(), 8);
        let (ack, mut rx) = acks();
        for node in ["a", "b", "c"] {
            submitter.submit(1, message(node), ack(node)).await;
        }
        assert_eq!(submitter.in_flight(), 3);
        assert!(settled(&mut rx).is_empty(), "nothing answered yet");
        assert_eq!(shards.answer(Ok(())), "a");
        let limit = IngestError::NodeLimit {
            limit: 1,
            node: "b".into(),
        };
        assert_eq!(shards.answer(Err(limit)), "b");
        assert_eq!(shards.answer(Err(IngestError::Stopped)), "c");
        submitter.finish().await;
        assert_eq!(
            settled(&mut rx),
            [
                ("a".to_string(), Outcome::Stored),
                ("b".to_string(), Outcome::Refused),
                ("c".to_string(), Outcome::Failed),
            ]
        );
    }

    #[tokio::test]
    async fn a_full_window_takes_no_message_until_one_is_answered() {
        let shards = Arc::new(FakeShards::default());
        let mut submitter = Submitter::new(shards.clone(), 2);
        let (ack, mut rx) = acks();
        let ready = submitter.when_ready(std::future::ready(1)).now_or_never();
        assert_eq!(ready, Some(1), "an empty window takes a message");
        submitter.submit(1, message("a"), ack("a")).await;
        submitter.submit(1, message("b"), ack("b")).await;
        let ready = submitter.when_ready(std::future::ready(2)).now_or_never();
        assert_eq!(ready, None, "the window is full");
        shards.answer(Ok(()));
        assert_eq!(submitter.when_ready(std::future::ready(3)).await, 3);
        assert_eq!(settled(&mut rx), [("a".to_string(), Outcome::Stored)]);
        assert_eq!(submitter.in_flight(), 1);
    }

    #[tokio::test]
    async fn a_full_shard_queue_is_retried_not_dropped() {
        let shards = Arc::new(FakeShards::busy(3));
        let mut submitter = Submitter::new(shards.clone(), 8);
        let (ack, mut rx) = acks();
        // Nothing in flight to wait for: the retries are paced by time.
        submitter.submit(1, message("a"), ack("a")).await;
        assert_eq!(shards.queued(), 1);
        shards.answer(Ok(()));
        submitter.finish().await;
        assert_eq!(settled(&mut rx), [("a".to_string(), Outcome::Stored)]);
    }

    #[tokio::test]
    async fn a_full_shard_queue_waits_for_an_earlier_message() {
        let shards = Arc::new(FakeShards::default());
        let mut submitter = Submitter::new(shards.clone(), 8);
        let (ack, mut rx) = acks();
        submitter.submit(1, message("a"), ack("a")).await;
        *shards.busy.lock().expect("lock") = 1;
        shards.answer(Ok(()));
        submitter.submit(1, message("b"), ack("b")).await;
        // "a" was settled while "b" waited for room in its shard's queue.
        assert_eq!(settled(&mut rx), [("a".to_string(), Outcome::Stored)]);
        assert_eq!(shards.queued(), 1);
        assert_eq!(submitter.in_flight(), 1);
    }

    #[tokio::test]
    async fn refused_before_queueing_is_settled_at_once() {
        struct Stopped;
        impl Shards for Stopped {
            type Pending = std::future::Ready<Result<(), IngestError>>;
            fn enqueue(&self, s: Submission) -> Result<Self::Pending, Refused> {
                Err(Refused {
                    error: IngestError::Stopped,
                    submission: Some(s),
                })
            }
        }
        let mut submitter = Submitter::new(Stopped, 8);
        let (ack, mut rx) = acks();
        submitter.submit(1, message("a"), ack("a")).await;
        assert_eq!(submitter.in_flight(), 0);
        assert_eq!(settled(&mut rx), [("a".to_string(), Outcome::Failed)]);
    }
}
