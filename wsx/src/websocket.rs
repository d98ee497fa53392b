//! [`WebSocket`]: the only I/O pump. It moves bytes between the socket and the sans-IO
//! [`Connection`], and time into it: the keepalive, idle and close policy is the core's
//! ([`Connection::handle_timeout`]); this layer keeps one tokio timer at the instant
//! [`Connection::poll_timeout`] names.
//!
//! One poll does, until nothing makes progress: hand a decoded message to the caller; write what
//! the core queued (pongs, close echoes, sent messages: many frames in one vectored write); close
//! TCP when the core says it is this side's turn; tell the core the time if it asks; read more
//! bytes.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use wsx_proto::{
    CloseCode, CloseFrame, CloseState, Connection, Message, Negotiated, ProtocolError, Role,
    UsageError,
};

use crate::config::Config;
use crate::error::Error;

/// Bytes read per `poll_read`.
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where reads land before the core takes them: one buffer per thread, so an idle connection
    /// holds none, and not on the stack, where 64 KiB cost a probe of each of its pages on every
    /// poll. Zeroed once, when the thread first reads.
    static READ_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}
/// At most this many chunks go into one vectored write.
const MAX_IOVECS: usize = 64;

/// A WebSocket connection over a stream `S` (TCP, TLS, a hyper upgrade, an in-memory duplex).
///
/// Read with [`recv`](Self::recv) or as a [`Stream`]; write with [`send`](Self::send) or as a
/// [`Sink`] (`feed` several messages, then `flush`, for one write). Pings are answered on their
/// own while the connection is read. Reading also writes whatever was queued with
/// [`feed`](Self::feed) before it waits for the socket, so an echo loop of `recv` + `feed`
/// answers a burst of messages with one write.
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// let (mut ws, _response) = wsx::connect("ws://127.0.0.1:8080/echo").await?;
/// ws.send(wsx::Message::text("hello")).await?;
/// while let Some(message) = ws.recv().await {
///     println!("{:?}", message?);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WebSocket<S> {
    io: S,
    conn: Connection,
    negotiated: Negotiated,
    /// Outgoing bytes buffered before `send` waits (the one setting the pump needs after the
    /// handshake: not the whole configuration, this is per connection).
    write_buffer: usize,
    /// The one timer, at the core's next deadline (allocated only once one is armed).
    timer: Option<Pin<Box<Sleep>>>,
    /// An error to report on the next poll (a failed write of a control frame).
    pending_error: Option<Error>,
    /// The stream has ended; every poll returns `None`.
    finished: bool,
}

