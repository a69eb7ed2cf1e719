//! Live updates for the browser: a Server-Sent Events stream per logged-in page. One task reads
//! the shard workers' outputs and hands each to the channel of its user, so a page receives
//! its own user's input and feed values and nothing else, and no work is done for users with
//! no page open. Input updates are taken from the shards only while a page is open (checked
//! every [`SWEEP`]): shards build none that nobody takes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::{Notify, broadcast};
use ynni_ingest::shard::{Output, Router, next_output};

/// Messages one page may fall behind by before it is told to reload its lists.
const PAGE_BACKLOG: usize = 1024;
/// Live streams one account may hold open at once (pages, tabs, a dashboard screen), counted
/// apart for those opened with a login and those opened with an apikey: each holds one of the
/// server's connections for as long as it is open, so without a limit one account could hold
/// them all, and anyone given the read key could otherwise take all of the owner's.
pub const MAX_STREAMS_PER_USER: usize = 16;
/// How often the closed pages are cleared away, so that input updates stop once none is open.
const SWEEP: Duration = Duration::from_secs(30);

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
    pages: Mutex<Pages>,
    started: OnceLock<()>,
    /// Told when [`Pages::fresh_inputs`] holds a receiver for the forwarding task.
    inputs_wanted: Notify,
}

#[derive(Default)]
struct Pages {
    users: HashMap<(i64, Opener), broadcast::Sender<LiveEvent>>,
    /// Whether the forwarding task holds, or is being handed, a receiver of input updates.
    inputs_on: bool,
    fresh_inputs: Option<broadcast::Receiver<Output>>,
}

fn lock(pages: &Mutex<Pages>) -> std::sync::MutexGuard<'_, Pages> {
    pages.lock().unwrap_or_else(|p| p.into_inner())
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
        self.subscribe_to(
            userid,
            opener,
            || router.subscribe_outputs(),
            || router.subscribe_inputs(),
        )
    }

    /// [`Self::subscribe`], with the router's channels given as the calls that subscribe.
    fn subscribe_to(
        self: &Arc<Self>,
        userid: i64,
        opener: Opener,
        outputs: impl FnOnce() -> broadcast::Receiver<Output>,
        inputs: impl FnOnce() -> broadcast::Receiver<Output>,
    ) -> Option<broadcast::Receiver<LiveEvent>> {
        self.started.get_or_init(|| {
            let hub = Arc::clone(self);
            let outputs = outputs();
            tokio::spawn(async move { hub.forward(outputs).await });
        });
        let mut pages = lock(&self.pages);
        if !pages.inputs_on {
            // The sweep lets go of the receiver under this lock too, so a page opening as it
            // does is handed a new one.
            pages.inputs_on = true;
            pages.fresh_inputs = Some(inputs());
            self.inputs_wanted.notify_one();
        }
        let sender = pages
            .users
            .entry((userid, opener))
            .or_insert_with(|| broadcast::channel(PAGE_BACKLOG).0);
        (sender.receiver_count() < MAX_STREAMS_PER_USER).then(|| sender.subscribe())
    }

    /// Ends the open pages' streams of the users `moved` picks (cluster mode: their shard left
    /// this node); browsers reconnect and are forwarded to the new owner.
    pub fn end_streams(&self, moved: impl Fn(i64) -> bool) {
        lock(&self.pages)
            .users
            .retain(|(userid, _), _| !moved(*userid));
    }

    /// Ends `userid`'s streams opened by `opener`: what opened them (a session, an apikey) was
    /// just revoked, and a stream is checked only when it opens. Pages whose login or key still
    /// holds reconnect at once and are let in again.
    pub fn end_user_streams(&self, userid: i64, opener: Opener) {
        lock(&self.pages).users.remove(&(userid, opener));
    }

    async fn forward(&self, mut outputs: broadcast::Receiver<Output>) {
        let mut inputs: Option<broadcast::Receiver<Output>> = None;
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let out = tokio::select! {
                out = outputs.recv() => out,
                out = next_output(&mut inputs) => out,
                () = self.inputs_wanted.notified() => {
                    if let Some(fresh) = lock(&self.pages).fresh_inputs.take() {
                        inputs = Some(fresh);
                    }
                    continue;
                }
                _ = sweep.tick() => {
                    let mut pages = lock(&self.pages);
                    pages.users.retain(|_, tx| tx.receiver_count() > 0);
                    if pages.users.is_empty() && pages.inputs_on {
                        pages.inputs_on = false;
                        pages.fresh_inputs = None;
                        inputs = None;
                    }
                    continue;
                }
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
            let mut pages = lock(&self.pages);
            let users = &mut pages.users;
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
        for tx in lock(&self.pages).users.values() {
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

    fn input(userid: i64) -> Output {
        Output::Input {
            userid,
            node: "emontx".into(),
            name: "power1".into(),
            time: 1_700_000_000,
            value: Some(1.0),
        }
    }

    /// Input updates are taken from the shards while a page is open, and no longer once the
    /// last has closed; a page opening later takes them again.
    #[tokio::test(start_paused = true)]
    async fn input_updates_are_taken_only_while_a_page_is_open() {
        let hub = Arc::new(LiveHub::default());
        let (values, _) = broadcast::channel::<Output>(16);
        let (inputs, _) = broadcast::channel::<Output>(16);
        let open = || {
            hub.subscribe_to(
                7,
                Opener::Session,
                || values.subscribe(),
                || inputs.subscribe(),
            )
        };
        let mut page = open().expect("a stream");
        inputs.send(input(7)).expect("taken");
        assert_eq!(page.recv().await.expect("an event").kind, "input");
        drop(page);
        tokio::time::sleep(SWEEP * 2).await;
        assert_eq!(
            inputs.receiver_count(),
            0,
            "no page open: nobody takes them"
        );
        assert_eq!(values.receiver_count(), 1, "feed values are still taken");
        let mut page = open().expect("a stream");
        inputs.send(input(7)).expect("taken again");
        assert_eq!(page.recv().await.expect("an event").kind, "input");
        // While a page is open, the sweep keeps them coming.
        tokio::time::sleep(SWEEP * 2).await;
        inputs.send(input(7)).expect("still taken");
        assert_eq!(page.recv().await.expect("an event").kind, "input");
    }
}
