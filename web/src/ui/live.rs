//! Live updates for the browser: a Server-Sent Events stream per logged-in page. One task reads
//! the shard workers' outputs and hands each to the channel of its user, so a page receives
//! its own user's input and feed values and nothing else, and no work is done for users with
//! no page open.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast;
use ynni_ingest::shard::{Output, Router};

/// Messages one page may fall behind by before it is told to reload its lists.
const PAGE_BACKLOG: usize = 1024;
/// Live streams one account may hold open at once (pages, tabs, a dashboard screen), counted
/// apart for those opened with a login and those opened with an apikey: each holds one of the
/// server's connections for as long as it is open, so without a limit one account could hold
/// them all, and anyone given the read key could otherwise take all of the owner's.
pub const MAX_STREAMS_PER_USER: usize = 16;

/// How a live stream was opened: its account's streams are counted per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opener {
    Session,
    Apikey,
}

#[derive(Clone, Debug)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub data: Arc<str>,
}

#[derive(Default)]
pub struct LiveHub {
    users: Mutex<HashMap<(i64, Opener), broadcast::Sender<LiveEvent>>>,
    started: OnceLock<()>,
}

impl LiveHub {
    /// A receiver of `userid`'s events, or `None` when the user has [`MAX_STREAMS_PER_USER`]
    /// open already by the same kind of opener; starts the forwarding task on first use.
    pub fn subscribe(
        self: &Arc<Self>,
        userid: i64,
        opener: Opener,
        router: &Router,
    ) -> Option<broadcast::Receiver<LiveEvent>> {
        self.started.get_or_init(|| {
            let hub = Arc::clone(self);
            let (outputs, inputs) = (router.subscribe_outputs(), router.subscribe_inputs());
            tokio::spawn(async move { hub.forward(outputs, inputs).await });
        });
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let sender = users
            .entry((userid, opener))
            .or_insert_with(|| broadcast::channel(PAGE_BACKLOG).0);
        (sender.receiver_count() < MAX_STREAMS_PER_USER).then(|| sender.subscribe())
    }

    /// Ends the open pages' streams of the users `moved` picks (cluster mode: their shard left
    /// this node); browsers reconnect and are forwarded to the new owner.
    pub fn end_streams(&self, moved: impl Fn(i64) -> bool) {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(userid, _), _| !moved(*userid));
    }

    /// Ends `userid`'s streams opened by `opener`: what opened them (a session, an apikey) was
    /// just revoked, and a stream is checked only when it opens. Pages whose login or key still
    /// holds reconnect at once and are let in again.
    pub fn end_user_streams(&self, userid: i64, opener: Opener) {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(userid, opener));
    }

    async fn forward(
        &self,
        mut outputs: broadcast::Receiver<Output>,
        mut inputs: broadcast::Receiver<Output>,
    ) {
        loop {
            let out = tokio::select! {
                out = outputs.recv() => out,
                out = inputs.recv() => out,
            };
            let out = match out {
                Ok(o) => o,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "live UI updates fell behind");
                    self.broadcast_all(LiveEvent {
                        kind: "resync",
                        data: Arc::from("{}"),
                    });
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let userid = match &out {
                Output::Input { userid, .. } | Output::Feed { userid, .. } => *userid,
                Output::Published { .. } => continue,
            };
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            let mut event = None;
            for key in [(userid, Opener::Session), (userid, Opener::Apikey)] {
                let Some(tx) = users.get(&key) else {
                    // No page of this user opened this way: nothing to build.
                    continue;
                };
                if tx.receiver_count() == 0 {
                    // The last such page closed (checked under the lock, so a page opening
                    // now makes a new channel).
                    users.remove(&key);
                    continue;
                }
                if event.is_none() {
                    event = to_event(&out).map(|(_, e)| e);
                }
                if let Some(e) = &event {
                    let _ = tx.send(e.clone());
                }
            }
        }
    }

    fn broadcast_all(&self, event: LiveEvent) {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        for tx in users.values() {
            let _ = tx.send(event.clone());
        }
    }
}

fn to_event(out: &Output) -> Option<(i64, LiveEvent)> {
    match out {
        Output::Input {
            userid,
            node,
            name,
            time,
            value,
        } => Some((
            *userid,
            LiveEvent {
                kind: "input",
                data: Arc::from(
                    json!({"nodeid": node, "name": name, "time": time, "value": value}).to_string(),
                ),
            },
        )),
        Output::Feed {
            userid,
            feed,
            time,
            value,
        } => Some((
            *userid,
            LiveEvent {
                kind: "feed",
                data: Arc::from(json!({"id": feed, "time": time, "value": value}).to_string()),
            },
        )),
        Output::Published { .. } => None,
    }
}

/// The SSE reply for one page. A page that fell behind gets `resync` (reload the lists).
pub fn stream(
    rx: broadcast::Receiver<LiveEvent>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(e) => Event::default().event(e.kind).data(&*e.data),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Event::default().event("resync").data("{}")
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_and_feed_outputs_become_events_for_their_user() {
        let (userid, e) = to_event(&Output::Input {
            userid: 7,
            node: "emontx".into(),
            name: "power1".into(),
            time: 1_700_000_000,
            value: Some(12.5),
        })
        .expect("an input event");
        assert_eq!((userid, e.kind), (7, "input"));
        assert_eq!(
            &*e.data,
            r#"{"nodeid":"emontx","name":"power1","time":1700000000,"value":12.5}"#
        );
        let published = Output::Published {
            userid: 7,
            topic: "t".into(),
            value: Some(1.0),
        };
        assert!(to_event(&published).is_none());
    }
}
