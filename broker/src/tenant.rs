//! The per-user topic namespace: a wrapper around rumqttd's MQTT codec that rewrites topics.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{Error, Packet, Protocol};

use crate::devices::DeviceSessions;

const PREFIX: &str = "u/";
/// Where a device's publishes outside its node go: no client can subscribe there, because
/// every client filter is inside `u/<user>/`.
const DENIED: &str = "denied/";

/// Wraps a codec; one value is cloned per connection and learns its user from CONNECT (the
/// auth hook has checked the password before any later packet is handled).
#[derive(Clone)]
pub struct TenantNs<P> {
    inner: P,
    prefix: Option<String>,
    client_id: String,
    /// `Some(Some(node))` once known that this is a device session bound to `node`.
    device: Option<Option<String>>,
    sessions: Arc<DeviceSessions>,
    base: String,
    /// emonSD's legacy login name and the account it stands for.
    alias: Option<Arc<(String, String)>>,
}

impl<P> TenantNs<P> {
    pub fn new(
        inner: P,
        sessions: Arc<DeviceSessions>,
        base: &str,
        alias: Option<Arc<(String, String)>>,
    ) -> Self {
        Self {
            inner,
            prefix: None,
            client_id: String::new(),
            device: None,
            sessions,
            base: base.to_string(),
            alias,
        }
    }

    /// Whether this connection may publish `topic`: any topic for an account, only
    /// `<base>/<node>[/…]` for a device key.
    fn may_publish(&mut self, topic: &str) -> bool {
        let device = self
            .device
            .get_or_insert_with(|| self.sessions.node_of(&self.client_id));
        match device {
            None => true,
            Some(node) => crate::devices::topic_of_node(topic, &self.base, node),
        }
    }
}

/// `u/<user>/<rest>` → (user, rest).
pub fn split(topic: &str) -> Option<(&str, &str)> {
    topic.strip_prefix(PREFIX)?.split_once('/')
}

/// Puts a topic or filter inside the namespace. In `$share/<group>/<filter>` the group is made
/// the user's own too: rumqttd shares a group's messages out by group name alone, so two
/// users' groups called `g` would otherwise take turns with each other's messages (and drop
/// the ones whose filter does not match).
fn inside(prefix: &str, topic: &str) -> String {
    match topic
        .strip_prefix("$share/")
        .and_then(|r| r.split_once('/'))
    {
        Some((group, filter)) => {
            let user = prefix
                .strip_prefix(PREFIX)
                .and_then(|p| p.strip_suffix('/'))
                .unwrap_or(prefix);
            format!("$share/{group}.{user}/{prefix}{filter}")
        }
        None => format!("{prefix}{topic}"),
    }
}

impl<P: Protocol> Protocol for TenantNs<P> {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        let mut packet = self.inner.read_mut(stream, max_size)?;
        if let Packet::Connect(connect, _, will, _, login) = &mut packet {
            let mut user = login
                .as_ref()
                .map(|l| l.username.clone())
                .unwrap_or_default();
            // The legacy login works in its account's namespace (the auth hook checks it).
            if let Some(alias) = &self.alias
                && user == alias.0
            {
                user = alias.1.clone();
            }
            let prefix = format!("{PREFIX}{user}/");
            self.client_id = connect.client_id.clone();
            // The auth hook, which runs next, refuses a device whose will is outside its node.
            let will_topic = will
                .as_ref()
                .map(|w| String::from_utf8_lossy(&w.topic).into_owned());
            self.sessions.connecting(&self.client_id, will_topic);
            if let Some(w) = will {
                let t = String::from_utf8_lossy(&w.topic).into_owned();
                w.topic = Bytes::from(inside(&prefix, &t));
            }
            self.prefix = Some(prefix);
            return Ok(packet);
        }
        let Some(prefix) = self.prefix.clone() else {
            return Ok(packet);
        };
        let prefix = prefix.as_str();
        match &mut packet {
            // An empty topic reuses an MQTT 5 topic alias: leave it.
            Packet::Publish(p, _) if !p.topic.is_empty() => {
                let t = String::from_utf8_lossy(&p.topic).into_owned();
                p.topic = if self.may_publish(&t) {
                    Bytes::from(inside(prefix, &t))
                } else {
                    Bytes::from(format!("{DENIED}{prefix}{t}"))
                };
            }
            Packet::Subscribe(s, _) => {
                for f in &mut s.filters {
                    f.path = inside(prefix, &f.path);
                }
            }
            Packet::Unsubscribe(u, _) => {
                for f in &mut u.filters {
                    *f = inside(prefix, f);
                }
            }
            _ => {}
        }
        Ok(packet)
    }

    fn write(&self, mut packet: Packet, write: &mut BytesMut) -> Result<usize, Error> {
        if let (Packet::Publish(p, _), Some(prefix)) = (&mut packet, &self.prefix)
            && p.topic.starts_with(prefix.as_bytes())
        {
            p.topic = p.topic.slice(prefix.len()..);
        }
        self.inner.write(packet, write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespacing() {
        assert_eq!(inside("u/alice/", "emon/tx/power"), "u/alice/emon/tx/power");
        assert_eq!(inside("u/alice/", "#"), "u/alice/#");
        assert_eq!(
            inside("u/alice/", "$share/g/emon/#"),
            "$share/g.alice/u/alice/emon/#"
        );
        assert_eq!(
            split("u/alice/emon/tx/power"),
            Some(("alice", "emon/tx/power"))
        );
        assert_eq!(split("emon/tx"), None);
    }
}
