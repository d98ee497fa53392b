//! One WebSocket session of `wsx serve`, from the 101 to the close: echo, a chat room, a
//! program (--exec: `exec.rs` runs it; --exec-shared: a client of `shared.rs`'s program) or a
//! TCP connection (--tcp-forward, through `pipe.rs`), over whichever stream it came on (a hyper
//! upgrade, or the TCP, TLS or Unix stream itself).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio::time::error::Elapsed;
use tokio::time::Sleep;
use tracing::info;
use wsx::{CloseCode, Message, Prepared, WebSocket};

use super::auth::Grant;
use super::bus::{Event, Replay, Start, Undelivered};
use super::exec::Process;
use super::limit::RoomRate;
use super::rooms::Membership;
use super::shared::{Client, Closing};
use super::state::{Places, State};
use super::superchat;
use crate::pipe::{pump, send, Ended, Ends, Framing};

type Ws<S> = WebSocket<S>;

/// A chat member's place in its room, and where it starts.
#[derive(Debug)]
pub(super) struct Seat {
    pub(super) membership: Membership,
    /// Whether it speaks `superchat` (docs/rooms.md) rather than `chat`.
    pub(super) superchat: bool,
    /// Where it asked to start, and what it found there: handed over first (superchat).
    pub(super) entry: Option<(Start, Replay)>,
}

/// What a session can run over.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// An open WebSocket connection of `wsx serve`, and what its session needs.
pub(super) struct Session<S> {
    pub(super) ws: WebSocket<S>,
    pub(super) client: IpAddr,
    pub(super) path: String,
    /// Its chat room; none for echo. Boxed: most sessions have none.
    pub(super) member: Option<Box<Seat>>,
    /// What its token allows (with --auth-*); boxed: most sessions have none.
    pub(super) grant: Option<Box<Grant>>,
    /// What it runs beside its socket: a program (--exec), a client of the shared program
    /// (--exec-shared), a TCP connection (--tcp-forward); none for echo and rooms.
    pub(super) backend: Option<Box<Backend>>,
    /// Held until the session ends.
    pub(super) _places: Places,
}

impl<S: Stream> Session<S> {
    /// Runs the session from open to close, logged as one line at the end. (Through `&mut
    /// self`: an async fn's by-value arguments are stored twice in its future, and this one
    /// lives as long as the connection.)
    pub(super) async fn run(&mut self, state: &State) {
        let started = Instant::now();
        state.metrics.opened();
        let ws = &mut self.ws;
        let grant = self.grant.as_deref();
        let code = match (&mut self.member, &mut self.backend) {
            (None, None) => echo(ws, grant, state).await,
            // Boxed: an echo session's future (what every connection's task holds) is not
            // made as large as a chat session's or a program's.
            (Some(seat), _) => Box::pin(chat(ws, seat, self.client, grant, state)).await,
            (None, Some(backend)) => Box::pin(run_backend(ws, backend, grant, state)).await,
        };
        state.metrics.closed();
        info!(
            client = %self.client,
            user = grant.map_or("-", |g| g.user.as_str()),
            path = self.path,
            subprotocol = self.ws.subprotocol().unwrap_or("-"),
            duration_ms = started.elapsed().as_millis() as u64,
            close_code = %code.map_or_else(|| "none".to_string(), |c| c.to_string()),
            "connection closed"
        );
    }
}

/// What a session runs beside its socket, set up before its 101 (`upgrade.rs`).
// Always boxed (`Session::backend`): the variants' sizes cost nothing per echo session.
#[allow(clippy::large_enum_variant)]
pub(super) enum Backend {
    /// A program of its own (--exec, --exec-dir).
    Program(Process),
    /// A connection to the TCP server of its path (--tcp-forward); taken when the session runs.
    Tcp(Option<TcpStream>),
    /// A client of the one program of --exec-shared (dropped: it left).
    Shared(Client),
}

impl Backend {
    /// Ends what was set up for a connection that never opened (its 101 could not be sent).
    pub(super) async fn abandon(&mut self) {
        match self {
            Self::Program(program) => program.abandon().await,
            Self::Tcp(tcp) => drop(tcp.take()),
            // Its leave is sent when the session (and this) is dropped.
            Self::Shared(_) => {}
        }
    }
}

