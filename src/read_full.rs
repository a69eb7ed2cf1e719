//! Reading a file a piece at a time, for the commands that walk feed files far larger than
//! memory (`import emoncms`, `export emoncms`).

use std::io::{ErrorKind, Read, Result};

/// Reads until `buf` is full or the reader ends; returns how many bytes it read (fewer than
/// `buf.len()` only at the end).
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most 3 bytes per call.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fills_the_buffer_across_short_reads_and_stops_at_the_end() {
        let data: Vec<u8> = (0..20).collect();
        let mut r = Trickle(&data);
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut r, &mut buf).expect("read"), 8);
        assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(read_full(&mut r, &mut buf).expect("read"), 8);
        assert_eq!(read_full(&mut r, &mut buf).expect("read"), 4);
        assert_eq!(&buf[..4], [16, 17, 18, 19]);
        assert_eq!(read_full(&mut r, &mut buf).expect("read"), 0);
    }
}
