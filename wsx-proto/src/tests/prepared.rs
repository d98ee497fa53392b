//! [`Prepared`]: a room's message encoded once for many connections, byte for byte what each
//! connection would have sent by itself.

use bytes::Bytes;

use super::{deflate_negotiated, transmitted};
use crate::*;

/// A server connection that agreed to `config`'s permessage-deflate, and the client at the
/// other end.
fn pair(config: DeflateConfig) -> (Connection, Connection) {
    let (client, server) = deflate_negotiated(config);
    (
        Connection::new(Role::Server, &server, Config::default()),
        Connection::new(Role::Client, &client, Config::default().dangerous_rng_seed([3; 32])),
    )
}

/// permessage-deflate without context takeover (what `wsx serve` agrees to by default).
fn fresh() -> DeflateConfig {
    DeflateConfig::default().no_context_takeover(true)
}

/// What `client` receives of `wire`.
fn received(client: &mut Connection, wire: &[u8]) -> Message {
    client.receive(wire);
    client.next_message().unwrap().unwrap()
}

#[test]
fn the_same_bytes_as_send_with_and_without_compression() {
    let text = "a room message, repeated so that it compresses: ".repeat(40);
    for config in [fresh(), fresh().max_window_bits(10), fresh().no_context_takeover(false)] {
        let prepared = Prepared::new(Message::text(text.clone())).unwrap();
        let (mut by_send, _) = pair(config);
        by_send.send(Message::text(text.clone())).unwrap();
        let expected = transmitted(&mut by_send);
        for _ in 0..3 {
            let (mut server, mut client) = pair(config);
            server.send_prepared(&prepared).unwrap();
            let wire = transmitted(&mut server);
            assert_eq!(wire, expected, "{config:?}");
            assert_eq!(received(&mut client, &wire), Message::text(text.clone()));
        }
    }
    // Without deflate: the payload as it is.
    let prepared = Prepared::new(Message::binary(vec![1u8, 2, 3])).unwrap();
    let mut plain = Connection::new(Role::Server, &Negotiated::default(), Config::default());
    plain.send_prepared(&prepared).unwrap();
    assert_eq!(transmitted(&mut plain), [0x82, 3, 1, 2, 3]);
}

#[test]
fn compressed_once_for_every_connection_with_the_same_settings() {
    // Hard to compress: the compressed payload is large enough to be queued as its own shared
    // chunk.
    let mut x = 7u32;
    let payload: Vec<u8> = (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let prepared = Prepared::new(Message::binary(payload.clone())).unwrap();
    let chunks: Vec<Bytes> = (0..3)
        .map(|_| {
            let (mut server, mut client) = pair(fresh());
            server.send_prepared(&prepared).unwrap();
            let header = server.next_transmit().unwrap();
            let body = server.next_transmit().unwrap();
            let mut wire = header.to_vec();
            wire.extend_from_slice(&body);
            assert_eq!(received(&mut client, &wire), Message::binary(payload.clone()));
            body
        })
        .collect();
    assert!(
        chunks.windows(2).all(|w| w[0].as_ptr() == w[1].as_ptr()),
        "one compressed payload, shared by every connection"
    );
    // Another window: that connection compresses for itself, correctly.
    let (mut other, mut client) = pair(fresh().max_window_bits(9));
    other.send_prepared(&prepared).unwrap();
    let wire = transmitted(&mut other);
    assert_eq!(received(&mut client, &wire), Message::binary(payload));
}

#[test]
fn prepared_messages_keep_the_sending_rules() {
    assert!(Prepared::new(Message::Ping(Bytes::new())).is_none(), "control messages are not");
    let prepared = Prepared::new(Message::text("hi")).unwrap();
    let mut server = Connection::new(Role::Server, &Negotiated::default(), Config::default());
    server.send_fragment(OpCode::Text, "a".into(), false).unwrap();
    assert!(matches!(server.send_prepared(&prepared), Err(UsageError::Fragmentation(_))));
    server.send_fragment(OpCode::Continuation, "b".into(), true).unwrap();
    server.send(Message::close(CloseCode::NORMAL, "")).unwrap();
    assert_eq!(server.send_prepared(&prepared), Err(UsageError::Closed));
    // A client masks it like any message of its own.
    let mut client = Connection::new(
        Role::Client,
        &Negotiated::default(),
        Config::default().dangerous_rng_seed([5; 32]),
    );
    client.send_prepared(&prepared).unwrap();
    let wire = transmitted(&mut client);
    assert_eq!(wire[1], 0x80 | 2, "masked");
    let mut server = Connection::new(Role::Server, &Negotiated::default(), Config::default());
    assert_eq!(received(&mut server, &wire), Message::text("hi"));
}
