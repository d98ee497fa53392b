//! The server side of the opening handshake: one driver for every way a server meets an
//! upgrade, so that `wsx::accept`, the hyper integration and `wsx serve` run the same code.
//!
//! ```text
//!  stream ─ Acceptor::read_request ─► Incoming ─┬─ decide ─► Answer ─┬─ accept ─► WebSocket
//!                                               │                    └─ (refused) refuse ─► status, closed
//!                                               └─ not a WebSocket upgrade: into_http ─► Rewind (for hyper)
//!  hyper request ─ hyper::upgrade ──────────────── decide ─► Answer ─► 101 for hyper, WebSocket later
//! ```
//!
//! `decide` ([`answer_upgrade`]) is the one place where an upgrade is checked (RFC 6455 §4.2.1),
//! the application decides, the configured permessage-deflate default is applied, and a
//! decision the core cannot honour becomes a 500.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use wsx_proto::{
    head_complete, parse_request_shared, write_response, write_response_with_body, Accept,
    HandshakeError, Limits, Negotiated, Parsed, Role, Upgrade,
};

use crate::config::Config;
use crate::error::{Error, Timeout};
use crate::websocket::WebSocket;

/// Room for a typical upgrade request (a browser's is about 500 bytes); grows when needed.
const HEAD_BUFFER: usize = 1024;

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

    /// Limits, timeouts and permessage-deflate (the request must arrive within
    /// [`Config::handshake_timeout`]; deflate is accepted when [`Config::deflate`] is set and
    /// the decision did not set it).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The configuration.
    pub fn config_ref(&self) -> &Config {
        &self.config
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
    pub async fn accept_with<S, F>(&self, stream: S, decide: F) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: FnOnce(&Request<()>, &Upgrade) -> Result<Accept, HandshakeError>,
    {
        let incoming = self.read_request(stream).await?;
        match incoming.decide(decide) {
            Ok(answer) => incoming.accept(answer).await,
            Err(refusal) => Err(incoming.refuse(refusal).await),
        }
    }

    /// Reads the first request head on `stream` (within the handshake timeout), for a server
    /// that looks at the request before it decides: answer an upgrade with
    /// [`Incoming::decide`] and [`Incoming::accept`], hand anything else to an HTTP server
    /// with [`Incoming::into_http`].
    ///
    /// ```no_run
    /// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), wsx::Error> {
    /// let acceptor = wsx::Acceptor::new();
    /// let incoming = acceptor.read_request(tcp).await?;
    /// if !incoming.is_upgrade() {
    ///     let _stream = incoming.into_http(); // serve it with hyper: it reads the head again
    ///     return Ok(());
    /// }
    /// match incoming.decide(|_, _| Ok(wsx::Accept::new())) {
    ///     Ok(mut answer) => {
    ///         answer.headers_mut().insert("x-served-by", http::HeaderValue::from_static("me"));
    ///         let _ws = incoming.accept(answer).await?;
    ///     }
    ///     Err(refusal) => return Err(incoming.refuse(refusal).await),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn read_request<S>(&self, mut stream: S) -> Result<Incoming<'_, S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let limits = self.config.limits_ref();
        let (read, head) =
            tokio::time::timeout(self.config.handshake_timeout, read_head(&mut stream, limits))
                .await
                .map_err(|_| Error::Timeout(Timeout::Handshake))??;
        Ok(Incoming { acceptor: self, stream, read, head })
    }
}

/// Reads until `read` holds a complete request head, or one that can be refused already.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: &Limits,
) -> Result<(Bytes, Result<Parsed<Request<()>>, HandshakeError>), Error> {
    let mut buf = BytesMut::with_capacity(HEAD_BUFFER);
    let mut scanned = 0;
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection during the opening handshake",
            )));
        }
        // Parsed once the blank line is here (or the head is too large, to be refused): a head
        // sent in many small pieces costs linear work, not a parse per piece.
        if !head_complete(&buf, &mut scanned) && buf.len() <= limits.head_size() {
            continue;
        }
        // Frozen to be parsed: the request's target and header values share these bytes.
        let read = std::mem::take(&mut buf).freeze();
        match parse_request_shared(&read, limits) {
            Ok(Some(head)) => return Ok((read, Ok(head))),
            Ok(None) => {}
            Err(e) => return Ok((read, Err(e))),
        }
        // Incomplete: nothing refers to the bytes, so they become the buffer again, uncopied.
        buf = read.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..]));
    }
}

/// A connection whose first request head has been read ([`Acceptor::read_request`]).
#[derive(Debug)]
pub struct Incoming<'a, S> {
    acceptor: &'a Acceptor,
    stream: S,
    /// Everything read: the head, and what came after it.
    read: Bytes,
    /// The parsed head, or why it could not be parsed (a request to refuse).
    head: Result<Parsed<Request<()>>, HandshakeError>,
}

