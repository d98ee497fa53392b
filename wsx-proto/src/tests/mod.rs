//! Protocol scenarios over an in-memory client/server [`Pair`]: every RFC 6455 §5 and §7 rule
//! that involves both sides has a named test here.

use bytes::Bytes;
use proptest::prelude::*;

use crate::*;

mod attacks;
mod limits;
mod prepared;
mod timers;

/// A client and a server `Connection` wired together in memory.
struct Pair {
    client: Connection,
    server: Connection,
}

impl Pair {
    fn new() -> Self {
        Self::with_config(Config::default())
    }

    fn with_config(config: Config) -> Self {
        let negotiated = Negotiated::default();
        Self {
            client: Connection::new(
                Role::Client,
                &negotiated,
                config.clone().dangerous_rng_seed([1; 32]),
            ),
            server: Connection::new(Role::Server, &negotiated, config),
        }
    }

    fn endpoint(&mut self, role: Role) -> &mut Connection {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// Moves every queued byte from `from` to its peer; returns the bytes.
    fn transfer(&mut self, from: Role) -> Vec<u8> {
        let mut wire = Vec::new();
        while let Some(chunk) = self.endpoint(from).next_transmit() {
            wire.extend_from_slice(&chunk);
        }
        let to = match from {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        self.endpoint(to).receive(&wire);
        wire
    }

    /// Every message `role` can read now (stops at the first error).
    fn drain(&mut self, role: Role) -> Vec<Result<Message, ProtocolError>> {
        let mut out = Vec::new();
        loop {
            match self.endpoint(role).next_message() {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
}

fn server() -> Connection {
    Connection::new(Role::Server, &Negotiated::default(), Config::default())
}

fn client() -> Connection {
    Connection::new(
        Role::Client,
        &Negotiated::default(),
        Config::default().dangerous_rng_seed([1; 32]),
    )
}

/// A frame header as a client sends it: masked, with the all-zero key, so the payload that
/// follows reads as it is.
pub(crate) fn client_header(first: u8, len: u64) -> Vec<u8> {
    let mut out = vec![first];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// What a client and a server agree on when both run permessage-deflate with `config`:
/// (the client's, the server's).
pub(crate) fn deflate_negotiated(config: DeflateConfig) -> (Negotiated, Negotiated) {
    let handshake =
        ClientRequest::new("ws://h/").deflate(Some(config)).build(Key::random()).unwrap();
    let upgrade = Upgrade::from_request(handshake.request()).unwrap();
    let (response, server) = upgrade.respond(Accept::new().deflate(Some(config))).unwrap();
    let client = handshake.verify(&response, Bytes::new()).unwrap();
    (client, server)
}

fn transmitted(conn: &mut Connection) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(chunk) = conn.next_transmit() {
        wire.extend_from_slice(&chunk);
    }
    wire
}

/// A frame as a client would send it (masked with a fixed key), written by hand so that
/// invalid frames can be built too.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    let mut body = payload.to_vec();
    apply_mask(key, &mut body);
    out.extend_from_slice(&body);
    out
}

/// The code of the last Close frame a connection queued, as the peer will read it.
fn queued_close_code(conn: &mut Connection) -> Option<u16> {
    let wire = transmitted(conn);
    let mut at = 0;
    let mut code = None;
    while let Ok(Some((header, len))) = FrameHeader::decode(&wire[at..]) {
        let end = at + len + header.payload_len as usize;
        let mut payload = wire[at + len..end].to_vec();
        if let Some(key) = header.mask {
            apply_mask(key, &mut payload);
        }
        if header.opcode == OpCode::Close {
            code = Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
        at = end;
    }
    code
}

// ---- data in both directions -------------------------------------------------------------

#[test]
fn text_and_binary_both_ways() {
    let mut pair = Pair::new();
    for role in [Role::Client, Role::Server] {
        let other = if role == Role::Client { Role::Server } else { Role::Client };
        pair.endpoint(role).send(Message::text("héllo")).unwrap();
        pair.endpoint(role).send(Message::binary(vec![0u8, 1, 2])).unwrap();
        pair.endpoint(role).send(Message::binary(vec![9u8; 70_000])).unwrap();
        pair.transfer(role);
        let got = pair.drain(other);
        assert_eq!(
            got,
            vec![
                Ok(Message::text("héllo")),
                Ok(Message::binary(vec![0u8, 1, 2])),
                Ok(Message::binary(vec![9u8; 70_000]))
            ]
        );
    }
}

/// RFC 6455 §5.1, §5.3: a client masks every frame with a fresh key; a server never masks.
#[test]
fn client_masks_and_server_does_not() {
    let mut c = client();
    c.send(Message::text("a")).unwrap();
    c.send(Message::text("a")).unwrap();
    let wire = transmitted(&mut c);
    assert_eq!(wire.len(), 14);
    assert_eq!(wire[1] & 0x80, 0x80);
    assert_eq!(wire[8] & 0x80, 0x80);
    assert_ne!(wire[2..6], wire[9..13], "each frame has its own masking key");
    let mut s = server();
    s.send(Message::text("a")).unwrap();
    assert_eq!(transmitted(&mut s), [0x81, 0x01, b'a']);
}

/// The seeded RNG makes a client's bytes exact, so tests can assert them.
#[test]
fn seeded_client_bytes_are_reproducible() {
    let mut a = client();
    let mut b = client();
    a.send(Message::text("same")).unwrap();
    b.send(Message::text("same")).unwrap();
    assert_eq!(transmitted(&mut a), transmitted(&mut b));
}

/// RFC 6455 §5.1: a server fails on an unmasked frame, a client on a masked one (1002).
#[test]
fn wrong_masking_direction_is_1002() {
    let mut s = server();
    s.receive(&[0x81, 0x01, b'a']);
    assert_eq!(s.next_message(), Err(ProtocolError::UnmaskedFrame));
    assert_eq!(queued_close_code(&mut s), Some(1002));
    let mut c = client();
    c.receive(&masked(0x81, b"a"));
    assert_eq!(c.next_message(), Err(ProtocolError::MaskedFrame));
    assert_eq!(queued_close_code(&mut c), Some(1002));
}

/// RFC 6455 §5.2: RSV bits without an extension, reserved opcodes: 1002.
#[test]
fn reserved_bits_and_opcodes_are_1002() {
    for first in [0xc1, 0xa1, 0x91, 0x83, 0x87, 0x8b, 0x8f] {
        let mut s = server();
        s.receive(&masked(first, b""));
        let err = s.next_message().unwrap_err();
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR, "first byte {first:#x}");
        assert_eq!(queued_close_code(&mut s), Some(1002));
    }
}

/// RFC 6455 §5.5: control frames over 125 bytes or fragmented: 1002.
#[test]
fn bad_control_frames_are_1002() {
    let mut s = server();
    s.receive(&masked(0x89, &[0; 126]));
    assert_eq!(s.next_message(), Err(ProtocolError::ControlFrameTooLong(126)));
    let mut s = server();
    s.receive(&masked(0x09, b"x"));
    assert_eq!(s.next_message(), Err(ProtocolError::FragmentedControlFrame));
    assert_eq!(queued_close_code(&mut s), Some(1002));
}

// ---- fragmentation ------------------------------------------------------------------------

/// RFC 6455 §5.4: fragments are joined and control frames may come between them.
#[test]
fn fragments_with_a_ping_between() {
    let mut s = server();
    s.receive(&masked(0x01, b"Hel"));
    s.receive(&masked(0x89, b"p"));
    s.receive(&masked(0x80, b"lo"));
    assert_eq!(s.next_message(), Ok(Some(Message::Ping(Bytes::from_static(b"p")))));
    assert_eq!(transmitted(&mut s), [0x8a, 0x01, b'p'], "the pong is queued at once");
    assert_eq!(s.next_message(), Ok(Some(Message::text("Hello"))));
}

/// RFC 6455 §5.4: a continuation with nothing to continue, or a new message inside one: 1002.
#[test]
fn fragmentation_errors_are_1002() {
    let mut s = server();
    s.receive(&masked(0x80, b"x"));
    assert_eq!(s.next_message(), Err(ProtocolError::UnexpectedContinuation));
    assert_eq!(queued_close_code(&mut s), Some(1002));
    let mut s = server();
    s.receive(&masked(0x01, b"x"));
    s.receive(&masked(0x81, b"y"));
    assert_eq!(s.next_message(), Err(ProtocolError::ExpectedContinuation));
    assert_eq!(queued_close_code(&mut s), Some(1002));
}

/// Sending in fragments: the sequence rules are enforced on our side too.
#[test]
fn fragmented_sending() {
    let mut pair = Pair::new();
    let c = &mut pair.client;
    assert!(c.send_fragment(OpCode::Continuation, Bytes::new(), true).is_err());
    c.send_fragment(OpCode::Binary, Bytes::from_static(b"ab"), false).unwrap();
    assert!(c.send(Message::binary(vec![1u8])).is_err(), "no data message inside a fragmented one");
    c.send(Message::Ping(Bytes::new())).unwrap();
    c.send_fragment(OpCode::Continuation, Bytes::from_static(b"cd"), true).unwrap();
    // text fragments must add up to UTF-8, split code points included
    c.send_fragment(OpCode::Text, Bytes::from_static(b"\xc3"), false).unwrap();
    c.send_fragment(OpCode::Continuation, Bytes::from_static(b"\xa9"), true).unwrap();
    assert!(c.send_fragment(OpCode::Text, Bytes::from_static(b"\xff"), true).is_err());
    pair.transfer(Role::Client);
    assert_eq!(
        pair.drain(Role::Server),
        vec![
            Ok(Message::Ping(Bytes::new())),
            Ok(Message::binary(&b"abcd"[..])),
            Ok(Message::text("é"))
        ]
    );
}

// ---- UTF-8 --------------------------------------------------------------------------------

/// RFC 6455 §8.1: invalid text fails with 1007, at the first bad byte, even mid-frame.
#[test]
fn invalid_utf8_fails_fast_mid_frame() {
    let mut s = server();
    let text = b"valid text then \xff and much more that has not arrived";
    let mut frame = masked(0x81, text);
    let bad_at = 6 + text.iter().position(|&b| b == 0xff).unwrap() + 1;
    let rest = frame.split_off(bad_at);
    s.receive(&frame);
    assert_eq!(s.next_message(), Err(ProtocolError::InvalidUtf8), "fails before the frame ends");
    assert_eq!(queued_close_code(&mut s), Some(1007));
    s.receive(&rest);
    assert_eq!(s.next_message(), Ok(None), "nothing after the failure");
}

#[test]
fn invalid_utf8_in_a_later_fragment_is_1007() {
    let mut s = server();
    s.receive(&masked(0x01, "κόσμε".as_bytes()));
    s.receive(&masked(0x00, b"\xed\xa0\x80")); // a surrogate
    assert_eq!(s.next_message(), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn text_split_inside_a_code_point_across_fragments() {
    let mut s = server();
    let euro = "€".as_bytes();
    s.receive(&masked(0x01, &euro[..1]));
    s.receive(&masked(0x00, &euro[1..2]));
    s.receive(&masked(0x80, &euro[2..]));
    assert_eq!(s.next_message(), Ok(Some(Message::text("€"))));
}

// ---- limits -------------------------------------------------------------------------------

/// A frame over the limit fails with 1009 when its header arrives: the payload is never buffered.
#[test]
fn oversized_frame_is_1009_at_the_header() {
    let mut s = Connection::new(
        Role::Server,
        &Negotiated::default(),
        Config::default().limits(Limits::default().max_message_size(1024)),
    );
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    s.receive(&header);
    assert_eq!(s.next_message(), Err(ProtocolError::FrameTooBig { size: 1 << 40, max: 1024 }));
    assert_eq!(queued_close_code(&mut s), Some(1009));
}

/// A message over the limit fails with 1009 at the header of the fragment that breaks it.
#[test]
fn oversized_message_is_1009() {
    let limits = Limits::default().max_message_size(100);
    let mut s =
        Connection::new(Role::Server, &Negotiated::default(), Config::default().limits(limits));
    s.receive(&masked(0x02, &[0; 60]));
    s.receive(&masked(0x80, &[0; 60]));
    assert_eq!(s.next_message(), Err(ProtocolError::MessageTooBig { size: 120, max: 100 }));
    assert_eq!(queued_close_code(&mut s), Some(1009));
}

// ---- ping/pong ----------------------------------------------------------------------------

/// RFC 6455 §5.5.2: a ping is answered with a pong carrying the same payload.
#[test]
fn ping_is_answered_by_the_core() {
    let mut pair = Pair::new();
    pair.client.send(Message::Ping(Bytes::from_static(b"are you there"))).unwrap();
    pair.transfer(Role::Client);
    assert_eq!(
        pair.drain(Role::Server),
        vec![Ok(Message::Ping(Bytes::from_static(b"are you there")))]
    );
    pair.transfer(Role::Server);
    assert_eq!(
        pair.drain(Role::Client),
        vec![Ok(Message::Pong(Bytes::from_static(b"are you there")))]
    );
}

// ---- closing ------------------------------------------------------------------------------

/// RFC 6455 §5.5.1, §7.1.1: the client closes, the server echoes the code and closes TCP
/// first; the client closes TCP once the server has.
#[test]
fn closing_handshake_started_by_the_client() {
    let mut pair = Pair::new();
    pair.client.send(Message::close(CloseCode::NORMAL, "done")).unwrap();
    assert_eq!(pair.client.close_state(), CloseState::CloseSent);
    assert_eq!(pair.client.send(Message::text("late")), Err(UsageError::Closed));
    pair.transfer(Role::Client);
    assert_eq!(pair.drain(Role::Server), vec![Ok(Message::close(CloseCode::NORMAL, "done"))]);
    assert!(pair.server.is_closed());
    assert!(!pair.server.should_close_tcp(), "the echo is not written yet");
    let echo = pair.transfer(Role::Server);
    assert_eq!(echo, [0x88, 0x02, 0x03, 0xe8], "the code is echoed");
    assert!(pair.server.should_close_tcp(), "the server closes TCP first");
    assert_eq!(pair.drain(Role::Client), vec![Ok(Message::close(CloseCode::NORMAL, ""))]);
    assert!(pair.client.is_closed());
    assert!(!pair.client.should_close_tcp(), "the client waits for the server's FIN");
    pair.client.receive_eof();
    assert_eq!(pair.client.next_message(), Ok(None), "EOF after the handshake is clean");
    assert!(pair.client.should_close_tcp());
}

#[test]
fn closing_handshake_started_by_the_server() {
    let mut pair = Pair::new();
    pair.server.send(Message::close(CloseCode::GOING_AWAY, "restart")).unwrap();
    pair.transfer(Role::Server);
    assert_eq!(
        pair.drain(Role::Client),
        vec![Ok(Message::close(CloseCode::GOING_AWAY, "restart"))]
    );
    pair.transfer(Role::Client);
    assert_eq!(pair.drain(Role::Server), vec![Ok(Message::close(CloseCode::GOING_AWAY, ""))]);
    assert!(pair.server.should_close_tcp());
}

/// Messages that arrive after we sent Close, before the peer's Close, are still delivered.
#[test]
fn messages_still_arrive_while_closing() {
    let mut pair = Pair::new();
    pair.server.send(Message::text("in flight")).unwrap();
    pair.client.send(Message::close(CloseCode::NORMAL, "")).unwrap();
    pair.transfer(Role::Server);
    assert_eq!(pair.drain(Role::Client), vec![Ok(Message::text("in flight"))]);
}

/// A Close without a code is reported as `Close(None)` (1005) and echoed without a code.
#[test]
fn close_without_code() {
    let mut s = server();
    s.receive(&masked(0x88, b""));
    assert_eq!(s.next_message(), Ok(Some(Message::Close(None))));
    assert_eq!(transmitted(&mut s), [0x88, 0x00]);
}

/// Nothing after the peer's Close is processed (RFC 6455 §5.5.1).
#[test]
fn data_after_close_is_ignored() {
    let mut s = server();
    let mut wire = masked(0x88, &1000u16.to_be_bytes());
    wire.extend_from_slice(&masked(0x81, b"after"));
    s.receive(&wire);
    s.receive(&masked(0x81, b"later"));
    assert_eq!(s.next_message(), Ok(Some(Message::close(CloseCode::NORMAL, ""))));
    assert_eq!(s.next_message(), Ok(None));
}

/// RFC 6455 §7.4: which close codes a peer may send.
#[test]
fn close_codes_table() {
    let valid = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ];
    let invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
    for code in valid {
        let mut s = server();
        s.receive(&masked(0x88, &u16::to_be_bytes(code)));
        assert_eq!(s.next_message(), Ok(Some(Message::close(code.into(), ""))), "{code}");
        assert_eq!(queued_close_code(&mut s), Some(code), "{code} echoed");
    }
    for code in invalid {
        let mut s = server();
        s.receive(&masked(0x88, &u16::to_be_bytes(code)));
        assert_eq!(s.next_message(), Err(ProtocolError::InvalidCloseCode(code)), "{code}");
        assert_eq!(queued_close_code(&mut s), Some(1002));
    }
}

#[test]
fn one_byte_close_payload_is_1002() {
    let mut s = server();
    s.receive(&masked(0x88, &[0x03]));
    assert_eq!(s.next_message(), Err(ProtocolError::InvalidClosePayload));
    assert_eq!(queued_close_code(&mut s), Some(1002));
}

#[test]
fn invalid_utf8_close_reason_is_1007() {
    let mut s = server();
    s.receive(&masked(0x88, b"\x03\xe8\xff"));
    assert_eq!(s.next_message(), Err(ProtocolError::InvalidUtf8));
    assert_eq!(queued_close_code(&mut s), Some(1007));
}

/// The caller may only send valid codes and reasons of at most 123 bytes.
#[test]
fn sending_invalid_closes_is_refused() {
    let mut s = server();
    assert_eq!(
        s.send(Message::close(CloseCode::ABNORMAL, "")),
        Err(UsageError::InvalidCloseCode(1006))
    );
    let long = "x".repeat(124);
    assert_eq!(
        s.send(Message::close(CloseCode::NORMAL, long)),
        Err(UsageError::ControlTooLong(126))
    );
    assert_eq!(s.close_state(), CloseState::Open, "a refused call changes nothing");
    s.send(Message::close(CloseCode::NORMAL, "x".repeat(123))).unwrap();
    assert_eq!(s.send(Message::Close(None)), Err(UsageError::Closed));
}

/// RFC 6455 §7.1.5: a peer that vanishes without a Close is reported as 1006.
#[test]
fn vanished_peer_is_1006() {
    let mut s = server();
    s.receive(&masked(0x81, b"last words"));
    s.receive_eof();
    assert_eq!(s.next_message(), Ok(Some(Message::text("last words"))), "bytes before EOF count");
    let err = s.next_message().unwrap_err();
    assert_eq!(err, ProtocolError::UnexpectedEof);
    assert_eq!(err.close_code(), CloseCode::ABNORMAL);
    assert!(s.is_closed() && s.should_close_tcp());
    assert_eq!(transmitted(&mut s), [], "nothing is sent to a vanished peer");
}

#[test]
fn eof_mid_frame_is_1006() {
    let mut s = server();
    let frame = masked(0x82, &[1; 50]);
    s.receive(&frame[..20]);
    s.receive_eof();
    assert_eq!(s.next_message(), Err(ProtocolError::UnexpectedEof));
}

/// After a failure the error is reported once, then the connection is quiet.
#[test]
fn errors_are_reported_once() {
    let mut s = server();
    s.receive(&[0x81, 0x01, b'a']);
    assert!(s.next_message().is_err());
    assert_eq!(s.next_message(), Ok(None));
    assert_eq!(s.send(Message::text("x")), Err(UsageError::Closed));
}

// ---- every split of the input -------------------------------------------------------------

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,40}".prop_map(Message::text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Message::binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|b| Message::Ping(b.into())),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|b| Message::Pong(b.into())),
    ]
}

proptest! {
    /// Encode then decode returns the original messages, however the bytes are split.
    #[test]
    fn roundtrip_for_every_split(messages in proptest::collection::vec(any_message(), 1..6),
                                 cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
                                 client_sends in any::<bool>()) {
        let (mut tx, mut rx) = if client_sends { (client(), server()) } else { (server(), client()) };
        for m in &messages {
            tx.send(m.clone()).unwrap();
        }
        let wire = transmitted(&mut tx);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        let mut got = Vec::new();
        let mut start = 0;
        for end in cuts.into_iter().chain([wire.len()]) {
            rx.receive(&wire[start..end]);
            start = end;
            while let Some(m) = rx.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, messages);
    }

    /// Fragmented messages (in pieces of any size) reassemble to the original.
    #[test]
    fn fragmented_roundtrip(text in "\\PC{0,60}", sizes in proptest::collection::vec(1usize..8, 1..10)) {
        let mut c = client();
        let bytes = text.as_bytes();
        let mut chunks = Vec::new();
        let mut at = 0;
        for size in sizes {
            let end = (at + size).min(bytes.len());
            chunks.push(&bytes[at..end]);
            at = end;
        }
        chunks.push(&bytes[at..]);
        // A split inside a code point is fine for the validator on both sides.
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
            c.send_fragment(opcode, Bytes::copy_from_slice(chunk), i + 1 == chunks.len()).unwrap();
        }
        let mut s = server();
        s.receive(&transmitted(&mut c));
        prop_assert_eq!(s.next_message().unwrap(), Some(Message::text(text)));
    }

    /// Any bytes: the server never panics, and either waits, delivers, or fails with a close
    /// code it queued.
    #[test]
    fn arbitrary_bytes_never_panic(wire in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut s = server();
        s.receive(&wire);
        loop {
            match s.next_message() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    prop_assert_eq!(queued_close_code(&mut s), Some(e.close_code().as_u16()));
                    break;
                }
            }
        }
    }
}
