//! Device-key sessions: a device authenticates with its user's name and its own key, and may
//! publish only its node's topics (`<base>/<node>` and below).

use std::collections::HashMap;
use std::sync::Mutex;

/// What a CONNECT's credentials open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Denied,
    /// The account's write apikey: any topic in the user's namespace.
    Account,
    /// A device key: publishes limited to this node.
    Device(String),
}

/// Per client id: the will topic seen at CONNECT (checked by the auth hook) and, after a
/// device key was accepted, the node it is bound to.
#[derive(Debug, Default)]
pub struct DeviceSessions {
    map: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Default)]
struct Session {
    will: Option<String>,
    node: Option<String>,
}

impl DeviceSessions {
    pub(crate) fn connecting(&self, client_id: &str, will: Option<String>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(client_id.to_string(), Session { will, node: None });
    }

    /// Records the outcome of authentication; `false` when a device's will topic lies outside
    /// its node (the connection is then refused).
    pub(crate) fn authenticated(&self, client_id: &str, access: &Access, base: &str) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.entry(client_id.to_string()).or_default();
        match access {
            Access::Device(node) => {
                if session
                    .will
                    .as_deref()
                    .is_some_and(|w| !topic_of_node(w, base, node))
                {
                    return false;
                }
                session.node = Some(node.clone());
                true
            }
            Access::Account => {
                session.node = None;
                true
            }
            Access::Denied => false,
        }
    }

    pub(crate) fn node_of(&self, client_id: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(client_id).and_then(|s| s.node.clone())
    }
}

/// `<base>/<node>` or a topic below it.
pub(crate) fn topic_of_node(topic: &str, base: &str, node: &str) -> bool {
    topic
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(node))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_topics() {
        assert!(topic_of_node("emon/tx1", "emon", "tx1"));
        assert!(topic_of_node("emon/tx1/power", "emon", "tx1"));
        assert!(!topic_of_node("emon/tx10/power", "emon", "tx1"));
        assert!(!topic_of_node("emon/other", "emon", "tx1"));
        assert!(!topic_of_node("x/emon/tx1", "emon", "tx1"));
    }

    #[test]
    fn a_device_will_outside_its_node_is_refused() {
        let s = DeviceSessions::default();
        s.connecting("c1", Some("emon/other/status".into()));
        assert!(!s.authenticated("c1", &Access::Device("tx1".into()), "emon"));
        s.connecting("c2", Some("emon/tx1/status".into()));
        assert!(s.authenticated("c2", &Access::Device("tx1".into()), "emon"));
        assert_eq!(s.node_of("c2").as_deref(), Some("tx1"));
        s.connecting("c3", Some("anything".into()));
        assert!(s.authenticated("c3", &Access::Account, "emon"));
        assert_eq!(s.node_of("c3"), None);
    }
}
