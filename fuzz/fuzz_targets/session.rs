//! A client and a server `Connection` driven through random interleavings: sends (whole and
//! fragmented, text and binary), pings, closes, transfers split at arbitrary points, time
//! passing, the end of the stream; with or without permessage-deflate.
//!
//! Invariants: nothing panics; every data message arrives intact and in order until a close;
//! the close state never goes backwards; a Close that arrives carries the code that was sent;
//! once both sides are closed and their bytes exchanged, both want TCP closed.
#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wsx_proto::{
    Accept, ClientRequest, CloseCode, CloseState, Config, Connection, DeflateConfig, Key, Limits,
    Message, OpCode, Role, Upgrade,
};

const MAX: usize = 1 << 20;

/// One side and what the fuzzer expects of it.
struct Side {
    conn: Connection,
    /// Data messages sent to this side and not yet received.
    expect: VecDeque<Message>,
    /// A fragmented message this side is sending: its kind and what it carries so far.
    sending: Option<(OpCode, Vec<u8>)>,
    /// Bytes queued for this side, not yet handed to it.
    inbox: Vec<u8>,
    /// The code of the Close its peer sent, if any.
    close_sent_to_it: Option<u16>,
    last_state: CloseState,
    failed: bool,
}

fn rank(state: CloseState) -> u8 {
    match state {
        CloseState::Open => 0,
        CloseState::CloseSent => 1,
        _ => 2,
    }
}

impl Side {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            expect: VecDeque::new(),
            sending: None,
            inbox: Vec::new(),
            close_sent_to_it: None,
            last_state: CloseState::Open,
            failed: false,
        }
    }

    fn check_state(&mut self) {
        let now = self.conn.close_state();
        assert!(rank(now) >= rank(self.last_state), "{:?} -> {now:?}", self.last_state);
        self.last_state = now;
    }

    /// Reads every message it can and checks each against what was sent.
    fn drain(&mut self) {
        loop {
            match self.conn.next_message() {
                Ok(Some(Message::Close(frame))) => {
                    if let Some(code) = self.close_sent_to_it {
                        assert_eq!(frame.map(|f| f.code.as_u16()), Some(code));
                    }
                    self.expect.clear();
                }
                Ok(Some(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    let expected = self.expect.pop_front().expect("a message nobody sent");
                    assert_eq!(message, expected, "delivered intact and in order");
                }
                Ok(Some(_)) => {} // pings and pongs
                Ok(None) => break,
                Err(_) => {
                    // Only a peer that breaks the protocol gets here; both sides are ours.
                    self.failed = true;
                    assert!(self.conn.is_closed());
                    break;
                }
            }
            self.check_state();
        }
        self.check_state();
    }
}

fn negotiated(deflate: Option<DeflateConfig>) -> (wsx_proto::Negotiated, wsx_proto::Negotiated) {
    let handshake =
        ClientRequest::new("ws://h/").deflate(deflate).build(Key::from_bytes([0; 16])).unwrap();
    let upgrade = Upgrade::from_request(handshake.request()).unwrap();
    let (response, server) = upgrade.respond(Accept::new().deflate(deflate)).unwrap();
    let client = handshake.verify(&response, Bytes::new()).unwrap();
    (client, server)
}

