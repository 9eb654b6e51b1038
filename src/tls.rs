//! The trust store of outbound TLS: one rule for every certificate the daemon checks.
//!
//! The server certificate is checked against the roots `rustls-native-certs` loads: the files
//! named by `SSL_CERT_FILE` (a PEM bundle) and/or `SSL_CERT_DIR` (colon-separated directories)
//! when either is set — *instead of* the platform's store —, else the platform's store
//! (openssl-probe's paths on Linux: `/etc/ssl/certs/ca-certificates.crt`, …). That is how the
//! `redis` crate builds `rediss://` connections (`create_rustls_config`, with our feature set:
//! no `webpki-roots`), and [`client_config`] builds the LLM client's the same way, strictness
//! included: a root file or directory that cannot be read, or a certificate rustls rejects, is
//! an error rather than a root silently left out. No roots are compiled in (reqwest's
//! `rustls-tls-manual-roots`), so a private CA in `SSL_CERT_FILE` is the only one trusted.
//!
//! Loading reads and parses the bundle (a few hundred certificates, a few milliseconds): it is
//! done when the LLM client is built and once more by config validation, never per request.

use std::sync::Arc;

use rustls::RootCertStore;

/// Why the trust store could not be loaded. The messages name `SSL_CERT_FILE`/`SSL_CERT_DIR`
/// paths (environment, not configuration) and never a config value.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    #[error("trust store: {0}")]
    Load(String),
    #[error("trust store: a root certificate is unusable: {0}")]
    Cert(#[from] rustls::Error),
}

/// The roots, by the rule in the module docs.
pub fn root_store() -> Result<RootCertStore, TrustStoreError> {
    let loaded = rustls_native_certs::load_native_certs();
    if let Some(e) = loaded.errors.first() {
        let more = match loaded.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(TrustStoreError::Load(format!("{e}{more}")));
    }
    let mut roots = RootCertStore::empty();
    for cert in loaded.certs {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A rustls client configuration over [`root_store`] (ring, TLS 1.2 and 1.3, no client
/// certificate).
pub fn client_config() -> Result<rustls::ClientConfig, TrustStoreError> {
    let roots = root_store()?;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