/// Runs `backend` with the connection; its token's expiry closes it with 1008.
async fn run_backend<S: Stream>(
    ws: &mut Ws<S>,
    backend: &mut Backend,
    grant: Option<&Grant>,
    state: &State,
) -> Option<CloseCode> {
    let mut expiry = expiry(grant);
    match backend {
        Backend::Program(program) => {
            program.run(ws, &state.shutdown, &state.metrics, expired(&mut expiry)).await
        }
        Backend::Tcp(tcp) => match tcp.take() {
            Some(tcp) => forward(ws, tcp, &mut expiry, state).await,
            None => None,
        },
        Backend::Shared(client) => shared(ws, client, &mut expiry, state).await,
    }
}

/// Runs a client of the shared program (--exec-shared): its messages go to the program as
/// events, what the program addresses to it (or to all) is sent to it; the program closes it
/// when it says so, or with 1011 when it exits; 1013 when it cannot keep up.
async fn shared<S: Stream>(
    ws: &mut Ws<S>,
    client: &mut Client,
    expiry: &mut Expiry,
    state: &State,
) -> Option<CloseCode> {
    let stop = state.shutdown.stopped();
    tokio::pin!(stop);
    // An event waiting for room in the program's stdin queue: the client is not read
    // meanwhile, but still gets what the program sends.
    let mut pending: Option<String> = None;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => {
                return close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
            }
            () = expired(expiry) => return expire(ws, state).await,
            closing = &mut client.closed => {
                let closing = closing.unwrap_or(Closing {
                    code: CloseCode::INTERNAL_ERROR,
                    reason: "the program is gone".to_string(),
                    drain: false,
                });
                return closed_by_program(ws, &mut client.messages, closing, state).await;
            }
            message = client.messages.recv() => {
                let Some(message) = message else { continue };
                let last = client.messages.is_empty();
                if let Err(code) = deliver_shared(ws, message, last, state).await {
                    return code;
                }
            }
            permit = client.events.reserve(), if pending.is_some() => match permit {
                Some(permit) => permit.send(pending.take().unwrap_or_default()),
                None => pending = None,
            },
            item = ws.recv(), if pending.is_none() => match on_received(item, ws, state) {
                Ok(Some(message)) => pending = client.message_event(&message),
                Ok(None) => {}
                Err(code) => return code,
            },
        }
    }
}

/// The program closed this client (or exited, or found it too slow: 1013, nothing more sent).
async fn closed_by_program<S: Stream>(
    ws: &mut Ws<S>,
    messages: &mut mpsc::Receiver<Message>,
    closing: Closing,
    state: &State,
) -> Option<CloseCode> {
    if closing.code == CloseCode::TRY_AGAIN_LATER && !closing.drain {
        return slow(ws, state, &closing.reason).await;
    }
    while let Ok(message) = messages.try_recv() {
        let last = messages.is_empty();
        if let Err(code) = deliver_shared(ws, message, last, state).await {
            return code;
        }
    }
    close(ws, closing.code, &closing.reason).await
}

/// Sends a message of the shared program (written at once when `last`); a socket that refuses
/// data for --slow-timeout is closed with 1013.
async fn deliver_shared<S: Stream>(
    ws: &mut Ws<S>,
    message: Message,
    last: bool,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    let len = message.len();
    match within(state.args.slow_timeout, send(ws, message, last)).await {
        Ok(Ok(())) => {
            state.metrics.sent(len);
            Ok(())
        }
        Ok(Err(code)) => Err(code),
        Err(_) => Err(slow(ws, state, "too slow: the connection did not take data").await),
    }
}

/// `future`'s output, or `Err` once it has waited `limit`. A timeout that reads the clock only
/// when the future has to wait: almost every message is queued at once, and a timer made per
/// delivery (a clock read, the runtime's handle) was a tenth of a busy room's CPU.
async fn within<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    // Polled once with a waker that does nothing; when it waits, the timeout polls it again
    // with the task's own waker, which replaces that one wherever it was registered.
    if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return Ok(output);
    }
    tokio::time::timeout(limit, future).await
}