/// Moves what `from` queued to `to`'s inbox, then hands `to` the first `split` bytes of its
/// inbox (all of them for `usize::MAX`).
fn transfer(from: &mut Side, to: &mut Side, split: usize) {
    while let Some(chunk) = from.conn.next_transmit() {
        to.inbox.extend_from_slice(&chunk);
    }
    let take = split.min(to.inbox.len());
    let piece: Vec<u8> = to.inbox.drain(..take).collect();
    to.conn.receive(&piece);
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, ops)) = data.split_first() else { return };
    let deflate = match setup & 3 {
        0 => None,
        1 => Some(DeflateConfig::default()),
        2 => Some(DeflateConfig::default().no_context_takeover(true)),
        _ => Some(DeflateConfig::default().max_window_bits(9).threshold(0)),
    };
    let (client_negotiated, server_negotiated) = negotiated(deflate);
    let config = Config::default()
        .limits(Limits::default().max_message_size(MAX))
        .keepalive((setup & 4 != 0).then_some(Duration::from_secs(10)))
        .idle_timeout((setup & 8 != 0).then_some(Duration::from_secs(60)))
        .dangerous_rng_seed([setup; 32]);
    let mut sides = [
        Side::new(Connection::new(Role::Client, &client_negotiated, config.clone())),
        Side::new(Connection::new(Role::Server, &server_negotiated, config)),
    ];
    let start = Instant::now();
    let mut now = start;
    for side in &mut sides {
        side.conn.handle_timeout(now);
    }

    let mut ops = ops.iter().copied();
    while let Some(op) = ops.next() {
        let who = usize::from(op & 1);
        let arg = ops.next().unwrap_or(0);
        let (a, b) = sides.split_at_mut(1);
        let (me, peer) = if who == 0 { (&mut a[0], &mut b[0]) } else { (&mut b[0], &mut a[0]) };
        match (op >> 1) % 8 {
            // A whole message of `arg` bytes (text or binary by the low bit).
            0 | 1 => {
                let len = usize::from(arg) * 17 % 3000;
                let message = if arg & 1 == 0 {
                    Message::binary(vec![arg; len])
                } else {
                    Message::text("é".repeat(len / 2))
                };
                if me.sending.is_none() && me.conn.send(message.clone()).is_ok() {
                    peer.expect.push_back(message);
                }
            }
            // One fragment: starts, continues or ends a fragmented message.
            2 => {
                let piece = vec![b'a' + arg % 26; usize::from(arg % 40)];
                let fin = arg & 0x80 != 0;
                let (opcode, frame_op, mut so_far) = match me.sending.take() {
                    None if arg & 0x40 != 0 => (OpCode::Text, OpCode::Text, Vec::new()),
                    None => (OpCode::Binary, OpCode::Binary, Vec::new()),
                    Some((opcode, so_far)) => (opcode, OpCode::Continuation, so_far),
                };
                let continuing = frame_op == OpCode::Continuation;
                if me.conn.send_fragment(frame_op, Bytes::from(piece.clone()), fin).is_ok() {
                    so_far.extend_from_slice(&piece);
                    if fin {
                        peer.expect.push_back(match opcode {
                            OpCode::Text => Message::text(String::from_utf8(so_far).unwrap()),
                            _ => Message::binary(so_far),
                        });
                    } else {
                        me.sending = Some((opcode, so_far));
                    }
                } else if continuing {
                    me.sending = Some((opcode, so_far));
                }
            }
            3 => {
                let _ = me.conn.send(Message::Ping(Bytes::from(vec![arg; usize::from(arg % 126)])));
            }
            // Close with a sendable code.
            4 => {
                let code = [1000, 1001, 1003, 1008, 1011, 3000, 4999][usize::from(arg % 7)];
                if me.conn.send(Message::close(CloseCode::from(code), "bye")).is_ok() {
                    peer.close_sent_to_it = Some(code);
                }
            }
            // Bytes to the peer, split anywhere.
            5 | 6 => {
                let split = if arg == 255 { usize::MAX } else { usize::from(arg) * 7 };
                transfer(me, peer, split);
                peer.drain();
            }
            // Time passes.
            _ => {
                now += Duration::from_millis(u64::from(arg) * 500);
                for side in &mut sides {
                    if side.conn.poll_timeout().is_some_and(|t| t <= now) {
                        side.conn.handle_timeout(now);
                    }
                    side.check_state();
                }
            }
        }
        for side in &mut sides {
            side.check_state();
        }
    }

    // Finish: exchange everything both ways until nothing moves.
    for _ in 0..4 {
        let (a, b) = sides.split_at_mut(1);
        transfer(&mut a[0], &mut b[0], usize::MAX);
        b[0].drain();
        transfer(&mut b[0], &mut a[0], usize::MAX);
        a[0].drain();
    }
    let both_closed = sides.iter().all(|s| s.conn.is_closed());
    let any_failed = sides.iter().any(|s| s.failed);
    assert!(!any_failed, "two correct endpoints never fail each other");
    if both_closed {
        // The server closes TCP first; the client once it sees the server's FIN.
        assert!(sides[1].conn.should_close_tcp());
        sides[0].conn.receive_eof();
        sides[0].drain();
        assert!(sides[0].conn.should_close_tcp());
    } else {
        // Whatever was sent and not cut off by a close has arrived.
        for side in &sides {
            if side.conn.close_state() == CloseState::Open && side.close_sent_to_it.is_none() {
                assert!(side.expect.is_empty(), "{} messages not delivered", side.expect.len());
            }
        }
    }
});
