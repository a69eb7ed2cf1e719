//! The per-user topic namespace: a wrapper around rumqttd's MQTT codec that rewrites topics.

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{Error, Packet, Protocol};

const PREFIX: &str = "u/";

/// Wraps a codec; one value is cloned per connection and learns its user from CONNECT (the
/// auth hook has checked the password before any later packet is handled).
#[derive(Clone)]
pub struct TenantNs<P> {
    inner: P,
    prefix: Option<String>,
}

impl<P> TenantNs<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            prefix: None,
        }
    }
}

/// `u/<user>/<rest>` → (user, rest).
pub fn split(topic: &str) -> Option<(&str, &str)> {
    topic.strip_prefix(PREFIX)?.split_once('/')
}

/// Puts a topic or filter inside the namespace; `$share/<group>/<filter>` keeps its group.
fn inside(prefix: &str, topic: &str) -> String {
    match topic
        .strip_prefix("$share/")
        .and_then(|r| r.split_once('/'))
    {
        Some((group, filter)) => format!("$share/{group}/{prefix}{filter}"),
        None => format!("{prefix}{topic}"),
    }
}

impl<P: Protocol> Protocol for TenantNs<P> {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        let mut packet = self.inner.read_mut(stream, max_size)?;
        if let Packet::Connect(_, _, will, _, login) = &mut packet {
            let user = login
                .as_ref()
                .map(|l| l.username.clone())
                .unwrap_or_default();
            let prefix = format!("{PREFIX}{user}/");
            if let Some(w) = will {
                let t = String::from_utf8_lossy(&w.topic).into_owned();
                w.topic = Bytes::from(inside(&prefix, &t));
            }
            self.prefix = Some(prefix);
            return Ok(packet);
        }
        let Some(prefix) = &self.prefix else {
            return Ok(packet);
        };
        match &mut packet {
            // An empty topic reuses an MQTT 5 topic alias: leave it.
            Packet::Publish(p, _) if !p.topic.is_empty() => {
                let t = String::from_utf8_lossy(&p.topic).into_owned();
                p.topic = Bytes::from(inside(prefix, &t));
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
            "$share/g/u/alice/emon/#"
        );
        assert_eq!(
            split("u/alice/emon/tx/power"),
            Some(("alice", "emon/tx/power"))
        );
        assert_eq!(split("emon/tx"), None);
    }
}
