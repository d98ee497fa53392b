//! The known attack classes on WebSocket stacks (from recent advisories), one named test each:
//! what a hostile peer, or a careless caller, can send, and what it must cost.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

use super::{client, client_header, deflate_negotiated, server};
use crate::*;

fn request_head(extra_headers: usize, pad_to: usize) -> Vec<u8> {
    let mut head = String::from(
        "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    for i in 0..extra_headers {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    if head.len() + 4 < pad_to {
        let pad = pad_to - head.len() - "X-Pad: \r\n\r\n".len();
        head.push_str(&format!("X-Pad: {}\r\n", "p".repeat(pad)));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Re-parsing a growing head on every read is quadratic: a maximum-size head sent one byte per
/// read must cost linear work (the reader scans each byte a bounded number of times and parses
/// once).
#[test]
fn slow_head_one_byte_per_read_costs_linear_work() {
    let limits = Limits::default();
    let wire = request_head(0, limits.head_size());
    assert_eq!(wire.len(), limits.head_size());
    let (mut scanned, mut examined, mut parses) = (0usize, 0usize, 0);
    let mut done = None;
    for end in 1..=wire.len() {
        let before = scanned;
        let complete = head_complete(&wire[..end], &mut scanned);
        examined += end - before.saturating_sub(2).min(end);
        if complete || end > limits.head_size() {
            parses += 1;
            done = parse_request(&wire[..end], &limits).unwrap();
        }
    }
    assert_eq!(done.map(|p| p.len), Some(wire.len()));
    assert_eq!(parses, 1, "parsed once, when the blank line arrived");
    assert!(examined <= 4 * wire.len(), "{examined} bytes examined for {} bytes", wire.len());
}

/// A flood of header lines, or a head past the size limit, is refused with 431 without
/// waiting for its end.
#[test]
fn header_flood_and_oversized_head_are_431() {
    let limits = Limits::default();
    let flood = request_head(limits.headers() + 1, 0);
    assert_eq!(parse_request(&flood, &limits).unwrap_err(), HandshakeError::HeadTooLarge);
    let endless = vec![b'a'; limits.head_size() + 1];
    let mut scanned = 0;
    assert!(!head_complete(&endless, &mut scanned));
    assert_eq!(parse_request(&endless, &limits).unwrap_err(), HandshakeError::HeadTooLarge);
    assert_eq!(
        HandshakeError::HeadTooLarge.status(),
        Some(http::StatusCode::from_u16(431).unwrap())
    );
}

/// Many tiny fragments: each pending 1-byte fragment costs O(1) bytes, and they count toward
/// the message limit.
#[test]
fn tiny_fragments_cost_their_bytes_and_count_toward_the_limit() {
    let limits = Limits::default().max_message_size(10_000);
    let mut s =
        Connection::new(Role::Server, &Negotiated::default(), Config::default().limits(limits));
    let mut first = client_header(0x02, 1);
    first.push(b'x');
    s.receive(&first);
    for _ in 0..9_999 {
        let mut fragment = client_header(0x00, 1);
        fragment.push(b'x');
        s.receive(&fragment);
        assert_eq!(s.next_message(), Ok(None));
    }
    let held = s.receive_buffer_capacity();
    assert!(held <= 4 * 10_000, "10,000 one-byte fragments hold {held} bytes");
    let mut one_more = client_header(0x80, 1);
    one_more.push(b'x');
    s.receive(&one_more);
    assert!(matches!(s.next_message(), Err(ProtocolError::MessageTooBig { size: 10_001, .. })));
}

/// An inflate bomb: 1 MiB compressed that inflates to 1 GiB fails with 1009 at the limit, and
/// the memory held stays within a small multiple of the limit.
#[test]
fn inflate_bomb_is_1009_at_the_limit_with_bounded_memory() {
    // 1 MiB of zeros, deflated and sync-flushed: a block that, repeated, inflates to zeros
    // again (its back-references only reach zeros). 1,024 of them: 1 GiB.
    let mut compress = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(64 << 10);
    compress.compress_vec(&[0u8; 1 << 20], &mut block, FlushCompress::Sync).unwrap();
    assert_eq!(compress.total_in(), 1 << 20);
    let bomb = block.repeat(1024);
    assert!(bomb.len() < 2 << 20, "{} bytes compressed", bomb.len());
    let limit = 16 << 20;
    let (_, negotiated) = deflate_negotiated(DeflateConfig::default());
    let config = Config::default().limits(Limits::default().max_message_size(limit));
    let mut s = Connection::new(Role::Server, &negotiated, config);
    let mut frame = client_header(0xc2, bomb.len() as u64);
    frame.extend_from_slice(&bomb);
    let mut result = Ok(None);
    let mut held = 0;
    for chunk in frame.chunks(64 << 10) {
        s.receive(chunk);
        result = s.next_message();
        held = held.max(s.receive_buffer_capacity());
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(ProtocolError::MessageTooBig { max, .. }) if max == limit));
    assert!(held <= 2 * limit + (1 << 20), "held {held} bytes for a {limit}-byte limit");
    assert_eq!(queued_close(&mut s), Some(1009));
}

fn queued_close(conn: &mut Connection) -> Option<u16> {
    super::queued_close_code(conn)
}

/// `server_max_window_bits`/`client_max_window_bits` out of range or repeated: a server
/// declines the offer; a client fails the handshake on such a response.
#[test]
fn window_bits_out_of_range_or_repeated_are_refused_both_ways() {
    let bad = [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits=99999999999999999999",
    ];
    for offer in bad {
        let offers = Extension::parse_list(offer).unwrap();
        assert!(DeflateConfig::default().accept(&offers).is_none(), "accepted {offer}");
    }
    for answer in bad.iter().chain(&["permessage-deflate; client_max_window_bits"]) {
        let handshake = ClientRequest::new("ws://h/")
            .deflate(Some(DeflateConfig::default()))
            .build(Key::from_bytes(*b"the sample nonce"))
            .unwrap();
        let response = http::Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .header("sec-websocket-extensions", *answer)
            .body(())
            .unwrap();
        assert!(handshake.verify(&response, Bytes::new()).is_err(), "client took {answer}");
    }
}

/// 64-bit lengths with the top bit set (RFC 6455 §5.2: the most significant bit MUST be 0), or
/// larger than any limit, fail at the header, before anything is buffered.
#[test]
fn huge_64_bit_lengths_fail_at_the_header() {
    for len in [1u64 << 63, u64::MAX, (1 << 63) - 1, 1 << 40] {
        let mut s = server();
        s.receive(&client_header(0x82, len));
        let err = s.next_message().unwrap_err();
        assert!(
            matches!(err, ProtocolError::InvalidLength | ProtocolError::FrameTooBig { .. }),
            "{len}: {err:?}"
        );
        assert!(s.receive_buffer_capacity() < 1024);
    }
    let mut c = client();
    let mut wire = vec![0x82, 127];
    wire.extend_from_slice(&(1u64 << 63).to_be_bytes());
    c.receive(&wire);
    assert_eq!(c.next_message(), Err(ProtocolError::InvalidLength));
}

/// Control frames over 125 bytes, or fragmented, are protocol errors (1002).
#[test]
fn long_or_fragmented_control_frames_are_1002() {
    for (first, len) in [(0x89, 126u64), (0x8a, 126), (0x88, 200), (0x09, 4), (0x0a, 0), (0x08, 2)]
    {
        let mut s = server();
        let mut wire = client_header(first, len);
        wire.extend(std::iter::repeat_n(0u8, len as usize));
        s.receive(&wire);
        let err = s.next_message().unwrap_err();
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR, "{first:#x} {len}: {err:?}");
    }
}

/// CR, LF or NUL in what a caller passes to the client (header values, subprotocols, the path,
/// Origin) is refused before anything is sent: never injected into the request.
#[test]
fn crlf_and_nul_from_the_caller_are_refused_not_injected() {
    let injections = ["a\r\nX-Evil: 1", "a\nb", "a\0b", "a\rb"];
    for bad in injections {
        let header = ClientRequest::new("ws://h/").header("X-Ok", bad).build(Key::random());
        assert!(header.is_err(), "header value {bad:?}");
        let name = ClientRequest::new("ws://h/").header(bad, "v").build(Key::random());
        assert!(name.is_err(), "header name {bad:?}");
        let protocol = ClientRequest::new("ws://h/").subprotocols([bad]).build(Key::random());
        assert!(protocol.is_err(), "subprotocol {bad:?}");
        let origin = ClientRequest::new("ws://h/").origin(bad).build(Key::random());
        assert!(origin.is_err(), "origin {bad:?}");
        let path = ClientRequest::new(format!("ws://h/{bad}")).build(Key::random());
        assert!(path.is_err(), "path {bad:?}");
        let extension = ClientRequest::new("ws://h/").extension(bad).build(Key::random());
        assert!(extension.is_err(), "extension {bad:?}");
    }
}
