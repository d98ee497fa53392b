//! [`Connection`]: one WebSocket connection after the handshake, as a state machine over bytes.
//!
//! # The driving contract
//!
//! The I/O layer moves bytes; the connection does everything else.
//!
//! 1. **Network → core:** bytes read from the socket go to [`receive`](Connection::receive);
//!    the end of the stream goes to [`receive_eof`](Connection::receive_eof).
//! 2. **Core → application:** [`next_message`](Connection::next_message) until it returns
//!    `Ok(None)`. Pings are answered and Close frames echoed by the core itself; an error means
//!    the peer broke the protocol, and the Close frame that says so is already queued.
//! 3. **Application → core:** [`send`](Connection::send) (or
//!    [`send_fragment`](Connection::send_fragment) for streamed messages).
//! 4. **Core → network:** write every chunk of [`next_transmit`](Connection::next_transmit)
//!    (or write from [`transmit_slices`](Connection::transmit_slices) and report what was
//!    written with [`advance_transmit`](Connection::advance_transmit)). Once
//!    [`should_close_tcp`](Connection::should_close_tcp) is true, close the socket.
//! 5. **Time → core:** call [`handle_timeout`](Connection::handle_timeout) once when the
//!    connection starts, then whenever the instant of
//!    [`poll_timeout`](Connection::poll_timeout) has come (it may already have: bytes arrived
//!    or a close began, and the timers need the time). Keepalive pings, the idle timeout and
//!    the close timeout are decided here ([`Config`]), so every I/O layer gets the same policy.
//!
//! Backpressure: while [`wants_read`](Connection::wants_read) is false, hand the application
//! its messages before reading more.
//!
//! The core reads no clock and does no I/O: time is passed in.

use std::io::IoSlice;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

use crate::assemble::Assembler;
use crate::close::{CloseHandshake, CloseState, Reply};
use crate::config::{Config, Limits};
use crate::deflate::codec::{Deflater, Inflater};
use crate::error::{ProtocolError, UsageError};
use crate::frame::decode::FrameDecoder;
use crate::frame::encode::Outgoing;
use crate::frame::OpCode;
use crate::handshake::Negotiated;
use crate::message::{CloseCode, CloseFrame, Message, Utf8Bytes};
use crate::prepared::Prepared;
use crate::timers::{Due, Timeout, Timers};
use crate::utf8::Utf8Validator;
use crate::Role;

/// The largest close reason: 125 bytes of control payload minus the 2-byte code.
const MAX_CLOSE_REASON: usize = 123;

/// Undecoded bytes the core takes before [`Connection::wants_read`] asks the I/O layer to let
/// the application read first.
const RECEIVE_WINDOW: usize = 256 * 1024;

/// A receive buffer up to this large is kept once everything in it was decoded (and a new one
/// starts this large): a connection exchanging small messages allocates none per message.
pub(crate) const RECEIVE_KEEP: usize = 256;

/// The payload of keepalive pings.
const KEEPALIVE_PING: &[u8] = b"wsx-keepalive";

/// One WebSocket connection, client or server, after the opening handshake.
///
/// ```
/// use wsx_proto::{Config, Connection, Message, Negotiated, Role};
/// let mut client = Connection::new(Role::Client, &Negotiated::default(), Config::default());
/// let mut server = Connection::new(Role::Server, &Negotiated::default(), Config::default());
///
/// client.send(Message::text("Hello")).unwrap();
/// while let Some(bytes) = client.next_transmit() {
///     server.receive(&bytes);
/// }
/// assert_eq!(server.next_message().unwrap(), Some(Message::text("Hello")));
/// assert_eq!(server.next_message().unwrap(), None); // nothing more for now
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    decoder: FrameDecoder,
    assembler: Assembler,
    close: CloseHandshake,
    /// Received bytes not yet decoded.
    incoming: BytesMut,
    outgoing: Outgoing,
    /// Masking keys, for a client (boxed: a server, which never masks, does not pay for it).
    rng: Option<Box<ChaCha12Rng>>,
    /// The end of the TCP stream has been received, and is processed once `incoming` is
    /// decoded (an input condition, not a close state: bytes before it still count).
    input_ended: bool,
    /// Keepalive, idle and close timers, driven by the time the I/O layer passes in.
    timers: Timers,
    /// `next_message` found nothing to deliver in what was received: only more bytes help.
    starved: bool,
    /// A fragmented message being sent: whether it is text, and its UTF-8 state.
    sending: Option<(bool, Utf8Validator)>,
    /// permessage-deflate for what we send, if negotiated (and the window allows it); boxed,
    /// like the inflater: a connection without it does not carry its room.
    deflater: Option<Box<Deflater>>,
    /// Messages shorter than this are sent uncompressed.
    deflate_threshold: usize,
}