/// Carries the connection to `tcp` (--tcp-forward): bytes as binary messages both ways. The
/// server closing its side closes the WebSocket with 1000; the WebSocket closing shuts the TCP
/// connection down once what arrived before it is written.
async fn forward<S: Stream>(
    ws: &mut Ws<S>,
    tcp: TcpStream,
    expiry: &mut Expiry,
    state: &State,
) -> Option<CloseCode> {
    let (read, write) = tcp.into_split();
    let mut ends = Ends::spawn(read, write, Framing::Chunks);
    let stop = async {
        tokio::select! {
            () = state.shutdown.stopped() => {}
            () = expired(expiry) => {}
        }
    };
    let counted = |sent: bool, len| match sent {
        true => state.metrics.sent(len),
        false => state.metrics.received(len),
    };
    let code = match pump(ws, &mut ends, stop, counted).await {
        Ended::Output => close(ws, CloseCode::NORMAL, "").await,
        Ended::Stopped if state.shutdown.is_stopping() => {
            close(ws, CloseCode::GOING_AWAY, "server shutting down").await
        }
        Ended::Stopped => expire(ws, state).await,
        Ended::Peer(code) => code,
    };
    ends.finish(Duration::from_secs(5)).await;
    code
}

/// How the connection ended, as a close code: the peer's, the error's, or ours.
fn peer_code<S: Stream>(ws: &Ws<S>) -> Option<CloseCode> {
    ws.peer_close().map(|frame| frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code))
}

/// What the session loop does with one received item; `Some(code)` ends it.
fn on_received<S: Stream>(
    item: Option<Result<Message, wsx::Error>>,
    ws: &Ws<S>,
    state: &State,
) -> Result<Option<Message>, Option<CloseCode>> {
    match item {
        Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
            state.metrics.received(m.len());
            Ok(Some(m))
        }
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(e.close_code().or_else(|| peer_code(ws))),
        None => Err(peer_code(ws).or(Some(CloseCode::ABNORMAL))),
    }
}

/// Closes with `code` (bounded: a peer that does not answer is dropped). Boxed: rare, and its
/// timer would otherwise make every session's future larger.
async fn close<S: Stream>(ws: &mut Ws<S>, code: CloseCode, reason: &str) -> Option<CloseCode> {
    let closing = tokio::time::timeout(Duration::from_secs(2), ws.close(code, reason));
    let _ = Box::pin(closing).await;
    Some(code)
}

/// The timer of a token's expiry (boxed: only sessions with a token pay for it).
type Expiry = Option<Pin<Box<Sleep>>>;

fn expiry(grant: Option<&Grant>) -> Expiry {
    let left = |g: &Grant| g.expires.duration_since(SystemTime::now()).unwrap_or_default();
    grant.map(|g| Box::pin(tokio::time::sleep(left(g))))
}

/// Fires when the token expires; never without one.
async fn expired(timer: &mut Expiry) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// A connection whose token expired is closed: 1008 (policy violation).
async fn expire<S: Stream>(ws: &mut Ws<S>, state: &State) -> Option<CloseCode> {
    state.metrics.token_expired.fetch_add(1, Relaxed);
    close(ws, CloseCode::POLICY_VIOLATION, "token expired").await
}

async fn echo<S: Stream>(
    ws: &mut Ws<S>,
    grant: Option<&Grant>,
    state: &State,
) -> Option<CloseCode> {
    // One future for the whole session: made anew per message, it would register with the
    // notifier (a shared lock) and unregister for every message.
    let stop = state.shutdown.stopped();
    tokio::pin!(stop);
    let mut expiry = expiry(grant);
    loop {
        tokio::select! {
            // In order (no random draw per message): stop first, it costs one atomic load.
            biased;
            () = &mut stop => {
                return close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
            }
            () = expired(&mut expiry) => return expire(ws, state).await,
            item = ws.recv() => match on_received(item, ws, state) {
                Ok(Some(message)) => {
                    let len = message.len();
                    // `feed` queues; the next `recv` writes a burst of echoes in one write.
                    if let Err(e) = ws.feed(message).await {
                        return e.close_code().or_else(|| peer_code(ws));
                    }
                    state.metrics.sent(len);
                }
                Ok(None) => {}
                Err(code) => return code,
            },
        }
    }
}

