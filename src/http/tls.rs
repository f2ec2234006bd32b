//! Built-in TLS (contract §16): the certificate chain and key of `--tls-cert` and
//! `--tls-key`, read and checked once at start, and the handshake of each accepted
//! connection (rustls on the ring provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN).
//!
//! Owns the one-line errors for a file that cannot be used, and the handshake timeout:
//! a connection that does not finish its handshake within the head timeout is dropped,
//! as one that does not send its request head is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its key, ready to serve.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
    /// The certificate file, for the log.
    cert: PathBuf,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cert", &self.cert).finish()
    }
}

/// Why the certificate or key cannot be used; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert {}: cannot read it: {source}", path.display())]
    ReadCert {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--tls-key {}: cannot read it: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--tls-cert {}: no PEM certificate in it (BEGIN CERTIFICATE)", path.display())]
    NoCert { path: PathBuf },
    #[error("--tls-cert {}: not a valid PEM certificate: {detail}", path.display())]
    BadCert { path: PathBuf, detail: String },
    #[error(
        "--tls-key {}: no PEM private key in it (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("--tls-key {}: not a valid PEM private key: {detail}", path.display())]
    BadKey { path: PathBuf, detail: String },
    #[error(
        "--tls-key {} does not belong to the certificate in --tls-cert {}",
        key.display(),
        cert.display()
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("--tls-cert {} with --tls-key {}: {detail}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

impl Tls {
    /// Reads the chain (leaf first) and the key, and checks that the key is the leaf's.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let chain = read_chain(cert)?;
        let private = read_key(key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let unusable = |e: rustls::Error| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            },
            other => TlsError::Unusable {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                detail: other.to_string(),
            },
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(unusable)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(unusable)?;
        // HTTP/1.1 only: the server has no HTTP/2 (a client offering h2 falls back).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            cert: cert.to_path_buf(),
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// The certificate file, for the start-up line.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

/// Reads the whole file first, so that a missing or unreadable file is told apart
/// from one without PEM in it.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::ReadCert {
        path: path.to_path_buf(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| TlsError::BadCert {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| TlsError::ReadKey {
            path: path.to_path_buf(),
            source,
        })?);
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => TlsError::BadKey {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    })
}
