//! The body of a batch of forwarded requests (`POST /ynni/batch`) and of its reply.
//!
//! One node sends another many small requests at once (see [`super::batcher`]): the requests
//! ride in one HTTP request and their replies in its reply, so a busy entry node pays one
//! round trip, one parse and one wake-up per batch rather than per request.
//!
//! Both bodies start with one byte, the format's version ([`VERSION`]); a node that does not
//! know it refuses the batch (400), and the sender answers each request 503, to be retried. All
//! integers are big-endian.
//!
//! Request body, after the version: zero or more requests, back to back, each
//!
//! | field   | encoding                                                            |
//! |---------|---------------------------------------------------------------------|
//! | method  | u8 length, ASCII                                                    |
//! | target  | u32 length, the path and query as the client sent them              |
//! | client  | u8 length, the client's IP address as text                          |
//! | headers | u16 count, then each: u16 name length, name, u32 value length, value|
//! | body    | u32 length, bytes                                                   |
//!
//! Reply body, after the version: one reply per request, in the requests' order, each
//!
//! | field   | encoding               |
//! |---------|------------------------|
//! | status  | u16                    |
//! | headers | as in a request        |
//! | body    | u32 length, bytes      |
//!
//! Headers that describe a connection (`Connection`, `Content-Length`, …) are left out by the
//! sender; the cluster's secret and the client's address are not carried per request (the
//! batch itself is authenticated, and `client` says the address).

use std::net::IpAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use bytes::{Buf, BufMut};

pub const VERSION: u8 = 1;

/// Headers one request or reply may carry in a batch (hyper's own cap on a request is 100).
const MAX_HEADERS: usize = 256;

/// One request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SubRequest {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub client: IpAddr,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The reply to one request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SubReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("batch format version {0} is not known here")]
    Version(u8),
    #[error("batch body ends inside a field")]
    Truncated,
    #[error("batch body has a malformed {0}")]
    Malformed(&'static str),
    #[error("batch has more than {MAX_HEADERS} headers on one request or reply")]
    TooManyHeaders,
}

impl SubRequest {
    /// Bytes this request takes in a batch (for the sender's size cap).
    pub fn encoded_len(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| 6 + n.as_str().len() + v.len())
            .sum();
        1 + self.method.as_str().len()
            + 4
            + self.target.len()
            + 1
            + 46
            + 2
            + headers
            + 4
            + self.body.len()
    }
}

pub fn encode_requests(requests: &[SubRequest]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + requests.iter().map(|r| r.encoded_len()).sum::<usize>());
    out.put_u8(VERSION);
    for r in requests {
        put_short(&mut out, r.method.as_str().as_bytes());
        put_long(&mut out, r.target.as_bytes());
        put_short(&mut out, r.client.to_string().as_bytes());
        put_headers(&mut out, &r.headers);
        put_long(&mut out, &r.body);
    }
    out
}

pub fn decode_requests(mut buf: Bytes) -> Result<Vec<SubRequest>, WireError> {
    check_version(&mut buf)?;
    let mut out = Vec::new();
    while buf.has_remaining() {
        let method = Method::from_bytes(&take_short(&mut buf)?)
            .map_err(|_| WireError::Malformed("method"))?;
        let target = String::from_utf8(take_long(&mut buf)?.to_vec())
            .map_err(|_| WireError::Malformed("target"))?;
        let client = std::str::from_utf8(&take_short(&mut buf)?)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(WireError::Malformed("client address"))?;
        let headers = take_headers(&mut buf)?;
        let body = take_long(&mut buf)?;
        out.push(SubRequest {
            method,
            target,
            client,
            headers,
            body,
        });
    }
    Ok(out)
}

pub fn encode_replies(replies: &[SubReply]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + replies.iter().map(|r| 64 + r.body.len()).sum::<usize>());
    out.put_u8(VERSION);
    for r in replies {
        out.put_u16(r.status.as_u16());
        put_headers(&mut out, &r.headers);
        put_long(&mut out, &r.body);
    }
    out
}

pub fn decode_replies(mut buf: Bytes) -> Result<Vec<SubReply>, WireError> {
    check_version(&mut buf)?;
    let mut out = Vec::new();
    while buf.has_remaining() {
        if buf.remaining() < 2 {
            return Err(WireError::Truncated);
        }
        let status =
            StatusCode::from_u16(buf.get_u16()).map_err(|_| WireError::Malformed("status"))?;
        let headers = take_headers(&mut buf)?;
        let body = take_long(&mut buf)?;
        out.push(SubReply {
            status,
            headers,
            body,
        });
    }
    Ok(out)
}