async fn chat<S: Stream>(
    ws: &mut Ws<S>,
    seat: &mut Seat,
    client: IpAddr,
    grant: Option<&Grant>,
    state: &State,
) -> Option<CloseCode> {
    if let Err(code) = welcome(ws, seat, state).await {
        return code;
    }
    let (member, superchat) = (&mut seat.membership, seat.superchat);
    let stop = state.shutdown.stopped();
    tokio::pin!(stop);
    let mut expiry = expiry(grant);
    // Loopback clients (local tools, benchmarks) are not limited.
    let (messages, bytes) = (state.args.room_rate, state.args.room_bytes_rate);
    let limited = !client.to_canonical().is_loopback();
    let rate = RoomRate::new(
        Some(messages).filter(|_| limited),
        Some(bytes).filter(|_| limited),
        Instant::now(),
    );
    let mut gate = Gate { grant, rate, dropping: false, superchat };
    loop {
        tokio::select! {
            // Stop first; then deliver before reading more: a member falls behind only when its
            // own connection does not take data, never because it talks faster than it listens.
            biased;
            () = &mut stop => {
                return close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
            }
            () = expired(&mut expiry) => return expire(ws, state).await,
            item = member.receiver.recv() => match item {
                Ok(event) => {
                    if !member.keeps_up(&event) {
                        return slow(ws, state, "too slow: fell behind the room").await;
                    }
                    if let Err(code) = hand_over(ws, member, superchat, &event, state).await {
                        return code;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return slow(ws, state, "too slow: fell behind the room").await;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            item = ws.recv() => match on_received(item, ws, state) {
                Ok(Some(message)) => {
                    if let Err(code) = gate.pass(ws, member, message, state).await {
                        return code;
                    }
                }
                Ok(None) => {}
                Err(code) => return code,
            },
        }
    }
}

/// A superchat member's first frames: the welcome, then what it asked to see first.
async fn welcome<S: Stream>(
    ws: &mut Ws<S>,
    seat: &mut Seat,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    let Some((start, replay)) = seat.entry.take().filter(|_| seat.superchat) else { return Ok(()) };
    let (room, member) = (seat.membership.room(), &seat.membership.member);
    if let Some(resume) = superchat::resumed(&start, &replay) {
        state.metrics.resumes[resume as usize].fetch_add(1, Relaxed);
    }
    state.metrics.replayed.fetch_add(replay.posted.len() as u64, Relaxed);
    deliver_message(ws, superchat::welcome(room, member, &start, &replay), state).await?;
    for posted in &replay.posted {
        deliver(ws, superchat::posted(posted), state).await?;
    }
    Ok(())
}

/// Hands a room event to this member: the room's messages new to it (as they were sent, or
/// as superchat frames), others coming and going (superchat), its own message refused by the
/// bus (a notice). `Err` ends the session.
async fn hand_over<S: Stream>(
    ws: &mut Ws<S>,
    member: &Membership,
    superchat: bool,
    event: &Event,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    // A room's message is borrowed: every member shares it, not even a reference count is
    // touched per member.
    for posted in event.posted().iter().filter(|posted| member.is_new(posted)) {
        let message = if superchat { superchat::posted(posted) } else { posted.relayed() };
        deliver(ws, message, state).await?;
    }
    match notice(member, superchat, event) {
        Some(notice) => deliver_message(ws, notice, state).await,
        None => Ok(()),
    }
}

/// What a room event that is not a message tells this member, if anything: others coming and
/// going (superchat), its own message refused by the bus.
fn notice(member: &Membership, superchat: bool, event: &Event) -> Option<Message> {
    match event {
        Event::Joined(m) | Event::Left(m) if superchat && m.id != member.member.id => {
            superchat::presence(event)
        }
        Event::Refused(id) if *id == member.member.id => {
            Some(undelivered_notice(superchat, &Undelivered::BrokerDown))
        }
        _ => None,
    }
}

/// Queues a room message for this member; `Err` ends the session.
async fn deliver<S: Stream>(
    ws: &mut Ws<S>,
    message: &Prepared,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    let len = message.len();
    match within(state.args.slow_timeout, ws.feed_prepared(message)).await {
        Ok(Ok(())) => {
            state.metrics.sent(len);
            Ok(())
        }
        Ok(Err(e)) => Err(e.close_code().or_else(|| peer_code(ws))),
        Err(_) => Err(slow(ws, state, "too slow: the connection did not take data").await),
    }
}

/// Queues a message of this member's own (a welcome, a notice); `Err` ends the session.
async fn deliver_message<S: Stream>(
    ws: &mut Ws<S>,
    message: Message,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    deliver(ws, &Prepared::new(message).expect("a data message"), state).await
}

/// What a member's message meets on its way into the room: the room limits, the token's right
/// to write, and (with a token) its author's name.
struct Gate<'a> {
    grant: Option<&'a Grant>,
    rate: RoomRate,
    /// Whether the last message was dropped over the limits (one notice per run of drops).
    dropping: bool,
    /// Whether notices are superchat `error` frames.
    superchat: bool,
}

impl Gate<'_> {
    /// Publishes `message`, or drops it with a notice to the sender, `{"system": why,
    /// "dropped": true, "reason": "rate" | "no_publish"}` (over the limits, one notice per run
    /// of dropped messages). `Err` ends the session.
    async fn pass<S: Stream>(
        &mut self,
        ws: &mut Ws<S>,
        member: &Membership,
        message: Message,
        state: &State,
    ) -> Result<(), Option<CloseCode>> {
        if !self.rate.allow(message.len(), Instant::now()) {
            state.metrics.dropped_rate.fetch_add(1, Relaxed);
            if std::mem::replace(&mut self.dropping, true) {
                return Ok(());
            }
            let why = "rate limit: messages are dropped until you send more slowly";
            return dropped(ws, self.superchat, why, "rate", state).await;
        }
        self.dropping = false;
        let Some(grant) = self.grant else { return publish(ws, member, message, state).await };
        if !grant.publish {
            state.metrics.dropped_no_publish.fetch_add(1, Relaxed);
            let why = "your token does not allow writing to this room: message dropped";
            return dropped(ws, self.superchat, why, "no_publish", state).await;
        }
        publish(ws, member, signed(message, &grant.user), state).await
    }
}

/// `message` with its author's name: a text message that is a JSON object gets `"name": user`
/// (whatever name it claimed); other messages are sent as they are.
fn signed(message: Message, user: &str) -> Message {
    let Some(text) = message.as_text() else { return message };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut object)) => {
            object.insert("name".to_string(), Value::from(user));
            Message::text(Value::Object(object).to_string())
        }
        _ => message,
    }
}

