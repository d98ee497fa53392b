//! Limits under hostile and careless peers: memory follows the bytes that arrived, the limits
//! a user sets are on messages (compressed or not), and what a peer only announces costs
//! nothing.

use bytes::Bytes;
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

use super::{client_header, deflate_negotiated};
use crate::connection::RECEIVE_KEEP;
use crate::*;

/// Random bytes: incompressible, so deflate makes them slightly larger.
fn random(len: usize) -> Vec<u8> {
    let mut rng = ChaCha12Rng::from_seed([9; 32]);
    let mut out = vec![0; len];
    rng.fill_bytes(&mut out);
    out
}

fn server(limits: Limits, negotiated: &Negotiated) -> Connection {
    Connection::new(Role::Server, negotiated, Config::default().limits(limits))
}

/// A client and a server with permessage-deflate agreed, both with `limits`.
fn deflate_pair(limits: Limits) -> (Connection, Connection) {
    let (client_negotiated, server_negotiated) = deflate_negotiated(DeflateConfig::default());
    let config = Config::default().limits(limits).dangerous_rng_seed([3; 32]);
    (
        Connection::new(Role::Client, &client_negotiated, config.clone()),
        Connection::new(Role::Server, &server_negotiated, config),
    )
}

fn send_all(from: &mut Connection, to: &mut Connection) -> usize {
    let mut sent = 0;
    while let Some(chunk) = from.next_transmit() {
        sent += chunk.len();
        to.receive(&chunk);
    }
    sent
}

#[test]
fn memory_follows_bytes_received_not_the_announced_length() {
    for announced in [16u64 << 20, 1 << 20, 200 << 10] {
        let mut s = server(Limits::default(), &Negotiated::default());
        let mut wire = client_header(0x82, announced);
        wire.extend_from_slice(&[7; 16]);
        s.receive(&wire);
        assert_eq!(s.next_message(), Ok(None));
        let held = s.receive_buffer_capacity();
        assert!(held <= 64 << 10, "{announced} bytes announced, 16 sent: {held} bytes held");
        // And it grows as the bytes come, up to the message, which then arrives whole.
        let rest = vec![7; announced as usize - 16];
        for chunk in rest.chunks(64 << 10) {
            s.receive(chunk);
            assert_eq!(
                s.next_message().map(|m| m.is_some()),
                Ok(chunk.as_ptr_range().end == rest.as_ptr_range().end)
            );
        }
    }
}

#[test]
fn a_raised_message_limit_raises_the_frame_limit() {
    let limits = Limits::default().max_message_size(64 << 20);
    let mut s = server(limits, &Negotiated::default());
    s.receive(&client_header(0x82, 20 << 20));
    assert_eq!(s.next_message(), Ok(None), "a 20 MiB frame is within a 64 MiB message limit");
    let mut s = server(limits.max_frame_size(1 << 20), &Negotiated::default());
    s.receive(&client_header(0x82, 20 << 20));
    assert!(matches!(s.next_message(), Err(ProtocolError::FrameTooBig { .. })), "set on its own");
}

#[test]
fn random_messages_up_to_the_limit_pass_with_deflate() {
    let limit = 1 << 20;
    let (mut client, mut server) = deflate_pair(Limits::default().max_message_size(limit));
    for len in [limit, limit - 1, limit / 2] {
        let payload = random(len);
        client.send(Message::binary(payload.clone())).unwrap();
        let sent = send_all(&mut client, &mut server);
        assert!(sent > len, "random bytes grow when deflated ({sent} for {len})");
        assert_eq!(server.next_message(), Ok(Some(Message::binary(payload))));
    }
    // Fragmented too: the compressed frames of one message.
    let payload = random(limit);
    for (i, part) in payload.chunks(300_000).enumerate() {
        let opcode = if i == 0 { OpCode::Binary } else { OpCode::Continuation };
        let fin = (i + 1) * 300_000 >= limit;
        client.send_fragment(opcode, Bytes::copy_from_slice(part), fin).unwrap();
    }
    send_all(&mut client, &mut server);
    assert_eq!(server.next_message(), Ok(Some(Message::binary(payload))));
    // One byte over the limit is still refused, on what it inflates to.
    client.send(Message::binary(random(limit + 1))).unwrap();
    send_all(&mut client, &mut server);
    assert!(matches!(server.next_message(), Err(ProtocolError::MessageTooBig { .. })));
}

