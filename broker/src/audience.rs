//! Whether anyone could receive a user's messages through the router, and what waits until
//! someone could.
//!
//! Most accounts only publish: an emonPi or an emonTx sends its readings and subscribes to
//! nothing. Handing each of their messages to rumqttd's router anyway costs a wake-up of the
//! router's thread per message to find that no filter matches, which was the largest single
//! cost of a thousand devices publishing once a second after the log syncs were shared. A
//! message nobody is subscribed to and that is not retained is dropped by any MQTT broker, so
//! it need not reach the router at all.
//!
//! The test is per user, because namespaces keep every subscription inside its user's topics
//! ([`crate::namespace`]): a user is *heard* from the first SUBSCRIBE of any of its clients,
//! and stays heard until the broker stops. That errs only one way: a persistent session keeps
//! its subscriptions in the router after its client has gone, and an unsubscribed filter may
//! be one of several, so the broker never tries to tell when a user stops being heard. The
//! mark is set before the SUBSCRIBE reaches the router, so every message published after the
//! client could see its SUBACK is routed. Retained messages from clients and wills always go
//! to the router.
//!
//! Once heard, a user's device messages still reach the router only if a filter one of its
//! clients subscribed to matches them: a Home Assistant that subscribed to `ynni/feed/#` and
//! `homeassistant/#` makes no subscriber of the devices' `emon/…` messages, and with every
//! account so subscribed, routing each of them anyway was two thirds of the router thread's
//! CPU (1,000 devices a second: 56–69 against 21–23 ticks per 10 s, `benches/README.md`). The
//! filters are recorded as the clients sent them, before the SUBSCRIBE reaches the router, and
//! never forgotten (an unsubscribed filter may be another client's too); past
//! [`MAX_FILTERS`] a user's messages are all routed. The router still decides who receives
//! what: this only skips what no filter of the user's could match.
//!
//! ynni's own retained messages (every stored feed value, Home Assistant discovery) were the
//! other half of that cost: a router wake-up per value stored. For a user nobody hears they
//! are held here instead, the latest per topic (all a retained store keeps), and handed to the
//! router just before the user's first SUBSCRIBE, so the router stores them before it answers
//! that subscription with them.
//!
//! # Order
//!
//! The router keeps the last retained message it handles per topic, so ynni's must reach it
//! in the order ynni published them. A link's packets wait in that link's own buffer; the
//! router's one queue carries only notices that a link has some, and at each notice it takes
//! everything in that link's buffer. Packets of one link are therefore handled in the order
//! they were sent, but packets of two links can pass each other. So everything ynni publishes
//! goes through one link, the broker's `ynni-outputs`, held messages included: they are
//! handed over through it, under the user's lock, before the mark is set, and a later message
//! of ynni's either finds the user unheard under that lock (and replaces what is held) or sees
//! the mark; either way it goes into the same buffer after them.
//!
//! The SUBSCRIBE then goes on the client's own link, but only once the router has stored the
//! held messages. Queueing its notice after the hand-over's is not enough: a packet the client
//! sent just before (Home Assistant's birth message) left a notice of its own earlier in the
//! queue, and at that notice the router takes the client's whole buffer, the SUBSCRIBE
//! included, so it would answer the subscription before it stored what was held (and then
//! deliver those values twice, live and retained). So the hand-over ends with a PINGREQ on the
//! outputs link, which the router answers after the packets before it; the drain of that
//! link counts the answers ([`Audience::drain`]), and the SUBSCRIBE waits for its own (at most
//! [`HANDOVER_WAIT`]: a router that slow is answered late, not refused). Only an account's
//! first subscription, with something held, waits.
//!
//! Wills go through the outputs link too, and a retained one replaces what is held on its
//! topic when it is sent: it is the newer. A client's own retained message on a topic
//! something of ynni's waits on replaces that as well, and goes to the router at once on the
//! client's link. Only there can the two kinds still pass each other: a client publishing
//! retained messages on a topic ynni publishes to (`ynni/feed/<id>`) while ynni does, which
//! no device or Home Assistant does.
//!
//! A message dropped here is dropped whole: rumqttd's router clears a topic's retained value
//! on any empty message, retained or not, but an empty message that is not retained, for a
//! user nobody hears or on a topic no filter of the user's matches, now never reaches it, and
//! MQTT clears a retained value only with an empty retained message.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, PingReq, Publish};
use tokio::sync::watch;

use crate::BrokerError;

