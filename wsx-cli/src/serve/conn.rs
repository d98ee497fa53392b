//! One connection of `wsx serve`. Its first request head is read here: a WebSocket upgrade to
//! `/echo` or `/chat/ROOM` (what almost every connection is) is answered here and its session
//! runs on this same task, with no HTTP machinery left behind it. Anything else (the page,
//! `/healthz`, `/metrics`, a request that does not parse) goes to hyper, which first reads
//! again the bytes read here.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tracing::debug;
use wsx::{HandshakeError, Limits, Negotiated, Parsed, Role, Upgrade, WebSocket};

use super::session::{Session, Stream};
use super::{admitted, decide, places, proxy, refused, route, serve_http};
use super::{Places, Route, State, X_WSX_NODE};

/// Room for a typical upgrade request (a browser's is about 500 bytes); grows when needed.
const HEAD_BUFFER: usize = 1024;

/// Serves one connection until it ends, or the server stops.
pub(super) async fn serve<S: Stream>(
    io: S,
    peer: SocketAddr,
    state: Arc<State>,
    alive: mpsc::Sender<()>,
) {
    // The opening is boxed: its future (read, answer, join, write the 101) is freed once the
    // session starts, instead of setting the size of the future the task keeps all along.
    // Borrowed, not moved out: a moved session would be stored twice in this future.
    let mut opened = Box::pin(open(io, peer, &state, &alive)).await;
    if let Some(session) = &mut opened {
        session.run(&state).await;
    }
}

/// What the first request gets.
enum Next {
    /// Nothing: the client left, or stalled, or the server is stopping.
    Nothing,
    /// Not an upgrade to a WebSocket endpoint, or not one wsx-proto parses: hyper answers.
    Hyper,
    /// A refusal, ready to send.
    Refuse(BytesMut),
    Accept(Accepted),
}

/// An upgrade accepted: the 101 ready to send, and what the session needs.
struct Accepted {
    response: BytesMut,
    negotiated: Negotiated,
    places: Places,
    client: IpAddr,
    path: String,
    room: Option<String>,
    /// Where the bytes after the head start.
    head_len: usize,
}

/// Reads the first request and answers it; `Some` when it opened a WebSocket.
async fn open<S: Stream>(
    mut io: S,
    peer: SocketAddr,
    state: &Arc<State>,
    alive: &mpsc::Sender<()>,
) -> Option<Session<S>> {
    // What was read, the head and whatever came after it.
    let mut read = Bytes::new();
    let next = {
        let limits = state.config.limits_ref();
        let timeout = state.args.handshake_timeout;
        tokio::select! {
            head = tokio::time::timeout(timeout, read_head(&mut io, &mut read, limits)) => {
                match head {
                    Ok(Ok(Some(head))) => answer(&head, peer, state),
                    Ok(Ok(None)) => Next::Hyper,
                    Ok(Err(e)) => {
                        debug!(%peer, "connection ended before its first request: {e}");
                        Next::Nothing
                    }
                    Err(_) => {
                        debug!(%peer, "no request within the handshake timeout");
                        Next::Nothing
                    }
                }
            }
            () = state.shutdown.stopped() => Next::Nothing,
        }
    };
    match next {
        Next::Nothing => None,
        Next::Hyper => {
            let io = Rewind { read, io };
            // Boxed: the future of a WebSocket connection is not made as large as hyper's.
            Box::pin(serve_http(io, peer, state.clone(), alive.clone())).await;
            None
        }
        Next::Refuse(refusal) => {
            // The refusal is what matters; a client that is already gone changes nothing.
            let _ = write(&mut io, &refusal).await;
            let _ = io.shutdown().await;
            None
        }
        Next::Accept(Accepted { response, negotiated, places, client, path, room, head_len }) => {
            let member = admitted(state, room).await;
            if let Err(e) = write(&mut io, &response).await {
                debug!(%client, "could not send the 101 response: {e}");
                return None;
            }
            let config = state.config.clone();
            let read = &read[head_len..];
            let ws = WebSocket::from_partially_read(io, Role::Server, negotiated, config, read);
            Some(Session { ws, client, path, member, _places: places })
        }
    }
}

/// Reads until `read` holds a complete request head: `None` when it is not one wsx-proto
/// accepts (malformed, too large); an error when the client left first.
async fn read_head<S: Stream>(
    io: &mut S,
    read: &mut Bytes,
    limits: &Limits,
) -> io::Result<Option<Parsed<Request<()>>>> {
    let mut buf = BytesMut::with_capacity(HEAD_BUFFER);
    loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // Frozen to be parsed: the request's target and header values share these bytes.
        *read = std::mem::take(&mut buf).freeze();
        match wsx::parse_request_shared(read, limits) {
            Ok(Some(head)) => return Ok(Some(head)),
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
        // Incomplete: nothing refers to the bytes, so they become the buffer again, uncopied.
        buf = std::mem::take(read).try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..]));
    }
}

/// Answers a first request: an upgrade to `/echo` or `/chat/ROOM` over HTTP/1.1 here (HTTP/1.0
/// goes to hyper, which answers a refusal in kind), anything else by hyper.
fn answer(head: &Parsed<Request<()>>, peer: SocketAddr, state: &Arc<State>) -> Next {
    let request = &head.value;
    let ours =
        request.version() == http::Version::HTTP_11 && wsx::hyper::is_upgrade_request(request);
    let room = match route(request.uri().path()) {
        _ if !ours => return Next::Hyper,
        Route::Echo => None,
        Route::Chat(room) => Some(room),
        _ => return Next::Hyper,
    };
    let client = proxy::client_ip(peer.ip(), request.headers(), &state.args.trust_proxy);
    let places = match places(state, client) {
        Ok(places) => places,
        Err(refusal) => return Next::Refuse(refusal_bytes(*refusal, state)),
    };
    let answered = Upgrade::from_request(request).and_then(|upgrade| {
        let accept = decide(state, peer.ip(), room.is_some(), request, &upgrade)?;
        upgrade.accept(accept).map_err(|e| HandshakeError::Rejected {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: e.to_string(),
        })
    });
    let (mut response, negotiated) = match answered {
        Ok(answered) => answered,
        Err(error) => return Next::Refuse(refusal_bytes(refused(state, client, &error), state)),
    };
    response.headers_mut().insert(X_WSX_NODE, state.node.clone());
    let mut bytes = BytesMut::with_capacity(256);
    wsx::write_response(&response, &mut bytes);
    let path = request.uri().path().to_string();
    Next::Accept(Accepted {
        response: bytes,
        negotiated,
        places,
        client,
        path,
        room,
        head_len: head.len,
    })
}

/// A refusal on the wire; the connection closes after it.
fn refusal_bytes(mut response: Response<Bytes>, state: &State) -> BytesMut {
    let headers = response.headers_mut();
    headers.insert(X_WSX_NODE, state.node.clone());
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let mut bytes = BytesMut::with_capacity(256 + response.body().len());
    wsx::write_response_with_body(&response, &mut bytes);
    bytes
}

async fn write<S: Stream>(io: &mut S, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// A stream whose first bytes were already read: reading yields them again first.
struct Rewind<S> {
    read: Bytes,
    io: S,
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
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewind_reads_the_bytes_read_before_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut io = Rewind { read: Bytes::from_static(b"hello"), io: server };
        let mut first = [0u8; 3];
        io.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"hel");
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"lo world");
    }
}