#[test]
fn compressed_bytes_that_inflate_to_nothing_are_bounded() {
    let limits = Limits::default().max_message_size(1024);
    let (_, mut server) = deflate_pair(limits);
    // Empty stored deflate blocks: 5 bytes each, no output.
    let empty_blocks: Vec<u8> = [0x00, 0x00, 0x00, 0xff, 0xff].repeat(100);
    let mut first = client_header(0xc2, empty_blocks.len() as u64); // RSV1, binary, not FIN
    first[0] = 0x42;
    first.extend_from_slice(&empty_blocks);
    server.receive(&first);
    let mut result = server.next_message();
    for _ in 0..10 {
        if result.is_err() {
            break;
        }
        let mut more = client_header(0x00, empty_blocks.len() as u64);
        more.extend_from_slice(&empty_blocks);
        server.receive(&more);
        result = server.next_message();
    }
    let max = Limits::compressed_size(1024);
    assert!(
        matches!(result, Err(ProtocolError::MessageTooBig { max: m, .. }) if m == max),
        "{result:?}"
    );
}

/// After a message is delivered, the connection keeps no part of its buffer but a small one for
/// the next read: the message owns its memory alone (a soak found a connection holding its
/// largest inflated message while idle).
#[test]
fn a_delivered_message_leaves_no_buffer_behind() {
    let (mut client, mut server) = deflate_pair(Limits::default());
    for len in [100, 64 << 10, 300 << 10] {
        client.send(Message::binary(random(len))).unwrap();
        let wire = transmitted_all(&mut client);
        for piece in wire.chunks(1000) {
            server.receive(piece);
            if let Some(message) = server.next_message().unwrap() {
                assert_eq!(message.len(), len);
                assert_eq!(server.next_message(), Ok(None), "all read");
                assert!(server.receive_buffer_capacity() <= RECEIVE_KEEP, "{len}: buffer kept");
                let Message::Binary(bytes) = message else { panic!("binary") };
                assert!(bytes.try_into_mut().is_ok(), "{len}: the connection shares the message");
            }
        }
    }
    // Without deflate, a message that arrives in pieces too.
    let mut pair = (client_plain(), server_plain());
    pair.0.send(Message::text("é".repeat(100_000))).unwrap();
    let wire = transmitted_all(&mut pair.0);
    for piece in wire.chunks(1000) {
        pair.1.receive(piece);
        if let Some(Message::Text(text)) = pair.1.next_message().unwrap() {
            assert_eq!(pair.1.next_message(), Ok(None), "all read");
            assert!(pair.1.receive_buffer_capacity() <= RECEIVE_KEEP);
            assert!(text.into_bytes().try_into_mut().is_ok());
        }
    }
}

fn transmitted_all(conn: &mut Connection) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(chunk) = conn.next_transmit() {
        wire.extend_from_slice(&chunk);
    }
    wire
}

fn client_plain() -> Connection {
    Connection::new(
        Role::Client,
        &Negotiated::default(),
        Config::default().dangerous_rng_seed([4; 32]),
    )
}

fn server_plain() -> Connection {
    Connection::new(Role::Server, &Negotiated::default(), Config::default())
}

/// Small messages leave the connection's small receive buffer in place for the next read (no
/// allocation per message beyond the message's own); a larger one is given back.
#[test]
fn small_messages_reuse_the_receive_buffer() {
    let (mut client, mut server) = (client_plain(), server_plain());
    for (len, kept) in [(16, true), (200, true), (600, false), (16, true)] {
        client.send(Message::binary(random(len))).unwrap();
        server.receive(&transmitted_all(&mut client));
        let Some(Message::Binary(bytes)) = server.next_message().unwrap() else { panic!() };
        assert_eq!(bytes.len(), len);
        assert_eq!(server.next_message(), Ok(None), "all read");
        let capacity = server.receive_buffer_capacity();
        assert_eq!(capacity > 0, kept, "{len}: {capacity}");
        assert!(capacity <= RECEIVE_KEEP, "{len}: {capacity}");
        assert!(bytes.try_into_mut().is_ok(), "{len}: the message owns its bytes alone");
    }
}

/// A connection that has received nothing holds no receive buffer (idle connections are many).
#[test]
fn nothing_received_no_buffer() {
    let mut server = server_plain();
    server.receive(&[]);
    assert_eq!(server.next_message(), Ok(None));
    assert_eq!(server.receive_buffer_capacity(), 0);
}
