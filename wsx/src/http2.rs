//! WebSockets over HTTP/2 (RFC 8441), the client's side (feature `http2`): one HTTP/2
//! connection ([`Http2Connection`], made by [`Connector::connect_http2`]) carries many
//! WebSockets, each on a stream of its own, opened by an extended CONNECT. The server's side is
//! [`crate::hyper::upgrade`].

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use wsx_proto::{HandshakeError, Role, UsageError};

use crate::connect::Connector;
use crate::error::{Error, Timeout};
use crate::hyper::HyperWebSocket;
use crate::stream::ClientStream;
use crate::websocket::WebSocket;

/// How often to look whether the server's SETTINGS allowed WebSockets over HTTP/2 (hyper says
/// what the settings are, not when they came).
const SETTINGS_POLL: std::time::Duration = std::time::Duration::from_millis(2);
/// How long to wait for that: a server's SETTINGS follow its preface at once.
const SETTINGS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// An HTTP/2 connection to one server, for WebSockets over HTTP/2 (RFC 8441). Cheap to clone;
/// the clones share the connection, which closes once every clone and every WebSocket on it
/// is gone.
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// let connector = wsx::Connector::new().subprotocols(["chat"]);
/// let h2 = connector.connect_http2("wss://example.com").await?;
/// let (mut lobby, _) = h2.open("wss://example.com/chat/lobby").await?;
/// let (mut news, _) = h2.open("wss://example.com/chat/news").await?; // the same TCP+TLS
/// lobby.send(wsx::Message::text("hello")).await?;
/// # drop(news); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Http2Connection {
    send: SendRequest<Empty<Bytes>>,
    connector: Connector,
    /// The host and port (and scheme) every WebSocket on it must name.
    origin: (String, u16, bool),
}

impl std::fmt::Debug for Http2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Connection").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl Connector {
    /// Opens an HTTP/2 connection to the server of `url` for WebSockets over HTTP/2 (RFC 8441):
    /// `wss://` is TLS offering `h2` by ALPN, `ws://` is cleartext HTTP/2 with prior knowledge
    /// (for tests and internal links). Fails with a clear error when the server does not speak
    /// HTTP/2 or does not allow WebSockets over it (`SETTINGS_ENABLE_CONNECT_PROTOCOL`).
    pub async fn connect_http2(&self, url: &str) -> Result<Http2Connection, Error> {
        let handshake = self.handshake(url)?;
        let origin = (handshake.host().to_string(), handshake.port(), handshake.is_secure());
        let timeout = self.config_ref().connect_timeout;
        let send = self.with_stream(&handshake, true, |stream| async move {
            if stream.is_tls() && stream.alpn() != Some(b"h2") {
                return Err(refused("the server did not agree to HTTP/2 (ALPN h2)"));
            }
            h2_handshake(stream, timeout).await
        });
        let send = send.await?;
        Ok(Http2Connection { send, connector: self.clone(), origin })
    }
}

/// The HTTP/2 handshake on `stream`, then the wait for the server's SETTINGS.
async fn h2_handshake(
    stream: ClientStream,
    timeout: std::time::Duration,
) -> Result<SendRequest<Empty<Bytes>>, Error> {
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io_error)?;
    // The server's first SETTINGS say whether it takes extended CONNECT: the connection is
    // driven here until they have come (they follow the server's preface), then on a task.
    let mut connection = Box::pin(connection);
    let waited = tokio::time::timeout(timeout.min(SETTINGS_WAIT), async {
        while !connection.is_extended_connect_protocol_enabled() {
            if let Ok(ended) = tokio::time::timeout(SETTINGS_POLL, connection.as_mut()).await {
                let why = ended.err().map_or_else(|| "it closed".to_string(), |e| e.to_string());
                return Some(refused(&format!(
                    "the server did not speak HTTP/2 ({why}); connect over HTTP/1.1, or \
                     turn HTTP/2 on there (wsx serve --http2)"
                )));
            }
        }
        None
    });
    match waited.await {
        Ok(None) => {}
        Ok(Some(e)) => return Err(e),
        // Whatever the server sent, it was not a go-ahead for WebSockets.
        Err(_) if send.is_closed() => return Err(Error::Timeout(Timeout::Connect)),
        // (A server that sent no SETTINGS at all is not an HTTP/2 server either.)
        Err(_) => {
            return Err(refused(
                "the server does not allow WebSockets over HTTP/2 (no \
                 SETTINGS_ENABLE_CONNECT_PROTOCOL); connect over HTTP/1.1",
            ))
        }
    }
    tokio::spawn(connection);
    Ok(send)
}

impl Http2Connection {
    /// Opens a WebSocket to `url` on this connection (same scheme, host and port): an extended
    /// CONNECT with the connector's subprotocols, extensions, Origin and headers. Returns the
    /// WebSocket and the server's `200` response.
    pub async fn open(&self, url: &str) -> Result<(HyperWebSocket, Response<()>), Error> {
        let handshake = self.connector.handshake(url)?;
        let origin = (handshake.host().to_string(), handshake.port(), handshake.is_secure());
        if origin != self.origin {
            let why = format!("{url} is not on this HTTP/2 connection's server");
            return Err(Error::Usage(UsageError::InvalidHeader(why)));
        }
        let (parts, ()) = handshake.extended_connect_request().into_parts();
        let mut request = http::Request::from_parts(parts, Empty::new());
        request.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
        let mut send = self.send.clone();
        let timeout = self.connector.config_ref().handshake_timeout;
        let exchange = async {
            send.ready().await.map_err(io_error)?;
            send.send_request(request).await.map_err(io_error)
        };
        let mut response = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(Timeout::Handshake))??;
        let mut head = Response::new(());
        *head.status_mut() = response.status();
        *head.version_mut() = response.version();
        *head.headers_mut() = response.headers().clone();
        if !response.status().is_success() {
            // The start of the refusal's body, for the error (as over HTTP/1.1).
            let body = Limited::new(response.into_body(), 1024);
            let body = tokio::time::timeout(timeout, body.collect()).await;
            let body = body.ok().and_then(Result::ok).map(|b| b.to_bytes()).unwrap_or_default();
            return Err(Error::Handshake(handshake.verify(&head, body).unwrap_err()));
        }
        let negotiated = handshake.verify(&head, Bytes::new())?;
        let upgraded = hyper::upgrade::on(&mut response).await.map_err(io_error)?;
        let config = self.connector.config_ref().clone();
        let ws = WebSocket::from_raw(TokioIo::new(upgraded), Role::Client, negotiated, config);
        Ok((ws, head))
    }

    /// Whether the connection is gone (the server went away, or an error ended it).
    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }
}

fn refused(why: &str) -> Error {
    Error::Handshake(HandshakeError::InvalidResponse(why.to_string()))
}

fn io_error(e: hyper::Error) -> Error {
    Error::Io(std::io::Error::other(e))
}