impl Connection {
    /// A connection that speaks as `role` with what the handshake `negotiated`.
    pub fn new(role: Role, negotiated: &Negotiated, config: Config) -> Self {
        let limits: Limits = config.limits;
        let deflate = negotiated.deflate;
        let (deflater, inflater) = match deflate {
            None => (None, None),
            Some(params) => {
                let ((own_bits, own_fresh), (peer_bits, peer_fresh)) = params.for_role(role);
                (
                    Deflater::new(params.level(), own_bits, own_fresh).map(Box::new),
                    Some(Box::new(Inflater::new(peer_bits, peer_fresh))),
                )
            }
        };
        let rng = (role == Role::Client).then(|| {
            Box::new(match config.rng_seed {
                Some(seed) => ChaCha12Rng::from_seed(seed),
                None => {
                    let mut seed = [0; 32];
                    getrandom::fill(&mut seed)
                        .expect("the operating system's random source failed");
                    ChaCha12Rng::from_seed(seed)
                }
            })
        });
        Self {
            role,
            decoder: FrameDecoder::new(role, deflate.is_some(), limits.frame_size()),
            assembler: Assembler::new(limits.message_size(), inflater),
            close: CloseHandshake::new(role),
            incoming: BytesMut::new(),
            outgoing: Outgoing::default(),
            rng,
            input_ended: false,
            timers: Timers::new(config.timeouts),
            starved: true,
            sending: None,
            deflater,
            deflate_threshold: deflate.map_or(usize::MAX, |p| p.threshold()),
        }
    }

    /// Which side of the connection this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection stands in the closing handshake.
    pub fn close_state(&self) -> CloseState {
        self.close.state()
    }

    /// Whether no frame will be sent or delivered any more.
    pub fn is_closed(&self) -> bool {
        self.close.state() == CloseState::Closed
    }

    /// Whether the I/O layer should close the TCP connection now: the connection is closed,
    /// everything queued has been taken or written ([`pending_transmit`](Self::pending_transmit)
    /// is 0), and it is this side's turn (the server closes first, RFC 6455 §7.1.1; a client
    /// closes once the server has, or at once after a failure).
    pub fn should_close_tcp(&self) -> bool {
        self.outgoing.len() == 0 && self.close.should_close_tcp()
    }

    /// The Close frame the peer sent, once it arrived (`Some(None)`: one without a code, 1005).
    pub fn peer_close(&self) -> Option<&Option<CloseFrame>> {
        self.close.received()
    }

    /// Bytes of buffer the connection holds for what it received (undecoded bytes and the
    /// message being assembled): what a peer can make it hold.
    pub fn receive_buffer_capacity(&self) -> usize {
        self.incoming.capacity() + self.assembler.buffer_capacity()
    }

    /// Bytes queued for the network and not yet taken by [`next_transmit`](Self::next_transmit)
    /// or written ([`advance_transmit`](Self::advance_transmit)).
    pub fn pending_transmit(&self) -> usize {
        self.outgoing.len()
    }

