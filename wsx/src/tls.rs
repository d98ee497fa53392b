//! TLS with rustls: configuration helpers for both sides (the client's stream is
//! [`ClientStream`](crate::ClientStream)).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use tokio_rustls;

use crate::error::Error;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: String) -> Error {
    Error::Tls(io::Error::new(io::ErrorKind::InvalidInput, what))
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(format!("cannot read certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

/// A client configuration: Mozilla's roots (feature `webpki-roots`), the system's (feature
/// `native-roots`), and the CA certificates of `extra_ca` (a PEM file), if given.
///
/// ```
/// let config = wsx::tls::client_config(None).unwrap();
/// # let _ = config;
/// ```
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(path) = extra_ca {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| tls_error(format!("bad CA in {}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(tls_error(
            "no trusted roots: enable the webpki-roots or native-roots feature, or give a CA file"
                .into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_error(format!("cannot read a private key from {}: {e}", key.display())))?;
    server_config_from(chain, key)
}

/// A server configuration from a certificate chain and a private key already in memory.
pub fn server_config_from(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(format!("certificate and key do not fit: {e}")))?;
    Ok(Arc::new(config))
}
