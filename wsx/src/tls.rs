//! TLS with rustls: configuration helpers for both sides (the client's stream is
//! [`ClientStream`](crate::ClientStream)).

use std::io;
use std::path::Path;
use std::sync::Arc;

use std::path::PathBuf;
use std::sync::RwLock;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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

/// A server certificate that can be replaced while the server runs (certificates now renew
/// every few weeks): [`reload`](Self::reload) reads the files again; new handshakes use the new
/// certificate, open connections keep theirs, and a reload that fails (a half-written file, a
/// key that does not fit) keeps the old one.
///
/// ```no_run
/// # fn run() -> Result<(), wsx::Error> {
/// use std::path::Path;
/// let cert = wsx::tls::ReloadableCert::load(Path::new("cert.pem"), Path::new("key.pem"))?;
/// let acceptor = wsx::tls::tokio_rustls::TlsAcceptor::from(cert.server_config()?);
/// // later, on SIGHUP:
/// cert.reload()?;
/// # let _ = acceptor; Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReloadableCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Reads a PEM certificate chain and a PEM private key, and checks that they fit.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, Error> {
        let current = RwLock::new(certified_key(cert, key)?);
        Ok(Arc::new(Self { cert: cert.to_path_buf(), key: key.to_path_buf(), current }))
    }

    /// Reads the files again. On an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), Error> {
        let fresh = certified_key(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The DER of the end-entity certificate in use (to log or compare).
    pub fn end_entity(&self) -> CertificateDer<'static> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.cert[0].clone()
    }

    /// A server configuration that always presents the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, Error> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, Error> {
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_error(format!("cannot read a private key from {}: {e}", key.display())))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| tls_error(format!("certificate and key do not fit: {e}")))
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
