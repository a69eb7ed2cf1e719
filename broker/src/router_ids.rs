//! The ids the router knows connections by.
//!
//! rumqttd's router remembers something of every client id it has seen, for as long as it
//! runs: a session kept after the connection (to resume it), and, for a clean session, its
//! last few connection events. A connection whose id is new each time (one the broker
//! assigns, `mosquitto_sub`'s random ids, Home Assistant's after a restart) would add an
//! entry per connection for ever. A clean session needs no id of the router's beyond its
//! connection (ynni's registry already closes the connection a new one with the same client
//! id replaces), so it gets a slot of its user's instead, the lowest free one, back when it
//! ends: the router sees at most as many clean ids per user as the user ever had connections
//! open at once.
//!
//! A kept session (`clean_session` false) is what the router must remember between
//! connections, by an id that finds it again. It gets a slot of its user's too, fixed for its
//! client id: [`KeptSlots`] holds at most as many client ids per user as the user may have
//! connections, and a new one past that takes the slot of the one used longest ago that is not
//! connected, whose session the router is first told to forget (a clean connection on that
//! slot's id). Without it, an account connecting with a new client id each time kept a session
//! in the router per connection for as long as the broker ran.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The slots in use, per user.
#[derive(Clone, Default)]
pub(crate) struct CleanSlots(Arc<Mutex<HashMap<i64, BTreeSet<u32>>>>);

/// A slot held by one connection; given back when dropped.
pub(crate) struct Slot {
    slots: CleanSlots,
    userid: i64,
    n: u32,
}

impl CleanSlots {
    /// The lowest slot of `userid` not in use.
    pub(crate) fn take(&self, userid: i64) -> Slot {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let used = all.entry(userid).or_default();
        let n = (0..).find(|n| !used.contains(n)).unwrap_or(u32::MAX);
        used.insert(n);
        Slot {
            slots: self.clone(),
            userid,
            n,
        }
    }
}

impl Slot {
    /// The router id of the clean session in this slot (kept sessions' are `%kept`: no client
    /// id reaches the router).
    pub(crate) fn router_id(&self) -> String {
        format!("{}.%clean{}", self.userid, self.n)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut all = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(used) = all.get_mut(&self.userid) {
            used.remove(&self.n);
            if used.is_empty() {
                all.remove(&self.userid);
            }
        }
    }
}

/// The kept sessions' slots, per user: client id → (slot, last use).
#[derive(Clone, Default)]
pub(crate) struct KeptSlots(Arc<Mutex<HashMap<i64, Kept>>>);

#[derive(Default)]
struct Kept {
    clock: u64,
    by_client: HashMap<String, (u32, u64)>,
}

/// Where a kept session goes in the router.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeptPlace {
    pub router_id: String,
    /// The slot held another client's session, which the router must forget first.
    pub clear_first: bool,
}

impl KeptSlots {
    /// The router id of `client_id`'s kept session: its own slot, or a new one while the user
    /// has fewer than `limit`, else the slot of the client used longest ago that `connected`
    /// says is not connected now. `None` when every one of them is connected.
    pub(crate) fn place(
        &self,
        userid: i64,
        client_id: &str,
        limit: usize,
        connected: impl Fn(&str) -> bool,
    ) -> Option<KeptPlace> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kept = all.entry(userid).or_default();
        kept.clock += 1;
        let now = kept.clock;
        let router_id = |n: u32| format!("{userid}.%kept{n}");
        if let Some((n, used)) = kept.by_client.get_mut(client_id) {
            *used = now;
            return Some(KeptPlace {
                router_id: router_id(*n),
                clear_first: false,
            });
        }
        // A slot new to this client is always cleared first: a free slot may still hold the
        // session of a client forgotten since (a clean connection of it, a failed start).
        if kept.by_client.len() < limit.max(1) {
            let taken: BTreeSet<u32> = kept.by_client.values().map(|(n, _)| *n).collect();
            let n = (0..).find(|n| !taken.contains(n)).unwrap_or(u32::MAX);
            kept.by_client.insert(client_id.to_string(), (n, now));
            return Some(KeptPlace {
                router_id: router_id(n),
                clear_first: true,
            });
        }
        let oldest = kept
            .by_client
            .iter()
            .filter(|(c, _)| !connected(c))
            .min_by_key(|(_, (_, used))| *used)
            .map(|(c, (n, _))| (c.clone(), *n))?;
        kept.by_client.remove(&oldest.0);
        kept.by_client
            .insert(client_id.to_string(), (oldest.1, now));
        Some(KeptPlace {
            router_id: router_id(oldest.1),
            clear_first: true,
        })
    }
}

