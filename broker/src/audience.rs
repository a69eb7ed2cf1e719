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
//! ynni's own retained messages (every stored feed value, Home Assistant discovery) are the
//! other half of that cost: one router wake-up per value stored. For a user nobody hears they
//! are held here instead, the latest per topic (all a retained store keeps), and handed to the
//! router through the subscribing client's link just before its first SUBSCRIBE, so the router
//! stores them before it answers that subscription with them.
//!
//! Order is what keeps the router's store right, because it keeps the last retained message
//! it is given per topic. The router takes every link's packets from one queue, in the order
//! they were sent. The user's lock is held from the hand-over of what is held, through the
//! mark, to the SUBSCRIBE being sent. A retained message of ynni's either finds the user
//! unheard under that lock (and replaces what is held), or sees the mark, which is set only
//! after the held messages were sent: either way it reaches the queue after any older value
//! of its topic. A client's own retained message on a topic something of ynni's waits on
//! replaces it: the client's is the newer, and goes to the router at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttd::local::{LinkError, LinkTx};
use rumqttd::protocol::{Packet, Publish};

/// The users the broker has seen, each with its mark and what waits for it.
#[derive(Default)]
pub(crate) struct Audience {
    users: Mutex<HashMap<i64, Heard>>,
}

impl Audience {
    /// The mark of `userid`'s subscribers, for a connection or the publisher to keep.
    pub(crate) fn of(&self, userid: i64) -> Heard {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.entry(userid).or_default().clone()
    }
}

/// One user's mark (set once any of the user's clients subscribed to anything) and ynni's
/// retained messages held until then.
#[derive(Clone, Default)]
pub(crate) struct Heard(Arc<User>);

#[derive(Default)]
struct User {
    heard: AtomicBool,
    /// Topic (inside the user's namespace) → the latest payload ynni published retained on
    /// it while nobody heard the user. Bounded by the user's feeds and discovery topics.
    held: tokio::sync::Mutex<HashMap<Bytes, Bytes>>,
}

impl Heard {
    /// Whether a message of this user may have a subscriber.
    pub(crate) fn is_heard(&self) -> bool {
        self.0.heard.load(Ordering::Acquire)
    }

    /// Sends a client's SUBSCRIBE (already inside the user's namespace) to the router; the
    /// first of the user's also hands over what was held, and marks the user heard.
    pub(crate) async fn subscribe(
        &self,
        link: &mut LinkTx,
        subscribe: Packet,
    ) -> Result<(), LinkError> {
        if self.is_heard() {
            return link.send(subscribe).await.map(drop);
        }
        let mut held = self.0.held.lock().await;
        if !self.is_heard() {
            for (topic, payload) in held.drain() {
                let publish = Publish::new(topic, payload, true);
                link.send(Packet::Publish(publish, None)).await?;
            }
            held.shrink_to_fit();
            self.0.heard.store(true, Ordering::Release);
        }
        link.send(subscribe).await.map(drop)
    }

    /// ynni's own retained message: to the router if the user is heard, otherwise held in
    /// place of any older one on its topic.
    pub(crate) async fn publish_retained(
        &self,
        link: &mut LinkTx,
        topic: Bytes,
        payload: Bytes,
    ) -> Result<(), LinkError> {
        let packet = |topic, payload| Packet::Publish(Publish::new(topic, payload, true), None);
        if self.is_heard() {
            return link.send(packet(topic, payload)).await.map(drop);
        }
        let mut held = self.0.held.lock().await;
        if self.is_heard() {
            return link.send(packet(topic, payload)).await.map(drop);
        }
        held.insert(topic, payload);
        Ok(())
    }

    /// A client of the user published a retained message on `topic` (inside the namespace):
    /// nothing of ynni's older than it may reach the router after it.
    pub(crate) async fn client_retained(&self, topic: &[u8]) {
        if self.is_heard() {
            return;
        }
        self.0.held.lock().await.remove(topic);
    }