    /// Hands bytes read from the network to the connection. Bytes after the peer's Close frame,
    /// or after the connection failed, are discarded.
    ///
    /// With keepalive or an idle timeout configured, the bytes count as received at the next
    /// [`handle_timeout`](Self::handle_timeout), which [`poll_timeout`](Self::poll_timeout)
    /// then asks for at once.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.close.may_receive() {
            if self.incoming.capacity() == 0 && !bytes.is_empty() {
                self.incoming.reserve(bytes.len().max(RECEIVE_KEEP));
            }
            self.incoming.extend_from_slice(bytes);
            self.timers.received();
            self.starved = false;
        }
    }

    /// Whether the I/O layer should read more now: false while more than a window (256 KiB)
    /// of received bytes waits to be decoded and [`next_message`](Self::next_message) has not
    /// been asked since they came, i.e. the application is behind. Never false when only more
    /// bytes let a message complete.
    pub fn wants_read(&self) -> bool {
        self.starved || self.incoming.len() < RECEIVE_WINDOW
    }

    /// Tells the connection that the network stream ended. Bytes received before still count.
    pub fn receive_eof(&mut self) {
        self.input_ended = true;
        if !self.close.may_receive() {
            self.close.recv_eof();
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` when no timer
    /// is armed. An instant that has already passed means "as soon as possible".
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.close.should_close_tcp() {
            return None;
        }
        self.timers.next(self.close.may_send(), self.close.awaits_peer())
    }

    /// Tells the connection the time: runs the timers that are due. Returns the timeout that
    /// ended the connection, if one did (its Close frame, if any, is queued, and
    /// [`should_close_tcp`](Self::should_close_tcp) is then true).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wsx_proto::{Config, Connection, Message, Negotiated, Role, Timeout};
    /// let config = Config::default().idle_timeout(Some(Duration::from_secs(60)));
    /// let mut conn = Connection::new(Role::Server, &Negotiated::default(), config);
    /// let start = Instant::now();
    /// assert_eq!(conn.handle_timeout(start), None); // starts the clock
    /// assert_eq!(conn.poll_timeout(), Some(start + Duration::from_secs(60)));
    /// assert_eq!(conn.handle_timeout(start + Duration::from_secs(60)), Some(Timeout::Idle));
    /// let close = conn.next_transmit().unwrap(); // Close 1001 "idle timeout"
    /// assert_eq!(&close[..4], [0x88, 14, 0x03, 0xE9]);
    /// assert!(conn.should_close_tcp());
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timeout> {
        if self.close.should_close_tcp() {
            return None;
        }
        let due = self.timers.advance(now, self.close.may_send(), self.close.awaits_peer())?;
        match due {
            Due::Ping => {
                self.push_frame(true, false, OpCode::Ping, Bytes::from_static(KEEPALIVE_PING));
                None
            }
            Due::Expired(Timeout::Close) => {
                self.incoming = BytesMut::new();
                self.close.give_up().then_some(Timeout::Close)
            }
            Due::Expired(timeout) => {
                let code = match timeout {
                    Timeout::Keepalive => CloseCode::INTERNAL_ERROR,
                    _ => CloseCode::GOING_AWAY,
                };
                self.fail_with(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(timeout.as_str()),
                });
                Some(timeout)
            }
        }
    }

    /// The next message from the peer: `Ok(None)` when more bytes are needed.
    ///
    /// An `Err` is reported once: the peer broke the protocol, the matching Close frame is queued
    /// for [`next_transmit`](Self::next_transmit), and nothing more is delivered. A peer that
    /// vanished without a Close frame is [`ProtocolError::UnexpectedEof`] (1006).
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        let next = self.decode_next();
        self.starved = matches!(next, Ok(None));
        next
    }

    fn decode_next(&mut self) -> Result<Option<Message>, ProtocolError> {
        while self.close.may_receive() {
            let piece = match self.decoder.decode(&mut self.incoming) {
                Ok(Some(piece)) => piece,
                Ok(None) if self.input_ended => {
                    self.incoming = BytesMut::new();
                    if self.close.recv_eof() {
                        return Err(ProtocolError::UnexpectedEof);
                    }
                    return Ok(None);
                }
                Ok(None) => {
                    // Everything received was used: a small buffer is kept for the next read;
                    // a larger one is given back, so that an idle connection holds little, and
                    // so is one that shares memory with a delivered message, which would keep
                    // the message's memory alive after the application dropped it. (`|`, not
                    // `||`: the decoder's flag is taken, so cleared, every time.)
                    if self.incoming.is_empty()
                        && (self.decoder.take_shared() | (self.incoming.capacity() > RECEIVE_KEEP))
                    {
                        self.incoming = BytesMut::new();
                    }
                    return Ok(None);
                }
                Err(e) => return Err(self.fail(e)),
            };
            let message = match piece.header.opcode {
                OpCode::Ping => {
                    if self.close.may_send() {
                        self.push_frame(true, false, OpCode::Pong, piece.payload.clone());
                    }
                    Message::Ping(piece.payload)
                }
                OpCode::Pong => Message::Pong(piece.payload),
                OpCode::Close => {
                    let frame = match parse_close(piece.payload) {
                        Ok(frame) => frame,
                        Err(e) => return Err(self.fail(e)),
                    };
                    if let Reply::Close(reply) = self.close.recv_close(frame.clone()) {
                        self.push_close(reply.as_ref());
                    }
                    self.closing_started();
                    self.incoming = BytesMut::new();
                    Message::Close(frame)
                }
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    match self.assembler.push(piece) {
                        Ok(Some(message)) => message,
                        Ok(None) => continue,
                        Err(e) => return Err(self.fail(e)),
                    }
                }
            };
            return Ok(Some(message));
        }
        Ok(None)
    }

    /// Queues a message for the peer.
    ///
    /// Sending `Message::Close` starts the closing handshake: afterwards nothing more may be
    /// sent. A ping, pong or close payload is limited to 125 bytes.
    pub fn send(&mut self, message: Message) -> Result<(), UsageError> {
        if let Message::Close(frame) = &message {
            if let Some(frame) = frame {
                if !frame.code.is_sendable() {
                    return Err(UsageError::InvalidCloseCode(frame.code.as_u16()));
                }
                if frame.reason.len() > MAX_CLOSE_REASON {
                    return Err(UsageError::ControlTooLong(frame.reason.len() + 2));
                }
            }
            self.close.send_close()?;
            self.push_close(frame.as_ref());
            self.closing_started();
            return Ok(());
        }
        if !self.close.may_send() {
            return Err(UsageError::Closed);
        }
        match message {
            Message::Text(_) | Message::Binary(_) if self.sending.is_some() => {
                Err(UsageError::Fragmentation("a fragmented message is being sent"))
            }
            Message::Text(text) => {
                self.push_data(OpCode::Text, text.into_bytes());
                Ok(())
            }
            Message::Binary(data) => {
                self.push_data(OpCode::Binary, data);
                Ok(())
            }
            Message::Ping(data) | Message::Pong(data) if data.len() > 125 => {
                Err(UsageError::ControlTooLong(data.len()))
            }
            Message::Ping(data) => {
                self.push_frame(true, false, OpCode::Ping, data);
                Ok(())
            }
            Message::Pong(data) => {
                self.push_frame(true, false, OpCode::Pong, data);
                Ok(())
            }
            Message::Close(_) => unreachable!("handled above"),
        }
    }

    /// Queues a message prepared for many connections ([`Prepared`]): the same payload bytes
    /// (shared, not copied) and, with permessage-deflate without context takeover, the same
    /// compressed bytes, made once for every connection with the same settings. Otherwise the
    /// same as [`send`](Self::send) with the message.
    pub fn send_prepared(&mut self, prepared: &Prepared) -> Result<(), UsageError> {
        if !self.close.may_send() {
            return Err(UsageError::Closed);
        }
        if self.sending.is_some() {
            return Err(UsageError::Fragmentation("a fragmented message is being sent"));
        }
        let (opcode, payload) = (prepared.opcode(), prepared.payload());
        let shared = match &self.deflater {
            Some(deflater) if payload.len() >= self.deflate_threshold => {
                match deflater
                    .shareable()
                    .and_then(|(level, bits)| prepared.compressed(level, bits))
                {
                    Some(compressed) => Some(compressed),
                    // A deflater with context, or other settings: this connection's own.
                    None => {
                        self.push_data(opcode, payload.clone());
                        return Ok(());
                    }
                }
            }
            _ => None,
        };
        let mask = self.rng.as_mut().map(|rng| rng.next_u32().to_ne_bytes());
        match shared {
            Some(compressed) => self.outgoing.push_shared(true, true, opcode, mask, compressed),
            None => self.outgoing.push_shared(true, false, opcode, mask, payload),
        }
        Ok(())
    }

    /// Queues one fragment of a message that is sent in pieces (RFC 6455 §5.4).
    ///
    /// The first fragment names the message's type with `OpCode::Text` or `OpCode::Binary`; the
    /// others use `OpCode::Continuation`; `fin` marks the last. Control messages may be sent
    /// with [`send`](Self::send) between fragments; data messages may not. The fragments of a
    /// text message must together be valid UTF-8, and are refused as soon as they are not.
    ///
    /// ```
    /// use wsx_proto::{Connection, Message, Negotiated, OpCode, Role};
    /// let mut conn = Connection::new(Role::Server, &Negotiated::default(), Default::default());
    /// conn.send_fragment(OpCode::Text, "Hel".into(), false).unwrap();
    /// conn.send_fragment(OpCode::Continuation, "lo".into(), true).unwrap();
    /// let mut wire = Vec::new();
    /// while let Some(chunk) = conn.next_transmit() { wire.extend_from_slice(&chunk); }
    /// assert_eq!(wire, [0x01, 0x03, b'H', b'e', b'l', 0x80, 0x02, b'l', b'o']); // RFC 6455 §5.7
    /// ```
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        fin: bool,
    ) -> Result<(), UsageError> {
        if !self.close.may_send() {
            return Err(UsageError::Closed);
        }
        let (text, mut utf8) = match (opcode, self.sending.take()) {
            (OpCode::Text | OpCode::Binary, None) => {
                (opcode == OpCode::Text, Utf8Validator::default())
            }
            (OpCode::Continuation, Some(state)) => state,
            (OpCode::Continuation, None) => {
                return Err(UsageError::Fragmentation("a continuation needs a first fragment"))
            }
            (OpCode::Text | OpCode::Binary, Some(state)) => {
                self.sending = Some(state);
                return Err(UsageError::Fragmentation("a fragmented message is being sent"));
            }
            (OpCode::Close | OpCode::Ping | OpCode::Pong, state) => {
                self.sending = state;
                return Err(UsageError::Fragmentation("control frames are sent whole, with send"));
            }
        };
        if text {
            let valid = utf8.feed(&payload).is_ok() && (!fin || utf8.finish().is_ok());
            if !valid {
                self.sending = (opcode == OpCode::Continuation).then_some((text, utf8));
                return Err(UsageError::Fragmentation("the text is not valid UTF-8"));
            }
        }
        // With deflate, a fragmented message is one compressed stream cut into frames, RSV1 on
        // the first (RFC 7692 §6.1).
        match &mut self.deflater {
            Some(deflater) => {
                let mut out = Vec::with_capacity(payload.len() / 2 + 64);
                deflater.compress(&payload, &mut out, fin);
                let first = opcode != OpCode::Continuation;
                self.push_frame(fin, first, opcode, Bytes::from(out));
            }
            None => self.push_frame(fin, false, opcode, payload),
        }
        if !fin {
            self.sending = Some((text, utf8));
        }
        Ok(())
    }

    /// The next chunk of bytes to write to the network, oldest first.
    pub fn next_transmit(&mut self) -> Option<Bytes> {
        self.outgoing.next()
    }

    /// The bytes to write next, as slices for one vectored write, without taking them out of
    /// the queue (what an I/O layer that cannot tell how much a write takes wants): fills `dst`
    /// oldest first and returns how many slices it filled (0 when nothing is queued). Say how
    /// many bytes were written with [`advance_transmit`](Self::advance_transmit).
    ///
    /// Writing this way, a connection exchanging small messages reuses one small buffer and
    /// allocates nothing per message.
    ///
    /// ```
    /// use std::io::{IoSlice, Write};
    /// use wsx_proto::{Connection, Message, Negotiated, Role};
    /// let mut conn = Connection::new(Role::Server, &Negotiated::default(), Default::default());
    /// conn.send(Message::text("Hello")).unwrap();
    /// let mut socket = Vec::new(); // any `Write`
    /// while conn.pending_transmit() > 0 {
    ///     let mut slices = [IoSlice::new(&[]); 16];
    ///     let filled = conn.transmit_slices(&mut slices);
    ///     let written = socket.write_vectored(&slices[..filled]).unwrap();
    ///     conn.advance_transmit(written);
    /// }
    /// assert_eq!(socket, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    /// ```
    pub fn transmit_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.outgoing.chunks(dst)
    }

    /// Drops the first `n` queued bytes, which the I/O layer wrote from
    /// [`transmit_slices`](Self::transmit_slices).
    ///
    /// # Panics
    /// If fewer than `n` bytes are queued ([`pending_transmit`](Self::pending_transmit)): that
    /// is a bug in the caller.
    pub fn advance_transmit(&mut self, n: usize) {
        self.outgoing.advance(n);
    }

    /// Fails the connection because the peer broke the protocol: queue the Close frame that
    /// says why (RFC 6455 §7.1.7) and stop reading.
    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        let reason = truncate(&error.to_string(), MAX_CLOSE_REASON);
        self.fail_with(CloseFrame { code: error.close_code(), reason: Utf8Bytes::from(reason) });
        error
    }

    /// Gives up on the connection with `frame` (sent unless a Close was sent already).
    fn fail_with(&mut self, frame: CloseFrame) {
        if let Reply::Close(frame) = self.close.fail(frame) {
            self.push_close(frame.as_ref());
        }
        self.incoming = BytesMut::new();
    }

    /// The closing handshake began or advanced: if we now wait for the peer, the close timer
    /// bounds the wait.
    fn closing_started(&mut self) {
        if self.close.awaits_peer() {
            self.timers.await_peer();
        }
    }

    fn push_close(&mut self, frame: Option<&CloseFrame>) {
        let payload = match frame {
            None => Bytes::new(),
            Some(f) => {
                let mut p = Vec::with_capacity(2 + f.reason.len());
                p.extend_from_slice(&f.code.as_u16().to_be_bytes());
                p.extend_from_slice(f.reason.as_bytes());
                Bytes::from(p)
            }
        };
        self.push_frame(true, false, OpCode::Close, payload);
    }

    /// A whole data message: compressed when deflate is on and it is long enough.
    fn push_data(&mut self, opcode: OpCode, payload: Bytes) {
        match &mut self.deflater {
            Some(deflater) if payload.len() >= self.deflate_threshold => {
                let mut out = Vec::with_capacity(payload.len() / 2 + 64);
                deflater.compress(&payload, &mut out, true);
                self.push_frame(true, true, opcode, Bytes::from(out));
            }
            _ => self.push_frame(true, false, opcode, payload),
        }
    }

    fn push_frame(&mut self, fin: bool, rsv1: bool, opcode: OpCode, payload: Bytes) {
        let mask = self.rng.as_mut().map(|rng| rng.next_u32().to_ne_bytes());
        self.outgoing.push(fin, rsv1, opcode, mask, payload);
    }
}

/// Parses a Close frame's payload (RFC 6455 §5.5.1, §7.4).
fn parse_close(payload: Bytes) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::InvalidClosePayload),
        _ => {
            let code = CloseCode::from(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.as_u16()));
            }
            let reason =
                Utf8Bytes::try_from(payload.slice(2..)).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
