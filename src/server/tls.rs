//! TLS for the public listener: rustls with TLS 1.2 and 1.3 only, forward-secret AEAD suites only
//! (the ring provider's defaults), ALPN offering h2 and http/1.1, and session resumption by ticket.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used.
#[derive(Debug)]
pub enum TlsError {
    Certificate {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    NoCertificate {
        path: PathBuf,
    },
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    Rejected(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Certificate { path, source } => {
                write!(
                    f,
                    "cannot read certificate chain {}: {source}",
                    path.display()
                )
            }
            TlsError::NoCertificate { path } => {
                write!(f, "{} holds no PEM certificate", path.display())
            }
            TlsError::Key { path, source } => {
                write!(f, "cannot read private key {}: {source}", path.display())
            }
            TlsError::Rejected(error) => write!(f, "certificate and key rejected: {error}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Loads a PEM certificate chain (leaf first) and private key into an acceptor.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            path: cert_path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Key {
        path: key_path.to_owned(),
        source,
    })?;
    acceptor_from_der(chain, key)
}

/// Builds an acceptor from DER material (used by `acceptor` and by tests with generated certificates).
pub fn acceptor_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order (AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305, all ECDHE) decides, so a
    // client that lists a weaker suite first still gets the strongest both support.
    config.ignore_client_order = true;
    // A returning client resumes with a ticket instead of a full handshake (a fresh key exchange
    // still runs: rustls resumes TLS 1.3 only with psk_dhe_ke). The ticket keys live in memory,
    // rotate every 6 hours and are new with every certificate reload.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Rejected)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