/// The longest a first SUBSCRIBE waits for the router to have stored what was held.
const HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// The users the broker has seen, each with its mark and what waits for it, and the link
/// everything ynni publishes goes through.
pub(crate) struct Audience {
    users: Mutex<HashMap<i64, Arc<User>>>,
    outputs: Arc<Mutex<Outputs>>,
    /// How many of the outputs link's PINGREQs the router has answered.
    pongs: watch::Sender<u64>,
}

/// The broker's own link, and how many PINGREQs were sent on it (under the same lock, so that
/// each hand-over's ping has its number in the order the router answers them).
struct Outputs {
    link: LinkTx,
    pings: u64,
}

impl Audience {
    /// `outputs`: the broker's own link for what ynni publishes; its receiving side must be
    /// given to [`Audience::drain`].
    pub(crate) fn new(outputs: LinkTx) -> Self {
        Self {
            users: Mutex::default(),
            outputs: Arc::new(Mutex::new(Outputs {
                link: outputs,
                pings: 0,
            })),
            pongs: watch::Sender::new(0),
        }
    }

    /// Reads everything the router sends the outputs link, so that it never waits on it,
    /// counting its answers to the hand-overs' pings; ends when the router is gone.
    pub(crate) fn drain(&self, mut rx: LinkRx) -> impl Future<Output = ()> + Send + 'static {
        let pongs = self.pongs.clone();
        async move {
            loop {
                match rx.next().await {
                    Ok(Some(Notification::Unschedule)) => {
                        if rx.wake().await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(n)) => {
                        if let Some(Packet::PingResp(_)) = Option::<Packet>::from(n) {
                            pongs.send_modify(|n| *n += 1);
                        }
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
    }

    /// The mark of `userid`'s subscribers, for a connection or the publisher to keep.
    pub(crate) fn of(&self, userid: i64) -> Heard {
        let user = lock(&self.users).entry(userid).or_default().clone();
        Heard {
            user,
            outputs: self.outputs.clone(),
            pongs: self.pongs.subscribe(),
        }
    }
}

/// One user's mark (set once any of the user's clients subscribed to anything) and ynni's
/// retained messages held until then.
#[derive(Clone)]
pub(crate) struct Heard {
    user: Arc<User>,
    outputs: Arc<Mutex<Outputs>>,
    pongs: watch::Receiver<u64>,
}

/// The most topics a user's clients may keep a retained message on in the router, and the
/// most bytes (topics and payloads) of those messages; past them a retained message is
/// delivered as a live one and not kept. ynni's own retained messages (one per feed and
/// discovery topic) do not count.
pub(crate) const MAX_CLIENT_RETAINED: usize = 1_000;
const MAX_CLIENT_RETAINED_BYTES: usize = 4 << 20;

/// Distinct filters remembered per user; past it, every message of the user is routed.
pub(crate) const MAX_FILTERS: usize = 256;
/// The most bytes of filters remembered per user, and the longest filter remembered: a
/// client may send 64 KiB filters, and every message of the user is compared with them.
const MAX_FILTER_BYTES: usize = 16 << 10;
const LONGEST_FILTER: usize = 512;

/// Distinct filters a user's clients may have the router keep, in all, for as long as the
/// broker runs. rumqttd's router makes a log for each filter anyone subscribes to and never
/// removes it (nor its place in every later filter's matching), and each log holds up to
/// [`crate::FILTER_LOG_SEGMENTS`] segments of messages: without a bound, one account
/// subscribing to ever more filters grows the router shared by every account. Enough for
/// Home Assistant subscribing to each discovered feed of an account with a few hundred.
pub(crate) const MAX_ROUTER_FILTERS: usize = 512;

/// Distinct topics of a user's clients' messages the router may see, in all: it keeps every
/// topic a filter ever matched. Past it, a message on a new topic is taken (and stored if it
/// is an input) but reaches no subscriber.
pub(crate) const MAX_ROUTED_TOPICS: usize = 10_000;

/// What of a user's the router keeps for good.
#[derive(Default)]
struct Routed {
    filters: HashSet<String>,
    topics: HashSet<Bytes>,
    /// The topic cap was reached (logged once).
    topics_full: bool,
}

#[derive(Default)]
struct User {
    heard: AtomicBool,
    filters: RwLock<Filters>,
    routed: Mutex<Routed>,
    /// Topic (inside the user's namespace) → the latest payload ynni published retained on
    /// it while nobody heard the user (an empty one withdraws the topic, and is handed over
    /// like any other). Bounded by the user's feeds and discovery topics.
    held: Mutex<HashMap<Bytes, Bytes>>,
    /// The user's clients' retained messages in the router: topic → bytes it takes.
    client_retained: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    sizes: HashMap<Bytes, usize>,
    bytes: usize,
}

/// The filters a user's clients subscribed to, as they sent them (a shared subscription's
/// without its `$share/<group>/`).
#[derive(Default)]
struct Filters {
    list: Vec<String>,
    bytes: usize,
    /// Every message may be heard: `#` was subscribed to, or more filters than are kept
    /// ([`MAX_FILTERS`], [`MAX_FILTER_BYTES`], [`LONGEST_FILTER`]).
    overflow: bool,
}

impl Filters {
    fn add(&mut self, filter: &str) {
        let filter = filter
            .strip_prefix("$share/")
            .and_then(|r| r.split_once('/'))
            .map_or(filter, |(_, f)| f);
        if self.overflow || self.list.iter().any(|f| f == filter) {
            return;
        }
        if filter == "#"
            || filter.len() > LONGEST_FILTER
            || self.list.len() >= MAX_FILTERS
            || self.bytes + filter.len() > MAX_FILTER_BYTES
        {
            self.overflow = true;
            self.list = Vec::new();
            self.bytes = 0;
            return;
        }
        self.bytes += filter.len();
        self.list.push(filter.to_string());
    }

    fn match_any(&self, topic: &str) -> bool {
        self.overflow || self.list.iter().any(|f| matches(f, topic))
    }
}

/// Whether MQTT topic filter `filter` matches `topic`, both as the client sent them, as the
/// router matches them: rumqttd's own matching. It keeps a `$` topic from every wildcard,
/// but inside the user's namespace (`u/<id>/$SYS/…`) such a topic does not start with `$`
/// any more and the router does match it, so it is matched here under a prefix as well.
fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') {
        return rumqttd::protocol::matches(&format!("u/{topic}"), &format!("u/{filter}"));
    }
    rumqttd::protocol::matches(topic, filter)
}

/// A poisoned lock only means a panic elsewhere while it was held; what it guards (a map of
/// messages, a link, a list of filters) is whole after any one statement.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn retained(topic: Bytes, payload: Bytes) -> Packet {
    Packet::Publish(Publish::new(topic, payload, true), None)
}