    /// How many retained messages wait for the user to be heard.
    #[cfg(test)]
    async fn held(&self) -> usize {
        self.0.held.lock().await.len()
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
                max_connections: 16,
                max_outgoing_packet_count: 200,
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

    /// Every publish the router forwards to `rx` within a short while, as (topic, payload).
    fn delivered(rx: &mut LinkRx) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_millis(400);
        let mut got = Vec::new();
        while let Ok(Some(n)) = rx.recv_deadline(deadline) {
            if let Notification::Forward(f) = n {
                let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
                got.push((text(&f.publish.topic), text(&f.publish.payload)));
            }
        }
        got.sort();
        got
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_subscription_marks_every_connection_of_its_user_and_no_other() {
        let audience = Audience::default();
        let (a1, a2, b) = (audience.of(1), audience.of(1), audience.of(2));
        assert!(!a1.is_heard() && !a2.is_heard() && !b.is_heard());
        let links = router();
        let (mut tx, _rx) = links("1.a");
        block_on(a1.subscribe(&mut tx, subscribe("u/1/#"))).expect("subscribe");
        assert!(a1.is_heard() && a2.is_heard());
        assert!(!b.is_heard());
        // A connection of the user opened later sees the mark too.
        assert!(audience.of(1).is_heard());
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn held_values_reach_the_first_subscriber_latest_per_topic_and_later_ones_go_straight_on() {
        let links = router();
        let audience = Audience::default();
        let (mut outputs, _out_rx) = links("ynni-outputs");
        let (alice, bob) = (audience.of(1), audience.of(2));
        block_on(async {
            for (user, topic, value) in [
                (&alice, "u/1/ynni/feed/1", "1"),
                (&alice, "u/1/ynni/feed/1", "2"),
                (&alice, "u/1/ynni/feed/2", "7"),
                (&bob, "u/2/ynni/feed/3", "9"),
            ] {
                user.publish_retained(&mut outputs, b(topic), b(value))
                    .await
                    .expect("held");
            }
            assert_eq!((alice.held().await, bob.held().await), (2, 1));

            // Nothing reached the router: a subscriber of alice's topics that bypasses the
            // mark (as a second user's link could not) sees nothing retained.
            let (mut peek_tx, mut peek_rx) = links("peek");
            peek_tx.send(subscribe("u/1/#")).await.expect("peek");
            assert_eq!(delivered(&mut peek_rx), vec![]);

            let (mut tx, mut rx) = links("1.ha");
            alice
                .subscribe(&mut tx, subscribe("u/1/ynni/#"))
                .await
                .expect("subscribe");
            assert_eq!(
                delivered(&mut rx),
                vec![
                    ("u/1/ynni/feed/1".into(), "2".into()),
                    ("u/1/ynni/feed/2".into(), "7".into())
                ]
            );
            assert_eq!(alice.held().await, 0);
            // Bob's stay held: alice's subscriber could not see them anyway, and bob has none.
            assert_eq!(bob.held().await, 1);

            alice
                .publish_retained(&mut outputs, b("u/1/ynni/feed/1"), b("3"))
                .await
                .expect("sent");
            assert_eq!(alice.held().await, 0);
            assert_eq!(
                delivered(&mut rx),
                vec![("u/1/ynni/feed/1".into(), "3".into())]
            );
            // A later subscriber gets the newest value retained.
            let (mut tx2, mut rx2) = links("1.other");
            alice
                .subscribe(&mut tx2, subscribe("u/1/ynni/feed/1"))
                .await
                .expect("subscribe");
            assert_eq!(
                delivered(&mut rx2),
                vec![("u/1/ynni/feed/1".into(), "3".into())]
            );
        });
    }

    #[test]
    fn a_clients_own_retained_message_replaces_what_ynni_held_on_its_topic() {
        let links = router();
        let audience = Audience::default();
        let (mut outputs, _out_rx) = links("ynni-outputs");
        let alice = audience.of(1);
        block_on(async {
            for topic in ["u/1/ynni/feed/1", "u/1/ynni/feed/2"] {
                alice
                    .publish_retained(&mut outputs, b(topic), b("old"))
                    .await
                    .expect("held");
            }
            // The client's message goes to the router itself (as the session sends it).
            alice.client_retained(b"u/1/ynni/feed/1").await;
            let (mut device, _device_rx) = links("1.device");
            device
                .send(Packet::Publish(
                    Publish::new(b("u/1/ynni/feed/1"), b("mine"), true),
                    None,
                ))
                .await
                .expect("published");
            let (mut tx, mut rx) = links("1.ha");
            alice
                .subscribe(&mut tx, subscribe("u/1/#"))
                .await
                .expect("subscribe");
            assert_eq!(
                delivered(&mut rx),
                vec![
                    ("u/1/ynni/feed/1".into(), "mine".into()),
                    ("u/1/ynni/feed/2".into(), "old".into())
                ]
            );
        });
    }
}