/// Tells the sender its message was dropped.
async fn dropped<S: Stream>(
    ws: &mut Ws<S>,
    superchat: bool,
    why: &str,
    reason: &str,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    let notice = if superchat {
        superchat::error(reason, why)
    } else {
        Message::text(json!({ "system": why, "dropped": true, "reason": reason }).to_string())
    };
    deliver_message(ws, notice, state).await
}

/// The notice to a sender whose message reached nobody (Redis down): `chat`, a JSON object
/// `{"system": why, "undelivered": true}`; `superchat`, an `error` frame (`broker_down`).
fn undelivered_notice(superchat: bool, why: &Undelivered) -> Message {
    if superchat {
        superchat::error("broker_down", &why.to_string())
    } else {
        Message::text(json!({ "system": why.to_string(), "undelivered": true }).to_string())
    }
}

/// Sends a member's message to its room. When it reaches nobody (Redis down), the sender gets a
/// notice instead and stays connected.
async fn publish<S: Stream>(
    ws: &mut Ws<S>,
    member: &Membership,
    message: Message,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    let Err(why) = member.publish(message).await else { return Ok(()) };
    let superchat = ws.subprotocol() == Some("superchat");
    deliver_message(ws, undelivered_notice(superchat, &why), state).await
}

/// A member that cannot keep up leaves, so that the room does not wait for it.
async fn slow<S: Stream>(ws: &mut Ws<S>, state: &State, reason: &str) -> Option<CloseCode> {
    state.metrics.slow_disconnects.fetch_add(1, Relaxed);
    close(ws, CloseCode::TRY_AGAIN_LATER, reason).await
}
