//! permessage-deflate: negotiation tables (RFC 7692 §7.1) and whole connections with it
//! (§7.2.3's examples on the wire, both roles, fragments, bombs).

use bytes::Bytes;

use super::*;
use crate::*;

fn offers(header: &str) -> Vec<Extension> {
    Extension::parse_list(header).unwrap()
}

/// The server's answer to `offer` under `config`: the response header, or `None` (declined).
fn answer(config: DeflateConfig, offer: &str) -> Option<String> {
    config.accept(&offers(offer)).map(|(response, _)| response.to_string())
}

#[test]
fn server_negotiation_table() {
    let default = DeflateConfig::default();
    let small = DeflateConfig::default().max_window_bits(10);
    let fresh = DeflateConfig::default().no_context_takeover(true);
    let table: &[(DeflateConfig, &str, Option<&str>)] = &[
        // what browsers offer
        (default, "permessage-deflate; client_max_window_bits", Some("permessage-deflate")),
        (default, "permessage-deflate", Some("permessage-deflate")),
        // the client limits the server's window: the response must carry a value <= offered
        (
            default,
            "permessage-deflate; server_max_window_bits=10",
            Some("permessage-deflate; server_max_window_bits=10"),
        ),
        // our smaller window: announced for us, and asked of the client only if it offered
        (
            small,
            "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"),
        ),
        (small, "permessage-deflate", Some("permessage-deflate; server_max_window_bits=10")),
        (
            small,
            "permessage-deflate; client_max_window_bits=9",
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"),
        ),
        // context takeover requests are honoured, and imposed when configured
        (
            default,
            "permessage-deflate; server_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        (
            default,
            "permessage-deflate; client_no_context_takeover",
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        (
            fresh,
            "permessage-deflate",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        // invalid offers are declined, not the connection
        (default, "permessage-deflate; server_max_window_bits", None),
        (default, "permessage-deflate; server_max_window_bits=16", None),
        (default, "permessage-deflate; server_max_window_bits=7", None),
        (default, "permessage-deflate; server_max_window_bits=010", None),
        (default, "permessage-deflate; client_max_window_bits=abc", None),
        (default, "permessage-deflate; server_no_context_takeover=1", None),
        (default, "permessage-deflate; unknown_param", None),
        (default, "permessage-deflate; client_max_window_bits; client_max_window_bits", None),
        (default, "x-other-extension", None),
        // several offers in preference order: the first acceptable one wins
        (
            default,
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=12",
            Some("permessage-deflate; server_max_window_bits=12"),
        ),
        (
            default,
            "permessage-deflate; server_max_window_bits=9, permessage-deflate",
            Some("permessage-deflate; server_max_window_bits=9"),
        ),
    ];
    for (config, offer, expected) in table {
        assert_eq!(answer(*config, offer).as_deref(), *expected, "offer {offer:?} to {config:?}");
    }
}

/// The client checks the response against its offer (§7.1).
#[test]
fn client_verification_table() {
    let default = DeflateConfig::default();
    let small = DeflateConfig::default().max_window_bits(10);
    let fresh = DeflateConfig::default().no_context_takeover(true);
    let ok: &[(DeflateConfig, &str)] = &[
        (default, "permessage-deflate"),
        (default, "permessage-deflate; server_no_context_takeover"),
        (default, "permessage-deflate; client_no_context_takeover"),
        (default, "permessage-deflate; server_max_window_bits=9"),
        (default, "permessage-deflate; client_max_window_bits=9"),
        (small, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"),
        (fresh, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ];
    for (config, response) in ok {
        assert!(config.verify(&offers(response)[0]).is_ok(), "{response:?} after {config:?}");
    }
    let bad: &[(DeflateConfig, &str)] = &[
        (small, "permessage-deflate; server_max_window_bits=12"),
        (small, "permessage-deflate; client_max_window_bits=15"),
        (default, "permessage-deflate; client_max_window_bits"),
        (default, "permessage-deflate; server_max_window_bits"),
        (default, "permessage-deflate; x=1"),
        (default, "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
        (fresh, "permessage-deflate"),
    ];
    for (config, response) in bad {
        assert!(config.verify(&offers(response)[0]).is_err(), "{response:?} after {config:?}");
    }
}

/// A client and a server that agreed on `client` and `server` configurations.
fn pair(client: DeflateConfig, server: DeflateConfig) -> (Connection, Connection) {
    let handshake =
        ClientRequest::new("ws://h/").deflate(Some(client)).build(Key::random()).unwrap();
    let upgrade = Upgrade::from_request(handshake.request()).unwrap();
    let (response, server_negotiated) =
        upgrade.respond(Accept::new().deflate(Some(server))).unwrap();
    let client_negotiated = handshake.verify(&response, Bytes::new()).unwrap();
    assert!(client_negotiated.deflate().is_some() && server_negotiated.deflate().is_some());
    (
        Connection::new(Role::Client, &client_negotiated, Config::default()),
        Connection::new(Role::Server, &server_negotiated, Config::default()),
    )
}

fn transfer(from: &mut Connection, to: &mut Connection) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(chunk) = from.next_transmit() {
        wire.extend_from_slice(&chunk);
    }
    to.receive(&wire);
    wire
}

fn drain(conn: &mut Connection) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = conn.next_message().unwrap() {
        out.push(m);
    }
    out
}

/// §7.2.3.1-7.2.3.5 frames on the wire, received by a client that agreed on deflate.
#[test]
fn rfc_frames_through_a_connection() {
    let (mut client, _) = pair(DeflateConfig::default(), DeflateConfig::default());
    let frames: &[&[u8]] = &[
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        &[0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00],
        &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00],
        &[0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00],
        &[0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00],
        &[0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        // an uncompressed message between compressed ones
        &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o'],
    ];
    for frame in frames {
        client.receive(frame);
        assert_eq!(drain(&mut client), vec![Message::text("Hello")], "{frame:02x?}");
    }
}

/// Our own frames are the RFC's: "Hello" compressed, then shared window.
#[test]
fn server_sends_the_rfc_bytes() {
    let (mut client, mut server) =
        pair(DeflateConfig::default(), DeflateConfig::default().threshold(0));
    server.send(Message::text("Hello")).unwrap();
    server.send(Message::text("Hello")).unwrap();
    let wire = transfer(&mut server, &mut client);
    assert_eq!(
        wire,
        [
            0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xc1, 0x05, 0xf2, 0x00, 0x11,
            0x00, 0x00
        ]
    );
    assert_eq!(drain(&mut client), vec![Message::text("Hello"), Message::text("Hello")]);
}

#[test]
fn both_directions_all_windows_and_takeover_settings() {
    let text = "the quick brown fox jumps over the lazy dog; ".repeat(200);
    for bits in [9, 12, 15] {
        for fresh in [false, true] {
            let config = DeflateConfig::default().max_window_bits(bits).no_context_takeover(fresh);
            let (mut client, mut server) = pair(config, config);
            for _ in 0..3 {
                client.send(Message::text(text.clone())).unwrap();
                let wire = transfer(&mut client, &mut server);
                assert!(
                    wire.len() < text.len() / 5,
                    "compressed: {} of {}",
                    wire.len(),
                    text.len()
                );
                assert_eq!(drain(&mut server), vec![Message::text(text.clone())]);
                server.send(Message::binary(text.clone().into_bytes())).unwrap();
                transfer(&mut server, &mut client);
                assert_eq!(drain(&mut client), vec![Message::binary(text.clone().into_bytes())]);
            }
        }
    }
}

/// Small messages stay uncompressed (the threshold); control frames are never compressed.
#[test]
fn threshold_and_control_frames() {
    let (mut client, mut server) =
        pair(DeflateConfig::default(), DeflateConfig::default().threshold(10));
    server.send(Message::text("short")).unwrap();
    server.send(Message::Ping(Bytes::from_static(b"pingpingpingping"))).unwrap();
    let wire = transfer(&mut server, &mut client);
    assert_eq!(wire[0], 0x81, "below the threshold: RSV1 clear");
    assert_eq!(wire[7], 0x89, "pings are never compressed");
    assert_eq!(drain(&mut client).len(), 2);
}

/// A fragmented message is one compressed stream; RSV1 on its first frame only.
#[test]
fn fragmented_compressed_messages() {
    let (mut client, mut server) = pair(DeflateConfig::default(), DeflateConfig::default());
    let parts = ["Hello, ", "fragmented ", "and compressed ", "world!"];
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
        client
            .send_fragment(opcode, Bytes::from_static(part.as_bytes()), i == parts.len() - 1)
            .unwrap();
    }
    let wire = transfer(&mut client, &mut server);
    assert_eq!(wire[0], 0x41, "first fragment: RSV1, not FIN");
    assert_eq!(drain(&mut server), vec![Message::text(parts.concat())]);
}

/// A tiny frame that inflates past the limit fails with 1009, without inflating it all.
#[test]
fn bomb_is_refused_with_1009() {
    let mut deflater = codec::Deflater::new(9, 15, true).unwrap();
    let mut bomb = Vec::new();
    deflater.compress(&vec![0u8; 8 << 20], &mut bomb, true);
    assert!(bomb.len() < 16 << 10);
    // A client frame (masked) carrying the bomb, to a server limited to 1 MiB.
    let handshake = ClientRequest::new("ws://h/")
        .deflate(Some(DeflateConfig::default()))
        .build(Key::random())
        .unwrap();
    let upgrade = Upgrade::from_request(handshake.request()).unwrap();
    let (_, negotiated) =
        upgrade.respond(Accept::new().deflate(Some(DeflateConfig::default()))).unwrap();
    let limits = Limits::default().max_message_size(1 << 20);
    let mut server = Connection::new(Role::Server, &negotiated, Config::default().limits(limits));
    let mut frame = vec![0xc2, 0xff];
    frame.extend_from_slice(&(bomb.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(&bomb);
    server.receive(&frame);
    let err = server.next_message().unwrap_err();
    assert!(matches!(err, ProtocolError::MessageTooBig { max: 1048576, .. }), "{err:?}");
    assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
}

/// RSV1 without the extension, or on a continuation, is still a protocol error.
#[test]
fn rsv1_rules_with_deflate() {
    let (mut client, _) = pair(DeflateConfig::default(), DeflateConfig::default());
    client.receive(&[0x01, 0x01, b'a', 0xc0, 0x01, b'b']);
    assert_eq!(client.next_message(), Err(ProtocolError::ReservedBits));
}

/// A server without deflate ignores the offer; a client that offered does fine without it.
#[test]
fn declined_offer_means_no_compression() {
    let handshake = ClientRequest::new("ws://h/")
        .deflate(Some(DeflateConfig::default()))
        .build(Key::random())
        .unwrap();
    let upgrade = Upgrade::from_request(handshake.request()).unwrap();
    let (response, server_negotiated) = upgrade.respond(Accept::new()).unwrap();
    assert!(!response.headers().contains_key("sec-websocket-extensions"));
    let client_negotiated = handshake.verify(&response, Bytes::new()).unwrap();
    assert!(client_negotiated.deflate().is_none() && server_negotiated.deflate().is_none());
    // and a response with permessage-deflate that was not offered fails the handshake
    let plain = ClientRequest::new("ws://h/").build(Key::random()).unwrap();
    let upgrade = Upgrade::from_request(plain.request()).unwrap();
    let (mut response, _) = upgrade.respond(Accept::new()).unwrap();
    response
        .headers_mut()
        .insert("sec-websocket-extensions", "permessage-deflate".parse().unwrap());
    assert!(plain.verify(&response, Bytes::new()).is_err());
}
