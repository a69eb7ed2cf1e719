//! HTTPS: the certificate and key of the TLS listener, read at start and again on
//! [`Certificates::reload`] (the server calls it on SIGHUP). Each new connection's handshake
//! uses the pair loaded last; connections already open keep theirs, so renewing a
//! certificate drops no client. A pair that fails to load leaves the previous one serving.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;
use ynni_core::tls::TlsError;

pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl Certificates {
    /// Reads the pair in `cert` and `key` (PEM).
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let acceptor = Self::read(&cert, &key)?;
        Ok(Self {
            cert,
            key,
            current: RwLock::new(acceptor),
        })
    }

    fn read(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, TlsError> {
        // HTTP/1.1 only: the listener serves no HTTP/2.
        let config = ynni_core::tls::server_config(cert, key, &[b"http/1.1"])?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again; on success new connections use the new pair.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = Self::read(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
        Ok(())
    }

    /// The pair new connections use now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
