//! The server: [`Acceptor`] runs the opening handshake on any stream and lets the application
//! decide (path, Origin, subprotocol, extra headers, or a refusal with a status).

use bytes::BytesMut;
use http::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wsx_proto::{
    parse_request, write_response, write_response_with_body, Accept, HandshakeError, Role, Upgrade,
};

use crate::config::Config;
use crate::error::{Error, Timeout};
use crate::websocket::WebSocket;

/// Accepts WebSocket connections; configured once, used for many.
///
/// ```no_run
/// use wsx::{Accept, Acceptor, HandshakeError};
/// # async fn run(stream: tokio::net::TcpStream) -> Result<(), wsx::Error> {
/// let acceptor = Acceptor::new();
/// let ws = acceptor
///     .accept_with(stream, |request, upgrade| {
///         if request.uri().path() != "/chat" {
///             return Err(HandshakeError::Rejected {
///                 status: http::StatusCode::NOT_FOUND,
///                 reason: "no such endpoint".into(),
///             });
///         }
///         if upgrade.origin().is_some_and(|o| o != "https://example.com") {
///             return Err(upgrade.reject_origin()); // 403
///         }
///         Ok(Accept::new().subprotocol(upgrade.choose_subprotocol(["chat", "superchat"])))
///     })
///     .await?;
/// # let _ = ws; Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Acceptor {
    config: Config,
}

impl Acceptor {
    /// An acceptor with the default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits, timeouts and permessage-deflate (the handshake must complete within
    /// [`Config::handshake_timeout`]; deflate is accepted when [`Config::deflate`] is set and
    /// the decision did not set it).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Accepts any valid upgrade, with no subprotocol.
    pub async fn accept<S>(&self, stream: S) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.accept_with(stream, |_, _| Ok(Accept::new())).await
    }

    /// Reads the request and lets `decide` answer it. An invalid request, or one that `decide`
    /// refuses, is answered with its status and a one-line reason, and returned as
    /// [`Error::Handshake`]; a plain HTTP request is [`HandshakeError::NotUpgrade`] (426).
    pub async fn accept_with<S, F>(&self, mut stream: S, decide: F) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: FnOnce(&Request<()>, &Upgrade) -> Result<Accept, HandshakeError>,
    {
        let limits = self.config.limits;
        let exchange = async {
            let mut buf = BytesMut::with_capacity(1024);
            let parsed = loop {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the client closed the connection during the opening handshake",
                    )));
                }
                match parse_request(&buf, &limits) {
                    Ok(Some(parsed)) => break parsed,
                    Ok(None) => continue,
                    Err(e) => return refuse(&mut stream, e).await,
                }
            };
            let leftover = buf.split_off(parsed.len);
            let request = parsed.value;
            let upgrade = match Upgrade::from_request(&request) {
                Ok(upgrade) => upgrade,
                Err(e) => return refuse(&mut stream, e).await,
            };
            let accept = match decide(&request, &upgrade) {
                Ok(accept) if accept.deflate_config().is_none() => {
                    accept.deflate(self.config.deflate)
                }
                Ok(accept) => accept,
                Err(e) => return refuse(&mut stream, e).await,
            };
            let (response, negotiated) = match upgrade.accept(accept) {
                Ok(done) => done,
                Err(e) => {
                    let internal = HandshakeError::Rejected {
                        status: http::StatusCode::INTERNAL_SERVER_ERROR,
                        reason: "the server could not answer the upgrade".into(),
                    };
                    let _ = refuse::<_, ()>(&mut stream, internal).await;
                    return Err(Error::Usage(e));
                }
            };
            let mut out = BytesMut::with_capacity(256);
            write_response(&response, &mut out);
            stream.write_all(&out).await?;
            stream.flush().await?;
            Ok((negotiated, leftover))
        };
        let (negotiated, leftover) = tokio::time::timeout(self.config.handshake_timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(Timeout::Handshake))??;
        Ok(WebSocket::from_partially_read(
            stream,
            Role::Server,
            negotiated,
            self.config.clone(),
            &leftover,
        ))
    }
}

/// Answers a refused request with its status and reason, then reports the refusal.
async fn refuse<S, T>(stream: &mut S, error: HandshakeError) -> Result<T, Error>
where
    S: AsyncWrite + Unpin,
{
    if let Some(response) = error.to_response() {
        let mut out = BytesMut::new();
        write_response_with_body(&response, &mut out);
        // The refusal is what matters; a client that is already gone changes nothing.
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    }
    Err(Error::Handshake(error))
}

/// Accepts a WebSocket on `stream` with the default [`Acceptor`].
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let (tcp, _) = listener.accept().await?;
/// let mut ws = wsx::accept(tcp).await?;
/// while let Some(Ok(message)) = ws.recv().await {
///     if message.is_control() { continue }
///     ws.send(message).await?;
/// }
/// # Ok(()) }
/// ```
pub async fn accept<S>(stream: S) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Acceptor::new().accept(stream).await
}
