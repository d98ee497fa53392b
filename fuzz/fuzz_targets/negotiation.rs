//! permessage-deflate negotiation, both sides: any `Sec-WebSocket-Extensions` offer reaches a
//! server, any answer reaches a client that offered deflate. Nothing may panic; what is agreed
//! is within RFC 7692's ranges, and a server's answer is one its client accepts.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wsx_proto::{Accept, ClientRequest, DeflateConfig, Key, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&setup, header)) = data.split_first() else { return };
    let Ok(header) = std::str::from_utf8(header) else { return };
    let server = match setup % 4 {
        0 => DeflateConfig::default(),
        1 => DeflateConfig::default().no_context_takeover(true),
        2 => DeflateConfig::default().max_window_bits(9 + setup % 7),
        _ => DeflateConfig::default().max_window_bits(8),
    };

    // Server: a request carrying the fuzzed offer.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {header}\r\n\r\n"
    );
    if let Ok(Some(parsed)) = wsx_proto::parse_request(request.as_bytes(), &Limits::default()) {
        if let Ok(upgrade) = wsx_proto::Upgrade::from_request(&parsed.value) {
            if let Ok((_, negotiated)) = upgrade.respond(Accept::new().deflate(Some(server))) {
                if let Some(params) = negotiated.deflate() {
                    for bits in [params.server_max_window_bits(), params.client_max_window_bits()] {
                        assert!((8..=15).contains(&bits), "{bits}");
                    }
                }
            }
        }
    }

    // Client: it offered deflate; the fuzzed answer comes back in a 101.
    let client = ClientRequest::new("ws://h/")
        .deflate(Some(server))
        .build(Key::from_bytes(*b"the sample nonce"))
        .unwrap();
    let Ok(answer) = http::HeaderValue::from_str(header) else { return };
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert("upgrade", http::HeaderValue::from_static("websocket"));
    headers.insert("connection", http::HeaderValue::from_static("Upgrade"));
    headers.insert(
        "sec-websocket-accept",
        http::HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    );
    headers.insert("sec-websocket-extensions", answer);
    if let Ok(negotiated) = client.verify(&response, Bytes::new()) {
        if let Some(params) = negotiated.deflate() {
            for bits in [params.server_max_window_bits(), params.client_max_window_bits()] {
                assert!((8..=15).contains(&bits), "{bits}");
            }
        }
    }
});
