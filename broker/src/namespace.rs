//! The per-user topic namespace (DESIGN.md §3): every topic a connection publishes, subscribes
//! to or leaves as its will lives under `u/<userid>/`, and the prefix is taken off again on the
//! way out, so a client never names, sees or reaches another user's topics. The user is the
//! account's **id**, fixed when the connection authenticated: a rename cannot move a live
//! connection into another account's topics.

/// The namespace of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Namespace {
    userid: i64,
    prefix: String,
}

impl Namespace {
    pub(crate) fn new(userid: i64) -> Self {
        Self {
            userid,
            prefix: format!("u/{userid}/"),
        }
    }

    pub(crate) fn userid(&self) -> i64 {
        self.userid
    }

    /// A topic or filter as the router sees it. In `$share/<group>/<filter>` the group is made
    /// the user's own too: rumqttd shares a group's messages out by group name alone, so two
    /// users' groups called `g` would otherwise take turns with each other's messages.
    pub(crate) fn inside(&self, topic: &str) -> String {
        match topic
            .strip_prefix("$share/")
            .and_then(|r| r.split_once('/'))
        {
            Some((group, filter)) => {
                format!("$share/{group}.{}/{}{filter}", self.userid, self.prefix)
            }
            None => format!("{}{topic}", self.prefix),
        }
    }

    /// A topic the router delivers, as the client sees it (`None`: not this user's).
    pub(crate) fn outside(&self, topic: &bytes::Bytes) -> Option<bytes::Bytes> {
        topic
            .starts_with(self.prefix.as_bytes())
            .then(|| topic.slice(self.prefix.len()..))
    }
}

/// The router topic of `topic` in `userid`'s namespace (what outputs publish to).
pub(crate) fn user_topic(userid: i64, topic: &str) -> String {
    format!("u/{userid}/{topic}")
}

/// `<base>/<node>` or a topic below it: what a device key may publish.
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
    fn topics_and_filters_stay_inside_the_users_namespace() {
        let ns = Namespace::new(7);
        assert_eq!(ns.inside("emon/tx/power"), "u/7/emon/tx/power");
        assert_eq!(ns.inside("#"), "u/7/#");
        assert_eq!(ns.inside("$share/g/emon/#"), "$share/g.7/u/7/emon/#");
        let seen = |t: &'static str| ns.outside(&bytes::Bytes::from(t));
        assert_eq!(seen("u/7/emon/tx").as_deref(), Some(&b"emon/tx"[..]));
        assert_eq!(seen("u/70/emon/tx"), None, "another user's prefix");
        assert_eq!(user_topic(3, "ynni/feed/1"), "u/3/ynni/feed/1");
    }

    #[test]
    fn a_device_publishes_only_its_node() {
        assert!(topic_of_node("emon/tx1", "emon", "tx1"));
        assert!(topic_of_node("emon/tx1/power", "emon", "tx1"));
        assert!(!topic_of_node("emon/tx10/power", "emon", "tx1"));
        assert!(!topic_of_node("emon/other", "emon", "tx1"));
        assert!(!topic_of_node("x/emon/tx1", "emon", "tx1"));
    }
}