fn check_version(buf: &mut Bytes) -> Result<(), WireError> {
    if !buf.has_remaining() {
        return Err(WireError::Truncated);
    }
    match buf.get_u8() {
        VERSION => Ok(()),
        v => Err(WireError::Version(v)),
    }
}

fn put_short(out: &mut Vec<u8>, b: &[u8]) {
    // Methods and addresses are short; anything longer is cut, and then refused as malformed.
    let n = b.len().min(u8::MAX as usize);
    out.put_u8(n as u8);
    out.put_slice(&b[..n]);
}

fn put_long(out: &mut Vec<u8>, b: &[u8]) {
    // Bodies and targets are far below 4 GiB: the HTTP body limit applies before forwarding.
    let n = b.len().min(u32::MAX as usize);
    out.put_u32(n as u32);
    out.put_slice(&b[..n]);
}

fn put_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    let n = headers.len().min(MAX_HEADERS);
    out.put_u16(n as u16);
    for (name, value) in headers.iter().take(n) {
        let name = name.as_str().as_bytes();
        out.put_u16(name.len().min(u16::MAX as usize) as u16);
        out.put_slice(&name[..name.len().min(u16::MAX as usize)]);
        put_long(out, value.as_bytes());
    }
}

fn take(buf: &mut Bytes, n: usize) -> Result<Bytes, WireError> {
    if buf.remaining() < n {
        return Err(WireError::Truncated);
    }
    Ok(buf.split_to(n))
}

fn take_short(buf: &mut Bytes) -> Result<Bytes, WireError> {
    if !buf.has_remaining() {
        return Err(WireError::Truncated);
    }
    let n = buf.get_u8() as usize;
    take(buf, n)
}

fn take_long(buf: &mut Bytes) -> Result<Bytes, WireError> {
    if buf.remaining() < 4 {
        return Err(WireError::Truncated);
    }
    let n = buf.get_u32() as usize;
    take(buf, n)
}

fn take_headers(buf: &mut Bytes) -> Result<HeaderMap, WireError> {
    if buf.remaining() < 2 {
        return Err(WireError::Truncated);
    }
    let count = buf.get_u16() as usize;
    if count > MAX_HEADERS {
        return Err(WireError::TooManyHeaders);
    }
    let mut headers = HeaderMap::with_capacity(count);
    for _ in 0..count {
        if buf.remaining() < 2 {
            return Err(WireError::Truncated);
        }
        let n = buf.get_u16() as usize;
        let name = HeaderName::from_bytes(&take(buf, n)?)
            .map_err(|_| WireError::Malformed("header name"))?;
        let value = HeaderValue::from_maybe_shared(take_long(buf)?)
            .map_err(|_| WireError::Malformed("header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(target: &str, body: &[u8]) -> SubRequest {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("node1:8080"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        SubRequest {
            method: Method::POST,
            target: target.into(),
            client: "2001:db8::7".parse().unwrap(),
            headers,
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn requests_and_replies_come_back_as_sent() {
        let reqs = vec![
            request("/input/post?node=1&apikey=k", b"data=%7B%7D"),
            request("/input/bulk", b""),
        ];
        let encoded = encode_requests(&reqs);
        assert!(encoded.len() <= 1 + reqs.iter().map(|r| r.encoded_len()).sum::<usize>());
        assert_eq!(decode_requests(encoded.into()).unwrap(), reqs);
        let replies = vec![SubReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            headers: reqs[0].headers.clone(),
            body: Bytes::from_static(b"ok"),
        }];
        assert_eq!(
            decode_replies(encode_replies(&replies).into()).unwrap(),
            replies
        );
        assert_eq!(
            decode_requests(Bytes::from_static(&[VERSION])).unwrap(),
            vec![]
        );
    }

    #[test]
    fn a_body_of_another_version_or_cut_short_is_refused() {
        assert_eq!(
            decode_requests(Bytes::from_static(&[9])),
            Err(WireError::Version(9))
        );
        assert_eq!(decode_replies(Bytes::new()), Err(WireError::Truncated));
        let full = encode_requests(&[request("/input/post", b"x=1")]);
        // The version byte alone is an empty batch; any other cut is inside a field.
        for cut in 2..full.len() {
            assert!(
                decode_requests(Bytes::copy_from_slice(&full[..cut])).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_requests(Bytes::from(bytes.clone()));
            let _ = decode_replies(Bytes::from(bytes));
        }
    }
}
