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
//! open at once. A kept session is known by its client id, which is what resumes it.

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
    /// The router id of the clean session in this slot: `%` followed by letters, which the
    /// escaping of client ids ([`router_client_id`]) never produces.
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

/// The router id of a kept session: the user's id, then the client's own id with the
/// characters the router refuses (`+ $ # /`, and `%` itself) escaped, so that every (user,
/// client id) pair has its own.
pub(crate) fn router_client_id(userid: i64, client_id: &str) -> String {
    let mut id = format!("{userid}.");
    for c in client_id.chars() {
        match c {
            '+' | '$' | '#' | '/' | '%' => id.push_str(&format!("%{:02X}", c as u32)),
            c => id.push(c),
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn router_ids_are_per_user_and_use_only_what_the_router_accepts() {
        assert_eq!(router_client_id(1, "emonpi"), "1.emonpi");
        assert_ne!(router_client_id(1, "emonpi"), router_client_id(2, "emonpi"));
        assert_eq!(router_client_id(12, "a/b+c#$%"), "12.a%2Fb%2Bc%23%24%25");
        assert_ne!(router_client_id(1, "a/"), router_client_id(1, "a%2F"));
    }

    #[test]
    fn no_client_id_escapes_to_a_clean_slots_id() {
        for client in ["%clean0", "%25clean0", "%", "%%clean0", "x/%clean0"] {
            let id = router_client_id(1, client);
            assert!(!id.contains("%clean"), "{client} -> {id}");
        }
    }
}
