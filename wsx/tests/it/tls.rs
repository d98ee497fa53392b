//! `wss://` with rustls: certificates made at test time, the CA given to the client as a file.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use wsx::{CloseCode, Config, Limits, Message};

use crate::util::*;

/// A server certificate for 127.0.0.1, and the path of its PEM (the client's CA file).
pub(crate) fn test_cert() -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let pem_path = std::env::temp_dir().join(format!(
        "wsx-test-ca-{}-{}.pem",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&pem_path, certified.cert.pem()).unwrap();
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    (wsx::tls::server_config_from(chain, key).unwrap(), pem_path)
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

/// A wss echo server; returns its URL and the CA file that trusts it.
pub(crate) async fn wss_echo_server(config: Config) -> (String, std::path::PathBuf) {
    let (tls, ca) = test_cert();
    let (listener, addr) = listener().await;
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, config) = (acceptor.clone(), config.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                if let Ok(ws) = wsx::Acceptor::new().config(config).accept(tls).await {
                    echo_ws(ws).await;
                }
            });
        }
    });
    (format!("wss://{addr}"), ca)
}

#[tokio::test]
async fn wss_echo_with_a_test_ca() {
    let big = Config::default().limits(Limits::default().max_message_size(16 << 20));
    let (url, ca) = wss_echo_server(big.clone()).await;
    let tls = wsx::tls::client_config(Some(&ca)).unwrap();
    let (mut ws, _) =
        connector().tls(tls).config(big).connect(&format!("{url}/echo")).await.unwrap();
    for size in [0usize, 1000, 70_000, 16 << 20] {
        let data = vec![0xabu8; size];
        ws.send(Message::binary(data.clone())).await.unwrap();
        assert_eq!(within("wss echo", ws.recv()).await.unwrap().unwrap(), Message::binary(data));
    }
    ws.send(Message::text("over TLS")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("over TLS"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let _ = std::fs::remove_file(ca);
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    let (url, ca) = wss_echo_server(Config::default()).await;
    let err = connector().connect(&url).await.unwrap_err(); // webpki roots only
    assert!(matches!(err, wsx::Error::Tls(_)), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    let _ = std::fs::remove_file(ca);
}

/// A certificate replaced on disk and reloaded is what the next handshake presents; open
/// connections keep working; a broken file keeps the old certificate.
#[tokio::test]
async fn reloaded_certificates_serve_new_handshakes() {
    let dir =
        std::env::temp_dir().join(format!("wsx-reload-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write = |certified: &rcgen::CertifiedKey| {
        std::fs::write(&cert_path, certified.cert.pem()).unwrap();
        std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    };
    let first = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    write(&first);
    let reloadable = wsx::tls::ReloadableCert::load(&cert_path, &key_path).unwrap();
    let acceptor = TlsAcceptor::from(reloadable.server_config().unwrap());
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                if let Ok(ws) = wsx::accept(tls).await {
                    echo_ws(ws).await;
                }
            });
        }
    });
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let ca = |certified: &rcgen::CertifiedKey| {
        let path = dir.join(format!("ca-{}.pem", rand_suffix()));
        std::fs::write(&path, certified.cert.pem()).unwrap();
        wsx::tls::client_config(Some(&path)).unwrap()
    };
    let (mut open, _) = connector().tls(ca(&first)).connect(&url).await.unwrap();

    let second = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    write(&second);
    reloadable.reload().unwrap();
    assert!(connector().tls(ca(&first)).connect(&url).await.is_err(), "the old one is gone");
    let (mut fresh, _) = connector().tls(ca(&second)).connect(&url).await.unwrap();
    fresh.send(Message::text("new")).await.unwrap();
    assert_eq!(fresh.recv().await.unwrap().unwrap(), Message::text("new"));
    open.send(Message::text("old")).await.unwrap();
    assert_eq!(
        open.recv().await.unwrap().unwrap(),
        Message::text("old"),
        "open connections live on"
    );

    // A half-written key: the reload fails and the certificate in use stays.
    std::fs::write(&key_path, "-----BEGIN PRIVATE KEY-----\nAAAA").unwrap();
    assert!(reloadable.reload().is_err());
    assert!(connector().tls(ca(&second)).connect(&url).await.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