impl<S> WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// A WebSocket over a stream whose opening handshake is already done, for example a hyper
    /// upgrade. `negotiated` is what the handshake agreed on.
    pub fn from_raw(io: S, role: Role, negotiated: Negotiated, config: Config) -> Self {
        Self::from_partially_read(io, role, negotiated, config, &[])
    }

    /// Like [`from_raw`](Self::from_raw), for a server (or client) that ran the handshake
    /// itself: `read` is what it read from `io` after the handshake head (the start of the
    /// first frames), handed on so that nothing is lost.
    ///
    /// ```no_run
    /// use wsx::proto::{parse_request, write_response};
    /// use wsx::{Accept, Role, Upgrade, WebSocket};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # async fn run(mut tcp: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    /// let config = wsx::Config::default();
    /// let mut buf = bytes::BytesMut::new();
    /// let head = loop {
    ///     if tcp.read_buf(&mut buf).await? == 0 { return Ok(()) }
    ///     if let Some(head) = parse_request(&buf, config.limits_ref())? { break head }
    /// };
    /// let (response, negotiated) = Upgrade::from_request(&head.value)?.respond(Accept::new())?;
    /// let mut out = bytes::BytesMut::new();
    /// write_response(&response, &mut out);
    /// tcp.write_all(&out).await?;
    /// let ws = WebSocket::from_partially_read(tcp, Role::Server, negotiated, config, &buf[head.len..]);
    /// # let _ = ws; Ok(()) }
    /// ```
    pub fn from_partially_read(
        io: S,
        role: Role,
        negotiated: Negotiated,
        config: Config,
        read: &[u8],
    ) -> Self {
        let mut conn = Connection::new(role, &negotiated, config.core.clone());
        // The core's clock starts now (a close may begin before anything is read).
        conn.handle_timeout(Instant::now().into_std());
        conn.receive(read);
        Self {
            io,
            conn,
            negotiated,
            write_buffer: config.write_buffer,
            timer: None,
            pending_error: None,
            finished: false,
        }
    }

    /// Which side this is.
    pub fn role(&self) -> Role {
        self.conn.role()
    }

    /// The subprotocol agreed on in the handshake.
    pub fn subprotocol(&self) -> Option<&str> {
        self.negotiated.subprotocol()
    }

    /// Everything the opening handshake agreed on (subprotocol, extensions, deflate).
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Where the closing handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.conn.close_state()
    }

    /// The Close frame the peer sent, once it arrived (`Some(None)`: without a code, 1005).
    pub fn peer_close(&self) -> Option<&Option<CloseFrame>> {
        self.conn.peer_close()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably. Reading from or writing to it directly corrupts the
    /// WebSocket stream; this is for socket options and the like.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The underlying stream, giving up the WebSocket (bytes already read but not yet decoded,
    /// and bytes queued but not yet written, are dropped).
    pub fn into_inner(self) -> S {
        self.io
    }

    /// The sans-IO connection this WebSocket drives (its state, what is queued).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Sends a message and writes it out. Waits while the socket does not take the bytes.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_inner(message)?;
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Queues a message without writing it; [`flush`](Self::flush) writes everything queued in
    /// as few writes as possible. Waits first if the write buffer is full.
    pub async fn feed(&mut self, message: Message) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_inner(message)
    }

    /// Queues a message prepared once for many connections (a room's members): its payload,
    /// and with permessage-deflate without context takeover its compressed payload, are shared
    /// rather than made again for this connection ([`Prepared`](wsx_proto::Prepared)). Waits
    /// first if the write buffer is full; [`flush`](Self::flush) writes it.
    pub async fn feed_prepared(&mut self, prepared: &wsx_proto::Prepared) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        if self.finished {
            return Err(Error::Closed);
        }
        self.conn.send_prepared(prepared)?;
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Sends one fragment of a message sent in pieces (see
    /// [`Connection::send_fragment`](wsx_proto::Connection::send_fragment)).
    pub async fn send_fragment(
        &mut self,
        opcode: wsx_proto::OpCode,
        payload: Bytes,
        fin: bool,
    ) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.conn.send_fragment(opcode, payload, fin)?;
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// The next message; `None` once the connection has ended.
    ///
    /// A received `Close` has already been answered. After an `Err` the connection is over.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        std::future::poll_fn(|cx| self.poll_next_inner(cx)).await
    }

    /// Closes the connection: sends Close with `code` and `reason`, waits for the peer's Close
    /// (up to the close timeout, discarding messages that still arrive), then closes TCP as
    /// RFC 6455 §7.1.1 says (the server first; a client waits for it, within the timeout).
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let frame = CloseFrame { code, reason: reason.to_string().into() };
        match self.conn.send(Message::Close(Some(frame))) {
            Ok(()) | Err(UsageError::Closed) => {}
            Err(e) => return Err(e.into()),
        }
        while let Some(item) = self.recv().await {
            match item {
                Ok(_) => {}
                Err(Error::Protocol(ProtocolError::UnexpectedEof)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(crate) fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.finished || self.conn.close_state() != CloseState::Open {
            return Poll::Ready(Err(Error::Closed));
        }
        while self.buffered() >= self.write_buffer {
            ready!(self.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn start_send_inner(&mut self, message: Message) -> Result<(), Error> {
        if self.finished {
            return Err(Error::Closed);
        }
        self.conn.send(message)?;
        Ok(())
    }

    pub(crate) fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_flush(cx).map_err(Error::Io)
    }

    /// Sink close: start the closing handshake (1000) if nobody did, then drive the connection
    /// until it has ended.
    pub(crate) fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.conn.close_state() == CloseState::Open {
            self.start_send_inner(Message::close(CloseCode::NORMAL, ""))?;
        }
        loop {
            match ready!(self.poll_next_inner(cx)) {
                None | Some(Err(Error::Protocol(ProtocolError::UnexpectedEof))) => {
                    return Poll::Ready(Ok(()))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Bytes waiting to be written.
    fn buffered(&self) -> usize {
        self.conn.pending_transmit()
    }

    /// Reads once and hands what arrived to the core; `Ok(0)` at the end of the stream.
    fn poll_read_into_core(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        READ_BUFFER.with(|shared| {
            let mut own = Vec::new();
            let mut shared = shared.try_borrow_mut();
            let buf = match &mut shared {
                Ok(buf) => &mut buf[..],
                // Taken: this read runs inside another WebSocket's (a stream tunnelled through
                // one). Rare enough for a buffer of its own.
                Err(_) => {
                    own.resize(READ_CHUNK, 0);
                    &mut own[..]
                }
            };
            let mut read = ReadBuf::new(buf);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            self.conn.receive(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        })
    }

    /// Writes everything the core has queued, many chunks per vectored write, straight from the
    /// core's queue.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.pending_transmit() > 0 {
            let io = Pin::new(&mut self.io);
            // Mostly one chunk (small frames coalesce): no array of slices to fill.
            let mut first = [IoSlice::new(&[])];
            self.conn.transmit_slices(&mut first);
            let n = if first[0].len() == self.conn.pending_transmit() || !io.is_write_vectored() {
                ready!(io.poll_write(cx, &first[0]))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let filled = self.conn.transmit_slices(&mut slices);
                ready!(io.poll_write_vectored(cx, &slices[..filled]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.conn.advance_transmit(n);
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_next_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if let Some(e) = self.pending_error.take() {
                return Poll::Ready(Some(Err(e)));
            }
            match self.conn.next_message() {
                Ok(Some(message)) => {
                    // Pongs and close echoes leave now (the caller may stop polling after a
                    // Close). Queued data waits until no decoded message is left, so that a
                    // burst of replies leaves in one write.
                    if message.is_control() {
                        if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                            self.pending_error = Some(Error::Io(e));
                        }
                    }
                    return Poll::Ready(Some(Ok(message)));
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = self.poll_write_out(cx);
                    return Poll::Ready(Some(Err(Error::Protocol(e))));
                }
            }
            let wrote = self.poll_write_out(cx);
            if let Poll::Ready(Err(e)) = wrote {
                self.finish();
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
            if self.conn.should_close_tcp() {
                // RFC 6455 §7.1.1: our turn to close TCP. A failed shutdown changes nothing.
                let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                self.finish();
                return Poll::Ready(None);
            }
            match self.poll_timers(cx) {
                Poll::Ready(Some(e)) => return Poll::Ready(Some(Err(e))),
                // The close timer ended a normal wait: close TCP at the top of the loop.
                Poll::Ready(None) => continue,
                Poll::Pending => {}
            }
            if !self.conn.wants_read() {
                continue; // the core has enough: decode before reading more
            }
            match self.poll_read_into_core(cx) {
                Poll::Ready(Ok(0)) => self.conn.receive_eof(),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    // A reset connection is a vanished peer: 1006, never a hang.
                    self.finish();
                    if self.conn.is_closed() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        self.timer = None;
    }

    /// Tells the core the time when it asks, and sleeps until its next deadline otherwise.
    /// `Ready(Some(e))`: a timer ended the connection, report `e`; `Ready(None)`: the close timer
    /// ended a normal wait, and it is time to close TCP.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        loop {
            let Some(deadline) = self.conn.poll_timeout() else {
                self.timer = None;
                return Poll::Pending;
            };
            let deadline = Instant::from_std(deadline);
            let now = Instant::now();
            if deadline > now {
                match &mut self.timer {
                    Some(timer) if timer.deadline() == deadline => {}
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                let timer = self.timer.as_mut().expect("set just above");
                ready!(timer.as_mut().poll(cx));
                continue;
            }
            let ended = self.conn.handle_timeout(now.into_std());
            // A keepalive ping, or the Close a timeout queued: out now, best effort.
            let _ = self.poll_write_out(cx);
            if let Some(timeout) = ended {
                self.finish();
                return Poll::Ready(Some(Error::Timeout(timeout.into())));
            }
            if self.conn.should_close_tcp() {
                // The close timer ended a wait that was normal: the main loop closes TCP.
                return Poll::Ready(None);
            }
        }
    }
}

impl<S> Stream for WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_inner(cx)
    }
}

impl<S> Sink<Message> for WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().start_send_inner(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_inner(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A read that runs while the thread's read buffer is taken (a WebSocket tunnelled through
    /// another one reads inside the outer one's read) uses a buffer of its own.
    #[tokio::test]
    async fn reads_while_the_thread_buffer_is_taken() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut ws = WebSocket::from_partially_read(
            client,
            Role::Client,
            Negotiated::default(),
            Config::default(),
            &[],
        );
        server.write_all(&[0x82, 0x03, b'a', b'b', b'c']).await.unwrap();
        let message = READ_BUFFER.with(|buffer| {
            let _taken = buffer.borrow_mut();
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match ws.poll_next_inner(&mut cx) {
                Poll::Ready(Some(Ok(message))) => message,
                other => panic!("expected the message, got {other:?}"),
            }
        });
        assert_eq!(message, Message::Binary(Bytes::from_static(b"abc")));
    }
}
