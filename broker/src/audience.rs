//! Whether anyone could receive a user's messages through the router.
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
//! client could see its SUBACK is routed. Retained messages and wills always go to the router,
//! which keeps them for subscribers to come.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The users with subscribers, each as a flag its connections share.
#[derive(Default)]
pub(crate) struct Audience {
    users: Mutex<HashMap<i64, Arc<AtomicBool>>>,
}

impl Audience {
    /// The flag of `userid`'s subscribers, for a connection of that user to keep.
    pub(crate) fn of(&self, userid: i64) -> Heard {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        Heard(users.entry(userid).or_default().clone())
    }
}

/// One user's mark: set once any of the user's clients subscribed to anything.
#[derive(Clone)]
pub(crate) struct Heard(Arc<AtomicBool>);

impl Heard {
    /// Marks the user heard; call before the subscription reaches the router.
    pub(crate) fn subscribed(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a message of this user may have a subscriber.
    pub(crate) fn is_heard(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_marks_every_connection_of_its_user_and_no_other() {
        let audience = Audience::default();
        let (a1, a2, b) = (audience.of(1), audience.of(1), audience.of(2));
        assert!(!a1.is_heard() && !a2.is_heard() && !b.is_heard());
        a1.subscribed();
        assert!(a1.is_heard() && a2.is_heard());
        assert!(!b.is_heard());
        // A connection of the user opened later sees the mark too.
        assert!(audience.of(1).is_heard());
    }
}
