//! HTTP CONNECT proxies, written here: one that tunnels (with basic auth) and one that refuses.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx::{Config, Error, Message, Proxy};

use crate::tls::wss_echo_server;
use crate::util::*;

/// A CONNECT proxy; `credentials` are required when given. Returns its address and a
/// receiver of the CONNECT targets it saw.
async fn connect_proxy(
    credentials: Option<&'static str>,
) -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (listener, addr) = listener().await;
    let (seen, targets) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut b = [0];
                    if client.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split_whitespace().nth(1).unwrap().to_string();
                let _ = seen.send(target.clone());
                if let Some(creds) = credentials {
                    let expected = format!("Proxy-Authorization: Basic {}", BASE64.encode(creds));
                    if !head.contains(&expected) {
                        let _ = client
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                            .await;
                        return;
                    }
                }
                assert!(target.starts_with("127.0.0.1:"), "tests only reach loopback");
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, targets)
}

#[tokio::test]
async fn ws_through_a_connect_proxy_with_auth() {
    let url = echo_server(Config::default()).await;
    let (proxy_addr, mut targets) = connect_proxy(Some("user:pa ss")).await;
    let proxy = Proxy::new(&format!("http://user:pa%20ss@{proxy_addr}")).unwrap();
    let (mut ws, _) = wsx::Connector::new().proxy(proxy).connect(&url).await.unwrap();
    ws.send(Message::text("via proxy")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("via proxy"));
    assert_eq!(targets.recv().await.unwrap(), url.trim_start_matches("ws://"));
}

#[tokio::test]
async fn wss_through_a_connect_proxy() {
    let (url, ca) = wss_echo_server(Config::default()).await;
    let (proxy_addr, mut targets) = connect_proxy(None).await;
    let tls = wsx::tls::client_config(Some(&ca)).unwrap();
    let proxy = Proxy::new(&proxy_addr.to_string()).unwrap();
    let (mut ws, _) = wsx::Connector::new().proxy(proxy).tls(tls).connect(&url).await.unwrap();
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::binary(vec![1u8, 2, 3]));
    assert_eq!(targets.recv().await.unwrap(), url.trim_start_matches("wss://"));
    let _ = std::fs::remove_file(ca);
}

#[tokio::test]
async fn refusing_proxy_is_named_with_its_status() {
    let url = echo_server(Config::default()).await;
    let (proxy_addr, _) = connect_proxy(Some("right:password")).await;
    let proxy = Proxy::new(&format!("http://wrong:password@{proxy_addr}")).unwrap();
    let err = wsx::Connector::new().proxy(proxy).connect(&url).await.unwrap_err();
    match &err {
        Error::Proxy { proxy, reason } => {
            assert_eq!(proxy, &proxy_addr.to_string());
            assert!(reason.contains("407"), "{reason}");
        }
        other => panic!("expected a proxy error, got {other}"),
    }
    assert!(err.to_string().contains(&proxy_addr.to_string()), "{err}");
}
