//! The WebSocket protocol (RFC 6455) as a sans-IO state machine: bytes in, messages out.
//!
//! `wsx-proto` never touches a socket, reads a clock (time is passed in) or needs an async runtime. It is the core that the
//! `wsx` crate drives over tokio, and that any other I/O layer can drive too.
//!
//! ```text
//!            opening handshake (handshake/)                 after the handshake (Connection)
//!  client:  ClientRequest ─build─► ClientHandshake          bytes ─receive─► FrameDecoder ─► Assembler ─► next_message
//!              request bytes ──────►  Upgrade::from_request                       │ control frames
//!              ◄──── 101 response ◄── Upgrade::respond                             ▼
//!           read_response ─► Negotiated ─► Connection::new   send ─► frame encoder ─► next_transmit ─► bytes
//!                                                             close.rs: the closing handshake
//! ```
//!
//! A whole exchange, in memory:
//!
//! ```
//! use wsx_proto::*;
//! let limits = Limits::default();
//! // client: build the request
//! let handshake = ClientRequest::new("ws://example.com/chat").build(Key::random()).unwrap();
//! let mut wire = bytes::BytesMut::new();
//! handshake.write_request(&mut wire);
//! // server: parse, check, answer
//! let request = parse_request(&wire, &limits).unwrap().unwrap().value;
//! let upgrade = Upgrade::from_request(&request).unwrap();
//! let (response, server_negotiated) = upgrade.respond(Accept::new()).unwrap();
//! let mut answer = bytes::BytesMut::new();
//! write_response(&response, &mut answer);
//! // client: check the answer
//! let done = handshake.read_response(&answer, &limits).unwrap().unwrap();
//! let mut client = Connection::new(Role::Client, &done.value.negotiated, Config::default());
//! let mut server = Connection::new(Role::Server, &server_negotiated, Config::default());
//! // messages
//! client.send(Message::text("ping?")).unwrap();
//! while let Some(b) = client.next_transmit() { server.receive(&b); }
//! assert_eq!(server.next_message().unwrap(), Some(Message::text("ping?")));
//! ```
#![forbid(unsafe_code)]

mod assemble;
mod close;
mod config;
mod connection;
mod deflate;
mod error;
mod frame;
mod handshake;
mod message;
mod prepared;
mod timers;
mod utf8;

#[cfg(test)]
mod tests;

pub use crate::close::CloseState;
pub use crate::config::{Config, Limits};
pub use crate::connection::Connection;
pub use crate::deflate::{DeflateConfig, DeflateParams};
pub use crate::error::{HandshakeError, ProtocolError, UsageError};
pub use crate::frame::mask::apply_mask;
pub use crate::frame::{FrameHeader, OpCode};
pub use crate::handshake::{
    head_complete, parse_request, parse_request_shared, parse_response, sec_websocket_accept,
    write_request, write_response, write_response_with_body, Accept, Accepted, ClientHandshake,
    ClientRequest, Extension, Key, Negotiated, Parsed, Upgrade,
};
pub use crate::message::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use crate::prepared::Prepared;
pub use crate::timers::Timeout;

/// The repository README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// This crate's README (crates.io's page), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;

/// Which side of a connection an endpoint is: it decides who masks (RFC 6455 §5.1) and who
/// closes TCP first (§7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opened the connection; masks every frame it sends.
    Client,
    /// Accepted the connection; never masks.
    Server,
}
