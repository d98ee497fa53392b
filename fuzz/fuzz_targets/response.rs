//! The client's response parser and checks: any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsx_proto::{ClientRequest, Key, Limits};

fuzz_target!(|data: &[u8]| {
    let handshake = ClientRequest::new("ws://server.example.com/chat")
        .subprotocols(["chat", "superchat"])
        .extension("x-test")
        .build(Key::from_bytes(*b"the sample nonce"))
        .unwrap();
    let limits = Limits::default().max_head_size(4096);
    if let Ok(Some(done)) = handshake.read_response(data, &limits) {
        assert!(done.len <= data.len());
        assert_eq!(done.value.response.status(), 101);
        if let Some(p) = done.value.negotiated.subprotocol() {
            assert!(p == "chat" || p == "superchat");
        }
    }
});
