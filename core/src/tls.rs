//! A TLS listener's certificate and key, read from PEM files (the MQTTS and HTTPS
//! listeners share this), and read again when the operator renews them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("TLS settings: {0}")]
    Config(String),
}

/// A server configuration presenting the chain in `cert` with the private key in `key`,
/// offering `alpn` protocols (none: the client's choice is not negotiated).
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let err = |what: &'static str, path: &Path, e: &dyn std::fmt::Display| TlsError::File {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut certs_file = std::io::BufReader::new(
        std::fs::File::open(cert).map_err(|e| err("reading certificate", cert, &e))?,
    );
    let certs = rustls_pemfile::certs(&mut certs_file)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("reading certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(err("no certificate in", cert, &"(empty)"));
    }
    let mut key_file =
        std::io::BufReader::new(std::fs::File::open(key).map_err(|e| err("reading key", key, &e))?);
    let key_der = rustls_pemfile::private_key(&mut key_file)
        .map_err(|e| err("reading key", key, &e))?
        .ok_or_else(|| err("no private key in", key, &"(empty)"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err("using certificate", cert, &e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A listener's certificate and key, read at start and again on [`Certificates::reload`]
/// (the server calls it on SIGHUP). Each new connection's handshake uses the pair loaded last;
/// connections already open keep theirs, so renewing a certificate drops no client. A pair
/// that fails to load leaves the previous one serving.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    alpn: &'static [&'static [u8]],
    current: RwLock<tokio_rustls::TlsAcceptor>,
}

impl Certificates {
    /// Reads the pair in `cert` and `key` (PEM), offering `alpn`.
    pub fn load(
        cert: PathBuf,
        key: PathBuf,
        alpn: &'static [&'static [u8]],
    ) -> Result<Self, TlsError> {
        let acceptor = Self::read(&cert, &key, alpn)?;
        Ok(Self {
            cert,
            key,
            alpn,
            current: RwLock::new(acceptor),
        })
    }

    fn read(
        cert: &Path,
        key: &Path,
        alpn: &[&[u8]],
    ) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let config = server_config(cert, key, alpn)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again; on success new connections use the new pair.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = Self::read(&self.cert, &self.key, self.alpn)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
        Ok(())
    }

    /// The pair new connections use now.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let e = server_config(&cert, &key, &[]).unwrap_err().to_string();
        assert!(
            e.contains("reading certificate") && e.contains("c.pem"),
            "{e}"
        );
        std::fs::write(&cert, "").unwrap();
        let e = server_config(&cert, &key, &[]).unwrap_err().to_string();
        assert!(e.contains("no certificate in"), "{e}");
    }
}
