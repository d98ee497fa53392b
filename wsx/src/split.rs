//! [`ReadHalf`] and [`WriteHalf`]: one WebSocket used from two tasks.
//!
//! Both halves share the connection behind a mutex held only for one poll. The read half still
//! writes pongs and close echoes, so both halves may wait on the socket at once; the stream is
//! therefore always polled with a waker that wakes *both* halves' tasks (spurious wake-ups are
//! harmless, lost ones would hang).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use wsx_proto::Message;

use crate::error::Error;
use crate::websocket::WebSocket;

/// The wakers of the two halves' tasks.
#[derive(Debug, Default)]
struct Wakers {
    read: Mutex<Option<Waker>>,
    write: Mutex<Option<Waker>>,
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for slot in [&self.read, &self.write] {
            if let Some(waker) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                waker.wake();
            }
        }
    }
}

#[derive(Debug)]
struct Shared<S> {
    ws: Mutex<WebSocket<S>>,
    wakers: Arc<Wakers>,
    waker: Waker,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, WebSocket<S>> {
        // A panic while polling leaves the connection as it was between two polls.
        self.ws.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving half of a split [`WebSocket`]: a [`Stream`] of messages.
#[derive(Debug)]
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
}

/// The sending half of a split [`WebSocket`]: a [`Sink`] of messages.
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S> WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Splits the connection into halves that can be used from different tasks.
    ///
    /// ```no_run
    /// use futures_util::{SinkExt, StreamExt};
    /// # async fn run() -> Result<(), wsx::Error> {
    /// let (ws, _) = wsx::connect("ws://127.0.0.1:8080/echo").await?;
    /// let (mut rx, mut tx) = ws.split();
    /// tokio::spawn(async move { tx.send(wsx::Message::text("hi")).await });
    /// while let Some(message) = rx.next().await {
    ///     println!("{:?}", message?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let wakers = Arc::new(Wakers::default());
        let shared =
            Arc::new(Shared { ws: Mutex::new(self), waker: Waker::from(wakers.clone()), wakers });
        (ReadHalf { shared: shared.clone() }, WriteHalf { shared })
    }
}

impl<S> ReadHalf<S> {
    /// Puts the halves back together; gives them back if they are not from the same split.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>, (Self, WriteHalf<S>)> {
        if !Arc::ptr_eq(&self.shared, &write.shared) {
            return Err((self, write));
        }
        drop(write);
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => Ok(shared.ws.into_inner().unwrap_or_else(|e| e.into_inner())),
            Err(_) => unreachable!("both halves were given, so no other reference exists"),
        }
    }
}

/// Polls `f` on the shared connection with the waker that wakes both halves.
fn poll_shared<S, T>(
    shared: &Shared<S>,
    slot: &Mutex<Option<Waker>>,
    cx: &mut Context<'_>,
    f: impl FnOnce(&mut WebSocket<S>, &mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
    let mut proxy = Context::from_waker(&shared.waker);
    f(&mut shared.lock(), &mut proxy)
}

impl<S> Stream for ReadHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let shared = &self.shared;
        poll_shared(shared, &shared.wakers.read, cx, WebSocket::poll_next_inner)
    }
}

impl<S> Sink<Message> for WriteHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let shared = &self.shared;
        poll_shared(shared, &shared.wakers.write, cx, WebSocket::poll_ready_inner)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.shared.lock().start_send_inner(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let shared = &self.shared;
        poll_shared(shared, &shared.wakers.write, cx, WebSocket::poll_flush_inner)
    }

    /// Starts the closing handshake and flushes it; the read half sees the peer's Close and the
    /// end of the connection.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let shared = &self.shared;
        poll_shared(shared, &shared.wakers.write, cx, |ws, cx| {
            if ws.close_state() == wsx_proto::CloseState::Open {
                ws.start_send_inner(Message::close(wsx_proto::CloseCode::NORMAL, ""))?;
            }
            ws.poll_flush_inner(cx)
        })
    }
}
