//! What every benchmark server shares: bind 127.0.0.1:PORT (the first argument), say `ready`,
//! and run the library's [`Echo`] on each accepted TCP connection, with TCP_NODELAY, in its own
//! task.
//!
//! The accept loop runs where the libraries' examples run it, in `#[tokio::main]`'s thread;
//! with `BENCH_ACCEPT_ON_WORKER=1` it runs on a runtime worker instead, as `wsx serve` does
//! (for comparing handshake rates with that difference taken out).
//!
//! With `BENCH_TLS_CERT` and `BENCH_TLS_KEY` (PEM files: certificate chain, private key) the
//! server speaks TLS, as `wsx serve --tls-cert --tls-key` does: rustls with the ring provider
//! and its safe default protocol versions (tokio-rustls), the TLS handshake in the
//! connection's task, then the same echo over the TLS stream.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A byte stream an echo runs on: a `TcpStream`, or a TLS stream over one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// A library's echo server for one connection: the WebSocket handshake, then echo text and
/// binary messages until the connection ends.
pub trait Echo: Copy + Send + 'static {
    fn echo<S: Stream>(self, stream: S) -> impl Future<Output = ()> + Send;
}

/// Serves forever.
pub async fn serve(echo: impl Echo) {
    let port = std::env::args().nth(1).expect("usage: SERVER PORT");
    let tls = tls_acceptor();
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    println!("ready");
    let accept = async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            match &tls {
                None => {
                    tokio::spawn(echo.echo(tcp));
                }
                Some(tls) => {
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        if let Ok(stream) = tls.accept(tcp).await {
                            echo.echo(stream).await;
                        }
                    });
                }
            }
        }
    };
    if std::env::var_os("BENCH_ACCEPT_ON_WORKER").is_some_and(|v| v == "1") {
        let _ = tokio::spawn(accept).await;
    } else {
        accept.await;
    }
}

/// The TLS acceptor of `BENCH_TLS_CERT` and `BENCH_TLS_KEY`, if set.
fn tls_acceptor() -> Option<TlsAcceptor> {
    let cert = std::env::var_os("BENCH_TLS_CERT").filter(|v| !v.is_empty())?;
    let key = std::env::var_os("BENCH_TLS_KEY").expect("BENCH_TLS_CERT needs BENCH_TLS_KEY");
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .expect("cannot read BENCH_TLS_CERT");
    let key = PrivateKeyDer::from_pem_file(&key).expect("cannot read BENCH_TLS_KEY");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("BENCH_TLS_CERT and BENCH_TLS_KEY do not fit");
    Some(TlsAcceptor::from(Arc::new(config)))
}