/// Puts `packets` on `link` in order, with one notice to the router for all of them.
///
/// `LinkTx::send` is an `async fn` that never suspends (it appends to the link's buffer and
/// queues the notice with a blocking send), so it is driven here to completion at once, with
/// no lock held across an `.await`. Should a later rumqttd make it wait, this fails instead of
/// blocking (the packets before the last stay in the link's buffer for its next notice).
fn send_all(link: &mut LinkTx, packets: Vec<Packet>) -> Result<(), BrokerError> {
    let mut packets = packets.into_iter();
    let Some(last) = packets.next_back() else {
        return Ok(());
    };
    link.buffer().extend(packets);
    match link.send(last).now_or_never() {
        Some(sent) => sent.map(drop).map_err(|e| BrokerError::Link(e.to_string())),
        None => Err(BrokerError::Link(
            "the router link would have to wait".into(),
        )),
    }
}

impl Heard {
    /// Whether a message of this user may have a subscriber.
    pub(crate) fn is_heard(&self) -> bool {
        self.user.heard.load(Ordering::Acquire)
    }

    /// Admits `filters` (as the client sent them) to the router if the user's distinct filters
    /// stay within [`MAX_ROUTER_FILTERS`]; all or none.
    pub(crate) fn admit_filters<'a>(&self, filters: impl Iterator<Item = &'a str> + Clone) -> bool {
        let mut routed = lock(&self.user.routed);
        let mut new: HashSet<&str> = HashSet::new();
        for f in filters.clone() {
            if !routed.filters.contains(f) {
                new.insert(f);
            }
        }
        if routed.filters.len() + new.len() > MAX_ROUTER_FILTERS {
            return false;
        }
        routed.filters.extend(new.into_iter().map(str::to_string));
        true
    }

    /// Whether [`Heard::admit_topic`] would admit `topic`, without admitting it.
    pub(crate) fn topic_has_room(&self, topic: &Bytes) -> bool {
        let routed = lock(&self.user.routed);
        routed.topics.len() < MAX_ROUTED_TOPICS || routed.topics.contains(topic)
    }

    /// Whether a client's message on `topic` (inside the user's namespace) may go to the
    /// router: a topic it has seen, or a new one within [`MAX_ROUTED_TOPICS`].
    pub(crate) fn admit_topic(&self, topic: &Bytes) -> bool {
        let mut routed = lock(&self.user.routed);
        if routed.topics.contains(topic) {
            return true;
        }
        if routed.topics.len() >= MAX_ROUTED_TOPICS {
            if !routed.topics_full {
                routed.topics_full = true;
                tracing::warn!(
                    limit = MAX_ROUTED_TOPICS,
                    "MQTT: an account's clients published on more distinct topics than the router keeps; messages on new topics reach no subscriber"
                );
            }
            return false;
        }
        routed.topics.insert(topic.clone());
        true
    }

    /// Whether a client's message on `topic` (as the client sent it) may have a subscriber.
    pub(crate) fn may_hear(&self, topic: &str) -> bool {
        self.is_heard()
            && self
                .user
                .filters
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .match_any(topic)
    }

    /// Sends a client's SUBSCRIBE (already inside the user's namespace) on its `link`, having
    /// recorded its `filters` (as the client sent them); the first of the user's hands what
    /// was held to the router before it, and marks the user.
    pub(crate) async fn subscribe(
        &self,
        link: &mut LinkTx,
        subscribe: Packet,
        filters: &[String],
    ) -> Result<(), BrokerError> {
        {
            let mut known = self.user.filters.write().unwrap_or_else(|p| p.into_inner());
            for f in filters {
                known.add(f);
            }
        }
        let mut handed = None;
        if !self.is_heard() {
            let mut held = lock(&self.user.held);
            if !self.is_heard() {
                if !held.is_empty() {
                    handed = Some(self.hand_over(&held)?);
                }
                *held = HashMap::new();
                self.user.heard.store(true, Ordering::Release);
            }
        }
        if let Some(ping) = handed {
            let mut pongs = self.pongs.clone();
            let answered = pongs.wait_for(|&n| n >= ping);
            if tokio::time::timeout(HANDOVER_WAIT, answered).await.is_err() {
                tracing::debug!("MQTT: the router took long to store held values; subscribing");
            }
        }
        link.send(subscribe)
            .await
            .map(drop)
            .map_err(|e| BrokerError::Link(e.to_string()))
    }

    /// Sends what was `held` to the router as retained messages, then a PINGREQ; returns that
    /// ping's number.
    fn hand_over(&self, held: &HashMap<Bytes, Bytes>) -> Result<u64, BrokerError> {
        if held.len() as u64 > crate::ROUTER_BATCH {
            tracing::warn!(
                held = held.len(),
                answered = crate::ROUTER_BATCH,
                "MQTT: more retained values than a subscription is answered with; the router drops the rest"
            );
        }
        // Copies, not taken out: should the hand-over fail, nothing is lost (a retry may then
        // send some twice, which a retained store absorbs).
        let mut packets: Vec<Packet> = held
            .iter()
            .map(|(topic, payload)| retained(topic.clone(), payload.clone()))
            .collect();
        packets.push(Packet::PingReq(PingReq));
        let mut outputs = lock(&self.outputs);
        send_all(&mut outputs.link, packets)?;
        outputs.pings += 1;
        Ok(outputs.pings)
    }

    /// ynni's own message (QoS 0). A retained one goes to the router if the user is heard,
    /// and is otherwise held in place of any older one on its topic; any other is dropped
    /// while the user is unheard, as a device's message is.
    pub(crate) fn publish(
        &self,
        topic: Bytes,
        payload: Bytes,
        retain: bool,
    ) -> Result<(), BrokerError> {
        let send = |topic, payload| {
            let packet = Packet::Publish(Publish::new(topic, payload, retain), None);
            send_all(&mut lock(&self.outputs).link, vec![packet])
        };
        if self.is_heard() {
            return send(topic, payload);
        }
        if !retain {
            return Ok(());
        }
        let mut held = lock(&self.user.held);
        if self.is_heard() {
            return send(topic, payload);
        }
        held.insert(topic, payload);
        Ok(())
    }

    /// A will of one of the user's clients (its topic inside the namespace), through the same
    /// link as ynni's own messages; a retained one replaces what is held on its topic.
    pub(crate) fn will(
        &self,
        topic: Bytes,
        payload: Bytes,
        retain: bool,
    ) -> Result<(), BrokerError> {
        let mut held = lock(&self.user.held);
        if retain {
            held.remove(&topic);
        }
        let packet = Packet::Publish(Publish::new(topic, payload, retain), None);
        send_all(&mut lock(&self.outputs).link, vec![packet])
    }

    /// A client of the user is publishing a retained message of `payload_len` bytes on
    /// `topic` (inside the namespace): nothing of ynni's older than it may reach the router
    /// after it. Returns whether the router may keep it: false past the user's limits
    /// ([`MAX_CLIENT_RETAINED`]), when it is to be delivered as a live message instead. An
    /// empty payload clears the topic and is always kept.
    pub(crate) fn client_retained(&self, topic: &[u8], payload_len: usize) -> bool {
        if !self.is_heard() {
            lock(&self.user.held).remove(topic);
        }
        let mut kept = lock(&self.user.client_retained);
        let old = kept.sizes.get(topic).copied();
        if payload_len == 0 {
            if let Some(old) = old {
                kept.sizes.remove(topic);
                kept.bytes -= old;
            }
            return true;
        }
        let size = topic.len() + payload_len;
        let bytes = kept.bytes - old.unwrap_or(0) + size;
        if (old.is_none() && kept.sizes.len() >= MAX_CLIENT_RETAINED)
            || bytes > MAX_CLIENT_RETAINED_BYTES
        {
            return false;
        }
        kept.sizes.insert(Bytes::copy_from_slice(topic), size);
        kept.bytes = bytes;
        true
    }

    /// How many retained messages wait for the user to be heard.
    #[cfg(test)]
    fn held(&self) -> usize {
        lock(&self.user.held).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::local::{LinkBuilder, LinkRx};
    use rumqttd::protocol::{Filter, QoS, RetainForwardRule, Subscribe};
    use rumqttd::{Notification, Router, RouterConfig};
    use std::time::{Duration, Instant};

    /// A real router and a link factory for it.
    fn router() -> impl Fn(&str) -> (LinkTx, LinkRx) {
        let tx = Router::new(
            0,
            RouterConfig {
                max_connections: 64,
                max_outgoing_packet_count: crate::ROUTER_BATCH,
                max_segment_size: 1 << 20,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
        )
        .spawn();
        move |id: &str| {
            let (link_tx, link_rx, _) = LinkBuilder::new(id, tx.clone())
                .dynamic_filters(true)
                .build()
                .expect("link");
            (link_tx, link_rx)
        }
    }

    /// An audience publishing through its own link of `links`' router, drained as the broker
    /// drains it.
    fn audience(links: &impl Fn(&str) -> (LinkTx, LinkRx)) -> Audience {
        let (outputs, rx) = links("ynni-outputs");
        let audience = Audience::new(outputs);
        let drain = audience.drain(rx);
        std::thread::spawn(move || block_on(drain));
        audience
    }

    fn subscribe(filter: &str) -> Packet {
        let filter = Filter {
            path: filter.into(),
            qos: QoS::AtMostOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::OnEverySubscribe,
        };
        Packet::Subscribe(
            Subscribe {
                pkid: 1,
                filters: vec![filter],
            },
            None,
        )
    }

    /// Every publish the router forwards to `rx` within a short while, as (topic, payload,
    /// retained): a retained message sent in answer to a SUBSCRIBE keeps its flag, one
    /// forwarded live does not.
    fn delivered(rx: &mut LinkRx) -> Vec<(String, String, bool)> {
        delivered_by(rx, Instant::now() + Duration::from_millis(400))
    }

    /// [`delivered`] until `deadline`.
    fn delivered_by(rx: &mut LinkRx, deadline: Instant) -> Vec<(String, String, bool)> {
        let mut got = Vec::new();
        // `Ok(None)`: a notice found the buffer already emptied; more may follow.
        while let Ok(n) = rx.recv_deadline(deadline) {
            if let Some(Notification::Forward(f)) = n {
                let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
                got.push((
                    text(&f.publish.topic),
                    text(&f.publish.payload),
                    f.publish.retain,
                ));
            }
        }
        got.sort();
        got
    }

    /// A link `id` whose SUBSCRIBE to `filter` went through `user`'s mark, both its sides.
    async fn subscriber(
        user: &Heard,
        links: &impl Fn(&str) -> (LinkTx, LinkRx),
        id: &str,
        filter: &str,
    ) -> (LinkTx, LinkRx) {
        let (mut tx, rx) = links(id);
        user.subscribe(&mut tx, subscribe(filter), &[])
            .await
            .expect("subscribe");
        (tx, rx)
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn got(topic: &str, payload: &str, retained: bool) -> (String, String, bool) {
        (topic.into(), payload.into(), retained)
    }

    #[test]
    fn filters_match_as_mqtt_says_or_more_never_less() {
        for (filter, topic) in [
            ("emon/tx1/power", "emon/tx1/power"),
            ("emon/#", "emon/tx1/power"),
            ("emon/#", "emon"),
            ("#", "anything/at/all"),
            ("emon/+/power", "emon/tx1/power"),
            ("+/+/+", "a//c"),
            ("+", ""),
            // Inside the namespace a `$` topic is not at the first level: the router matches it.
            ("#", "$SYS/x"),
        ] {
            assert!(matches(filter, topic), "{filter} should match {topic}");
        }
        for (filter, topic) in [
            ("emon/tx1/power", "emon/tx1/powe"),
            ("emon/+", "emon"),
            ("emon/+", "emon/tx1/power"),
            ("ynni/feed/#", "emon/tx1/power"),
            ("emon/tx1", "emon/tx1/power"),
            ("a/b/c", "a/b"),
        ] {
            assert!(!matches(filter, topic), "{filter} should not match {topic}");
        }
    }

    /// Over a grid of filters and topics, whatever the router would deliver (its own `matches`
    /// on the namespaced forms) is matched here too.
    #[test]
    fn filters_match_whatever_the_router_would() {
        let ns = crate::namespace::Namespace::new(7);
        let filters = [
            "#",
            "+",
            "+/+",
            "a",
            "a/#",
            "a/+",
            "a/+/c",
            "a/b/c",
            "+/b/#",
            "a//c",
            "/a",
            "a/",
            "$SYS/#",
            "$share/g/a/#",
            "$share/g/+/b",
            "$share/g/#",
        ];
        let topics = [
            "a", "a/b", "a/b/c", "a/b/c/d", "b/b", "a//c", "/a", "a/", "/", "$SYS/x", "x/b/y",
        ];
        for filter in filters {
            let mut known = Filters::default();
            known.add(filter);
            let routed = ns.inside(filter);
            // The router matches a shared subscription by the filter after its group.
            let routed = match routed
                .strip_prefix("$share/")
                .and_then(|r| r.split_once('/'))
            {
                Some((_, f)) => f.to_string(),
                None => routed,
            };
            for topic in topics {
                if rumqttd::protocol::matches(&ns.inside(topic), &routed) {
                    assert!(known.match_any(topic), "{filter} must let {topic} through");
                }
            }
        }
    }

    #[test]
    fn long_or_many_filters_or_everything_let_every_message_through() {
        let mut exact = Filters::default();
        for i in 0..MAX_FILTERS {
            exact.add(&format!("n/{i}"));
        }
        assert!(!exact.match_any("emon/tx1/power"), "256 filters are kept");
        exact.add("n/one-more");
        assert!(
            exact.match_any("emon/tx1/power"),
            "the 257th lets everything through"
        );
        for filter in ["#", "$share/g/#", &"x".repeat(LONGEST_FILTER + 1)] {
            let mut known = Filters::default();
            known.add("ynni/feed/#");
            known.add(filter);
            assert!(known.match_any("emon/tx1/power"), "{filter:.20}");
        }
        let mut bulky = Filters::default();
        for i in 0..40 {
            bulky.add(&format!("{i}/{}", "y".repeat(500)));
        }
        assert!(bulky.match_any("emon/tx1/power"), "past 16 KiB of filters");
    }

    #[test]
    fn a_heard_users_messages_may_be_heard_only_on_its_filters_until_there_are_too_many() {
        let links = router();
        let audience = audience(&links);
        let alice = audience.of(1);
        let filters = |f: &[&str]| f.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        // Unheard: nothing.
        assert!(!alice.may_hear("emon/tx1/power"));
        let (mut tx, _rx) = links("1.ha");
        block_on(alice.subscribe(
            &mut tx,
            subscribe("u/1/ynni/feed/#"),
            &filters(&["ynni/feed/#", "$share/g/emon/tx1/#"]),
        ))
        .expect("subscribe");
        assert!(alice.may_hear("ynni/feed/3"));
        assert!(
            alice.may_hear("emon/tx1/power"),
            "a shared subscription's filter"
        );
        assert!(!alice.may_hear("emon/tx2/power"));
        // Another connection of the same user sees the same filters; another user none.
        assert!(audience.of(1).may_hear("emon/tx1/power"));
        assert!(!audience.of(2).may_hear("emon/tx1/power"));
        // Past the limit, everything of the user's is routed.
        let many: Vec<String> = (0..=MAX_FILTERS).map(|i| format!("n/{i}")).collect();
        block_on(alice.subscribe(&mut tx, subscribe("u/1/n/#"), &many)).expect("subscribe");
        assert!(alice.may_hear("emon/tx2/power"));
    }

    #[test]
    fn the_router_is_given_a_bounded_number_of_filters_and_topics_per_user() {
        let links = router();
        let audience = audience(&links);
        let (a1, a2, b) = (audience.of(1), audience.of(1), audience.of(2));
        let names: Vec<String> = (0..=MAX_ROUTER_FILTERS).map(|i| format!("n/{i}")).collect();
        let first = &names[..MAX_ROUTER_FILTERS - 1];
        assert!(a1.admit_filters(first.iter().map(String::as_str)));
        let two = [
            names[0].as_str(),
            &names[MAX_ROUTER_FILTERS - 1],
            &names[MAX_ROUTER_FILTERS],
        ];
        assert!(
            !a2.admit_filters(two.into_iter()),
            "one new too many: none admitted"
        );
        assert!(
            a2.admit_filters(two[..2].iter().copied()),
            "the last one left"
        );
        assert!(
            a1.admit_filters(["n/0"].into_iter()),
            "known filters stay admitted"
        );
        assert!(!a1.admit_filters(["n/new"].into_iter()));
        assert!(b.admit_filters(["n/new"].into_iter()), "another user's own");

        assert!(a1.topic_has_room(&Bytes::from_static(b"u/1/t/0")));
        for i in 0..MAX_ROUTED_TOPICS {
            assert!(a1.admit_topic(&Bytes::from(format!("u/1/t/{i}"))));
        }
        assert!(!a2.topic_has_room(&Bytes::from_static(b"u/1/t/new")));
        assert!(!a2.admit_topic(&Bytes::from_static(b"u/1/t/new")));
        assert!(
            a2.admit_topic(&Bytes::from_static(b"u/1/t/9")),
            "a known topic"
        );
        assert!(b.admit_topic(&Bytes::from_static(b"u/2/t/new")));
    }

    #[test]
    fn a_subscription_marks_every_connection_of_its_user_and_no_other() {
        let links = router();
        let audience = audience(&links);
        let (a1, a2, b) = (audience.of(1), audience.of(1), audience.of(2));
        assert!(!a1.is_heard() && !a2.is_heard() && !b.is_heard());
        let (mut tx, _rx) = links("1.a");
        block_on(a1.subscribe(&mut tx, subscribe("u/1/#"), &[])).expect("subscribe");
        assert!(a1.is_heard() && a2.is_heard());
        assert!(!b.is_heard());
        // A connection of the user opened later sees the mark too.
        assert!(audience.of(1).is_heard());
    }

    #[test]
    fn held_values_reach_the_first_subscriber_retained_latest_per_topic_then_values_go_straight_on()
    {
        let links = router();
        let audience = audience(&links);
        let (alice, bob) = (audience.of(1), audience.of(2));
        for (user, topic, value) in [
            (&alice, "u/1/ynni/feed/1", "1"),
            (&alice, "u/1/ynni/feed/1", "2"),
            (&alice, "u/1/ynni/feed/2", "7"),
            (&bob, "u/2/ynni/feed/3", "9"),
        ] {
            user.publish(b(topic), b(value), true).expect("held");
        }
        // Not retained, unheard: dropped, as a device's message would be.
        alice.publish(b("u/1/out"), b("5"), false).expect("dropped");
        assert_eq!((alice.held(), bob.held()), (2, 1));
        block_on(async {
            // Nothing reached the router: a link subscribing without the mark (which no
            // client's could) sees nothing retained.
            let (mut peek_tx, mut peek_rx) = links("peek");
            peek_tx.send(subscribe("u/1/#")).await.expect("peek");
            assert_eq!(delivered(&mut peek_rx), vec![]);

            let (_tx, mut rx) = subscriber(&alice, &links, "1.ha", "u/1/ynni/#").await;
            assert_eq!(
                delivered(&mut rx),
                vec![
                    got("u/1/ynni/feed/1", "2", true),
                    got("u/1/ynni/feed/2", "7", true)
                ]
            );
            assert_eq!(alice.held(), 0);
            // Bob's stay held: nobody hears bob.
            assert_eq!(bob.held(), 1);

            alice
                .publish(b("u/1/ynni/feed/1"), b("3"), true)
                .expect("sent");
            alice
                .publish(b("u/1/ynni/out"), b("4"), false)
                .expect("sent");
            assert_eq!(alice.held(), 0);
            assert_eq!(
                delivered(&mut rx),
                vec![
                    got("u/1/ynni/feed/1", "3", false),
                    got("u/1/ynni/out", "4", false)
                ]
            );
            // A later subscriber gets the newest value retained.
            let (_tx2, mut rx2) = subscriber(&alice, &links, "1.other", "u/1/ynni/feed/1").await;
            assert_eq!(delivered(&mut rx2), vec![got("u/1/ynni/feed/1", "3", true)]);
        });
    }

    #[test]
    fn a_clients_own_retained_message_replaces_what_ynni_held_on_its_topic() {
        let links = router();
        let audience = audience(&links);
        let alice = audience.of(1);
        for topic in ["u/1/ynni/feed/1", "u/1/ynni/feed/2"] {
            alice.publish(b(topic), b("old"), true).expect("held");
        }
        block_on(async {
            // The client's message goes to the router itself (as the session sends it).
            assert!(alice.client_retained(b"u/1/ynni/feed/1", 4));
            let (mut device, _device_rx) = links("1.device");
            device
                .send(retained(b("u/1/ynni/feed/1"), b("mine")))
                .await
                .expect("published");
            let (_tx, mut rx) = subscriber(&alice, &links, "1.ha", "u/1/#").await;
            assert_eq!(
                delivered(&mut rx),
                vec![
                    got("u/1/ynni/feed/1", "mine", true),
                    got("u/1/ynni/feed/2", "old", true)
                ]
            );
        });
    }

    #[test]
    fn a_retained_will_replaces_what_ynni_held_on_its_topic() {
        let links = router();
        let audience = audience(&links);
        let alice = audience.of(1);
        alice
            .publish(b("u/1/ynni/feed/1"), b("old"), true)
            .expect("held");
        alice
            .will(b("u/1/ynni/feed/1"), b("gone"), true)
            .expect("will");
        assert_eq!(alice.held(), 0);
        block_on(async {
            let (_tx, mut rx) = subscriber(&alice, &links, "1.ha", "u/1/#").await;
            assert_eq!(
                delivered(&mut rx),
                vec![got("u/1/ynni/feed/1", "gone", true)]
            );
        });
    }

    /// A client that publishes and then subscribes at once (Home Assistant's birth message,
    /// say) has a notice of its own waiting in the router's queue when its SUBSCRIBE is put on
    /// its link, and the router takes the SUBSCRIBE with the packet before it. What was held
    /// must still be stored first, so that it answers the subscription retained.
    #[test]
    fn held_values_are_stored_before_a_subscribe_that_follows_the_clients_own_packets() {
        let links = router();
        let audience = audience(&links);
        let users: Vec<i64> = (1..=40).collect();
        let mut subscribed = Vec::new();
        block_on(async {
            for &id in &users {
                let user = audience.of(id);
                let topic = format!("u/{id}/ynni/feed/1");
                user.publish(b(&topic), b("held"), true).expect("held");
                let (mut tx, rx) = links(&format!("{id}.ha"));
                for k in 0..20 {
                    let birth = format!("u/{id}/status/{k}");
                    tx.send(Packet::Publish(
                        Publish::new(b(&birth), b("online"), false),
                        None,
                    ))
                    .await
                    .expect("birth");
                }
                user.subscribe(&mut tx, subscribe(&format!("u/{id}/ynni/#")), &[])
                    .await
                    .expect("subscribe");
                subscribed.push((tx, rx, topic));
            }
        });
        let deadline = Instant::now() + Duration::from_millis(400);
        for (_tx, mut rx, topic) in subscribed {
            assert_eq!(
                delivered_by(&mut rx, deadline),
                vec![got(&topic, "held", true)]
            );
        }
    }

    #[test]
    fn clients_keep_retained_messages_up_to_their_users_limits() {
        let links = router();
        let audience = audience(&links);
        let (alice, bob) = (audience.of(1), audience.of(2));
        for i in 0..MAX_CLIENT_RETAINED {
            assert!(alice.client_retained(format!("u/1/t/{i}").as_bytes(), 10));
        }
        assert!(
            !alice.client_retained(b"u/1/t/one-more", 10),
            "a topic too many"
        );
        assert!(
            alice.client_retained(b"u/1/t/7", 20),
            "a kept topic's new value"
        );
        assert!(alice.client_retained(b"u/1/t/7", 0), "cleared");
        assert!(alice.client_retained(b"u/1/t/one-more", 10), "room again");
        assert!(
            bob.client_retained(b"u/2/t/0", 10),
            "another user's own limits"
        );
        assert!(
            !bob.client_retained(b"u/2/big", MAX_CLIENT_RETAINED_BYTES),
            "too many bytes"
        );
        assert!(bob.client_retained(b"u/2/big", MAX_CLIENT_RETAINED_BYTES / 2));
    }

    #[test]
    fn thousands_of_held_values_reach_a_subscriber_of_them_all() {
        let links = router();
        let audience = audience(&links);
        let alice = audience.of(1);
        // More values than the router's queue has room for notices (1,000), and than it
        // answered a subscription with before [`crate::ROUTER_BATCH`] (200).
        for feed in 0..1500 {
            let topic = format!("u/1/ynni/feed/{feed}");
            alice.publish(b(&topic), b("1"), true).expect("held");
        }
        block_on(async {
            let (_tx, mut rx) = subscriber(&alice, &links, "1.ha", "u/1/ynni/feed/#").await;
            assert_eq!(delivered(&mut rx).len(), 1500);
        });
    }
}
