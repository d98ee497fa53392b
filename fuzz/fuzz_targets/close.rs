//! The Close frame's payload (RFC 6455 §5.5.1, §7.4), as a server reads it from a client: any
//! payload up to 125 bytes. A valid one (empty, or a sendable code and UTF-8 reason) is
//! delivered and echoed with its code; anything else fails the connection with 1002 or 1007.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsx_proto::{CloseCode, Config, Connection, Message, Negotiated, ProtocolError, Role};

fuzz_target!(|data: &[u8]| {
    let payload = &data[..data.len().min(125)];
    let mut frame = vec![0x88, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    let mut server = Connection::new(Role::Server, &Negotiated::default(), Config::default());
    server.receive(&frame);
    let result = server.next_message();
    let mut echo = Vec::new();
    while let Some(chunk) = server.next_transmit() {
        echo.extend_from_slice(&chunk);
    }
    assert!(server.is_closed() && server.should_close_tcp());
    match result {
        Ok(Some(Message::Close(None))) => {
            assert!(payload.is_empty());
            assert_eq!(echo, [0x88, 0x00]);
        }
        Ok(Some(Message::Close(Some(close)))) => {
            assert!(payload.len() >= 2 && close.code.is_sendable());
            assert_eq!(close.code.as_u16(), u16::from_be_bytes([payload[0], payload[1]]));
            assert_eq!(close.reason.as_bytes().as_ref(), &payload[2..]);
            assert_eq!(&echo[..4], [0x88, 0x02, payload[0], payload[1]], "the code echoed");
        }
        Err(e @ (ProtocolError::InvalidClosePayload | ProtocolError::InvalidCloseCode(_))) => {
            assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
            assert_eq!(&echo[2..4], 1002u16.to_be_bytes());
        }
        Err(ProtocolError::InvalidUtf8) => assert_eq!(&echo[2..4], 1007u16.to_be_bytes()),
        other => panic!("{other:?} for {payload:?}"),
    }
});
