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
            V4.write(packet, write)
        }
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
}
