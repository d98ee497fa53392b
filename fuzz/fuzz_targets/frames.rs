//! The frame decoder, message assembler and close state machine, for both roles: any bytes in
//! any chunks. Nothing may panic, and no message may exceed the configured limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsx_proto::{
    Accept, ClientRequest, Config, Connection, DeflateConfig, Key, Limits, Message, Negotiated,
    Role, Upgrade,
};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else { return };
    let role = if control & 1 == 0 { Role::Server } else { Role::Client };
    let chunk = usize::from(control >> 2) + 1;
    // Bit 1: permessage-deflate agreed on, so compressed frames (and bombs) reach the inflater.
    let negotiated = if control & 2 != 0 { deflate_negotiated() } else { Negotiated::default() };
    let config = Config::default()
        .limits(Limits::default().max_message_size(MAX))
        .dangerous_rng_seed([0; 32]);
    let mut conn = Connection::new(role, &negotiated, config);
    for piece in data.chunks(chunk) {
        conn.receive(piece);
        loop {
            match conn.next_message() {
                Ok(Some(message)) => {
                    assert!(message.len() <= MAX);
                    if let Message::Text(t) = &message {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    assert!(conn.is_closed());
                    break;
                }
            }
        }
        // Pings answered and closes echoed leave as a writer would take them: whole chunks,
        // or (bit 7) partial writes of `chunk` bytes through the slices.
        if control & 0x80 == 0 {
            while conn.next_transmit().is_some() {}
        } else {
            while conn.pending_transmit() > 0 {
                let mut slices = [std::io::IoSlice::new(&[]); 4];
                let filled = conn.transmit_slices(&mut slices);
                assert!(filled > 0);
                let written = slices[..filled].iter().map(|s| s.len()).sum::<usize>().min(chunk);
                conn.advance_transmit(written);
            }
        }
    }
    conn.receive_eof();
    while let Ok(Some(_)) = conn.next_message() {}
    assert!(conn.is_closed());
});

fn deflate_negotiated() -> Negotiated {
    let deflate = DeflateConfig::default().max_window_bits(10);
    let handshake = ClientRequest::new("ws://h/")
        .deflate(Some(deflate))
        .build(Key::from_bytes([0; 16]))
        .unwrap();
    let upgrade = Upgrade::from_request(handshake.request()).unwrap();
    upgrade.respond(Accept::new().deflate(Some(deflate))).unwrap().1
}