impl KeptSlots {
    /// `client_id`'s kept session was in use until now.
    pub(crate) fn touch(&self, userid: i64, client_id: &str) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = all.get_mut(&userid) {
            kept.clock += 1;
            let now = kept.clock;
            if let Some((_, used)) = kept.by_client.get_mut(client_id) {
                *used = now;
            }
        }
    }

    /// `client_id` keeps no session any more; its slot is free (and cleared before reuse).
    pub(crate) fn forget(&self, userid: i64, client_id: &str) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = all.get_mut(&userid) {
            kept.by_client.remove(client_id);
            if kept.by_client.is_empty() {
                all.remove(&userid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_sessions_keep_their_slot_and_the_longest_unused_gives_way() {
        let kept = KeptSlots::default();
        let none = |_: &str| false;
        let place = |c: &str, connected: &dyn Fn(&str) -> bool| kept.place(1, c, 2, connected);
        let a = place("a", &none).expect("a");
        assert_eq!(
            a,
            KeptPlace {
                router_id: "1.%kept0".into(),
                clear_first: true
            }
        );
        let b = place("b", &none).expect("b");
        assert_eq!(b.router_id, "1.%kept1");
        assert_eq!(
            place("a", &none).expect("a again"),
            KeptPlace {
                router_id: "1.%kept0".into(),
                clear_first: false
            },
            "its own slot, as it was"
        );
        assert_eq!(
            kept.place(2, "a", 2, none).expect("other user").router_id,
            "2.%kept0"
        );
        // Full: c takes b's slot (used longest ago), to be cleared first.
        let c = place("c", &none).expect("c");
        assert_eq!(
            c,
            KeptPlace {
                router_id: "1.%kept1".into(),
                clear_first: true
            }
        );
        // b is back: a is connected, so c's slot (the other) goes.
        let a_on = |id: &str| id == "a";
        let b2 = place("b", &a_on).expect("b");
        assert_eq!(
            b2,
            KeptPlace {
                router_id: "1.%kept1".into(),
                clear_first: true
            }
        );
        // Everyone connected: no place.
        assert_eq!(place("d", &|_: &str| true), None);
        // A session that ended is the most recently used: b's end makes a the oldest.
        kept.touch(1, "b");
        assert_eq!(place("e", &none).expect("e").router_id, "1.%kept0");
        // A forgotten client's slot is free, and cleared before its next use.
        kept.forget(1, "e");
        let f = place("f", &none).expect("f");
        assert_eq!(
            f,
            KeptPlace {
                router_id: "1.%kept0".into(),
                clear_first: true
            }
        );
    }

    #[test]
    fn clean_sessions_reuse_the_lowest_free_slot_of_their_user() {
        let slots = CleanSlots::default();
        let a = slots.take(1);
        let b = slots.take(1);
        let other = slots.take(2);
        assert_eq!(
            (a.router_id(), b.router_id(), other.router_id()),
            ("1.%clean0".into(), "1.%clean1".into(), "2.%clean0".into())
        );
        drop(a);
        assert_eq!(slots.take(1).router_id(), "1.%clean0", "given back");
        drop((b, other));
        assert_eq!(
            slots.0.lock().unwrap().get(&2),
            None,
            "a user with none in use is forgotten"
        );
    }
}