impl<S> Incoming<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The request, or why it is not one wsx accepts (malformed, too large: its status says).
    pub fn request(&self) -> Result<&Request<()>, &HandshakeError> {
        self.head.as_ref().map(|head| &head.value)
    }

    /// Whether the request asks for a WebSocket over HTTP/1.1 (an `Upgrade: websocket` token):
    /// what this driver answers. Anything else is for an HTTP server ([`into_http`](Self::into_http)).
    pub fn is_upgrade(&self) -> bool {
        self.request().is_ok_and(|r| r.version() == http::Version::HTTP_11 && is_upgrade_request(r))
    }

    /// Checks the request as an upgrade and lets `decide` answer it: the answer to send with
    /// [`accept`](Self::accept), or the refusal to send with [`refuse`](Self::refuse).
    pub fn decide<F>(&self, decide: F) -> Result<Answer, HandshakeError>
    where
        F: FnOnce(&Request<()>, &Upgrade) -> Result<Accept, HandshakeError>,
    {
        let request = self.head.as_ref().map_err(Clone::clone)?;
        answer_upgrade(&request.value, &self.acceptor.config, decide)
    }

    /// Sends the `101 Switching Protocols` of `answer` and returns the WebSocket (the bytes
    /// that came after the head are its first bytes).
    pub async fn accept(mut self, answer: Answer) -> Result<WebSocket<S>, Error> {
        let mut out = BytesMut::with_capacity(256);
        write_response(&answer.response, &mut out);
        let timeout = self.acceptor.config.handshake_timeout;
        tokio::time::timeout(timeout, write_all(&mut self.stream, &out))
            .await
            .map_err(|_| Error::Timeout(Timeout::Handshake))??;
        let after = self.head.as_ref().map_or(self.read.len(), |head| head.len);
        Ok(WebSocket::from_partially_read(
            self.stream,
            Role::Server,
            answer.negotiated,
            self.acceptor.config.clone(),
            &self.read[after..],
        ))
    }

    /// Answers the request with `refusal`'s status and a one-line reason, closes the
    /// connection, and returns the refusal as [`Error::Handshake`] (to report or ignore).
    pub async fn refuse(self, refusal: HandshakeError) -> Error {
        let response = refusal.to_response().unwrap_or_else(|| {
            let mut response = Response::new(format!("{refusal}\n"));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        });
        self.refuse_with(response.map(Bytes::from)).await;
        Error::Handshake(refusal)
    }

    /// Answers the request with `response` (`Connection: close` is added) and closes the
    /// connection. A client that is already gone changes nothing.
    pub async fn refuse_with(mut self, mut response: Response<Bytes>) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        let mut out = BytesMut::with_capacity(256 + response.body().len());
        write_response_with_body(&response, &mut out);
        let timeout = self.acceptor.config.handshake_timeout;
        let _ = tokio::time::timeout(timeout, async {
            let _ = write_all(&mut self.stream, &out).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// The stream for an HTTP server (hyper): reading it yields the bytes read so far again.
    pub fn into_http(self) -> Rewind<S> {
        Rewind { read: self.read, stream: self.stream }
    }
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// An upgrade the application accepted: the `101` response (headers may be added) and what
/// it agreed on.
#[derive(Debug)]
pub struct Answer {
    response: Response<()>,
    negotiated: Negotiated,
}

impl Answer {
    /// The response's headers, to add to (a server name, a cookie).
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.response.headers_mut()
    }

    /// What the handshake agreed on (subprotocol, extensions, deflate).
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The response and the agreement, for an I/O layer that sends the response itself.
    pub fn into_parts(self) -> (Response<()>, Negotiated) {
        (self.response, self.negotiated)
    }
}

/// The one decision step of every server path: checks `request` as an upgrade, lets `decide`
/// answer it, applies the configured deflate default, and answers. A decision the core cannot
/// honour (a subprotocol that was not offered) is the server's fault: 500.
pub(crate) fn answer_upgrade<F>(
    request: &Request<()>,
    config: &Config,
    decide: F,
) -> Result<Answer, HandshakeError>
where
    F: FnOnce(&Request<()>, &Upgrade) -> Result<Accept, HandshakeError>,
{
    answer(Upgrade::from_request(request)?, request, config, decide)
}

/// The decision step for an `upgrade` already checked (over HTTP/1.1 or HTTP/2): the
/// application's `decide`, the configured deflate default, a 500 for a decision the core cannot
/// honour.
pub(crate) fn answer<F>(
    upgrade: Upgrade,
    request: &Request<()>,
    config: &Config,
    decide: F,
) -> Result<Answer, HandshakeError>
where
    F: FnOnce(&Request<()>, &Upgrade) -> Result<Accept, HandshakeError>,
{
    let accept = match decide(request, &upgrade)? {
        accept if accept.deflate_config().is_none() => accept.deflate(config.deflate),
        accept => accept,
    };
    let (response, negotiated) = upgrade.respond(accept).map_err(|e| HandshakeError::Rejected {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        reason: format!("the server could not answer the upgrade: {e}"),
    })?;
    Ok(Answer { response, negotiated })
}

/// Whether `request` asks for a WebSocket upgrade (an `Upgrade: websocket` token).
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

/// A stream whose first bytes were already read: reading yields them again first
/// ([`Incoming::into_http`]).
#[derive(Debug)]
pub struct Rewind<S> {
    read: Bytes,
    stream: S,
}

impl<S> Rewind<S> {
    /// The underlying stream (the bytes read before are not in it any more).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.has_remaining() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewind_reads_the_bytes_read_before_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut io = Rewind { read: Bytes::from_static(b"hello"), stream: server };
        let mut first = [0u8; 3];
        io.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"hel");
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"lo world");
    }
}
