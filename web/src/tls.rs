//! HTTPS: the listener's certificate pair ([`ynni_core::tls::Certificates`], reloaded on
//! SIGHUP), offering HTTP/1.1 only (the listener serves no HTTP/2).

pub use ynni_core::tls::Certificates;

/// The protocols the HTTPS listener offers.
pub const ALPN: &[&[u8]] = &[b"http/1.1"];
