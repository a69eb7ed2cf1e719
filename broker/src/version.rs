//! One listener for MQTT 3.1.1 and 5: rumqttd has a codec per version and a listener per codec,
//! so this codec reads the protocol level in the first CONNECT and hands the connection to the
//! matching one.

use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::protocol::{Error, Packet, Protocol};

#[derive(Clone, Default)]
pub struct AnyVersion {
    /// Decided by the first CONNECT; `None` until then.
    v5: Option<bool>,
}

/// The protocol level of a CONNECT at the start of `b`: `Ok(None)` if `b` does not start with
/// a CONNECT, `Err(n)` if `n` more bytes are needed to tell.
fn connect_level(b: &[u8]) -> Result<Option<u8>, usize> {
    let Some(&first) = b.first() else {
        return Err(1);
    };
    if first >> 4 != 1 {
        return Ok(None);
    }
    // Remaining length: 1 to 4 bytes, 7 bits each.
    let mut i = 1;
    loop {
        let Some(&byte) = b.get(i) else { return Err(1) };
        i += 1;
        if byte & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let name_len = match (b.get(i), b.get(i + 1)) {
        (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return Err(i + 2 - b.len()),
    };
    let level_at = i + 2 + name_len;
    match b.get(level_at) {
        Some(&level) => Ok(Some(level)),
        None => Err(level_at + 1 - b.len()),
    }
}

impl Protocol for AnyVersion {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        if self.v5.is_none() {
            match connect_level(stream) {
                Ok(Some(level)) => self.v5 = Some(level == 5),
                // Not a CONNECT: the 3.1.1 codec reports the protocol error.
                Ok(None) => self.v5 = Some(false),
                Err(more) => return Err(Error::InsufficientBytes(more)),
            }
        }
        if self.v5 == Some(true) {
            V5.read_mut(stream, max_size)
        } else {
            V4.read_mut(stream, max_size)
        }
    }

    fn write(&self, packet: Packet, write: &mut BytesMut) -> Result<usize, Error> {
        if self.v5 == Some(true) {
            V5.write(packet, write)
        } else {
            // rumqttd's 3.1.1 writer panics on properties (a v5 publisher's message on its way
            // to a 3.1.1 subscriber has them): 3.1.1 has none, so they go.
            V4.write(without_properties(packet), write)
        }
    }
}

impl AnyVersion {
    /// Whether the client speaks MQTT 5 (known once its CONNECT was read).
    pub fn is_v5(&self) -> bool {
        self.v5 == Some(true)
    }
}

/// The packet with its MQTT 5 properties removed, for a 3.1.1 client.
fn without_properties(packet: Packet) -> Packet {
    match packet {
        Packet::ConnAck(a, _) => Packet::ConnAck(a, None),
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(a, _) => Packet::PubAck(a, None),
        Packet::SubAck(a, _) => Packet::SubAck(a, None),
        Packet::PubRec(a, _) => Packet::PubRec(a, None),
        Packet::PubRel(a, _) => Packet::PubRel(a, None),
        Packet::PubComp(a, _) => Packet::PubComp(a, None),
        Packet::UnsubAck(a, _) => Packet::UnsubAck(a, None),
        Packet::Subscribe(s, _) => Packet::Subscribe(s, None),
        Packet::Unsubscribe(u, _) => Packet::Unsubscribe(u, None),
        Packet::Disconnect(d, _) => Packet::Disconnect(d, None),
        Packet::Connect(c, _, w, _, l) => Packet::Connect(c, None, w, None, l),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_level_of_a_connect() {
        // CONNECT, remaining length 16, "MQTT", level 4 / 5.
        let v4 = [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60];
        let v5 = [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60];
        assert_eq!(connect_level(&v4), Ok(Some(4)));
        assert_eq!(connect_level(&v5), Ok(Some(5)));
        assert_eq!(connect_level(&v4[..6]), Err(3));
        assert_eq!(connect_level(&[]), Err(1));
        assert_eq!(connect_level(&[0x30, 2]), Ok(None));
    }

    #[test]
    fn a_31_client_is_written_no_properties() {
        use rumqttd::protocol::{Publish, PublishProperties};
        let mut codec = AnyVersion::default();
        let mut connect =
            BytesMut::from(&[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0][..]);
        assert!(codec.read_mut(&mut connect, 1024).is_ok());
        assert!(!codec.is_v5());
        let props = PublishProperties {
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        let packet = Packet::Publish(Publish::new("t", "v", false), Some(props));
        assert!(
            codec.write(packet, &mut out).is_ok(),
            "written, not a panic"
        );
        assert_eq!(&out[..], &[0x30, 4, 0, 1, b't', b'v']);
    }
}
