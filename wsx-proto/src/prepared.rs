//! [`Prepared`]: one data message sent to many connections (a chat room's members), encoded
//! once. Server frames are not masked, so the payload is the same bytes on every connection
//! (queued without a copy); with permessage-deflate and no context takeover (what a server
//! agrees to by default), the compressed payload is the same too, and is made once, by the
//! first connection that needs it, for every other one with the same compression settings.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::deflate::codec::Deflater;
use crate::frame::OpCode;
use crate::message::Message;

thread_local! {
    /// Where prepared messages are compressed before they are copied out at their size.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer larger than this is let go after use.
const SCRATCH_MAX: usize = 64 * 1024;

/// A text or binary message prepared for many connections ([`Connection::send_prepared`]).
/// Cheap to clone.
///
/// [`Connection::send_prepared`]: crate::Connection::send_prepared
///
/// ```
/// use wsx_proto::{Connection, Message, Negotiated, Prepared, Role};
/// let hello = Prepared::new(Message::text("hello, room")).unwrap();
/// let mut members: Vec<Connection> = (0..3)
///     .map(|_| Connection::new(Role::Server, &Negotiated::default(), Default::default()))
///     .collect();
/// for member in &mut members {
///     member.send_prepared(&hello).unwrap();
///     let frame = member.next_transmit().unwrap();
///     assert_eq!(&frame[2..], b"hello, room");
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Prepared(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    opcode: OpCode,
    payload: Bytes,
    /// The payload compressed (without context takeover) with the settings of the first
    /// connection that asked: (level, window bits, compressed). Connections with other settings
    /// compress for themselves.
    compressed: OnceLock<(u32, u8, Bytes)>,
}

impl Prepared {
    /// `message` prepared for many connections; `None` for a control message (only text and
    /// binary messages can be).
    pub fn new(message: Message) -> Option<Self> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
            _ => return None,
        };
        Some(Self(Arc::new(Inner { opcode, payload, compressed: OnceLock::new() })))
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.0.payload.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.0.payload.is_empty()
    }

    pub(crate) fn opcode(&self) -> OpCode {
        self.0.opcode
    }

    /// The payload, uncompressed (a text message's UTF-8 bytes).
    pub fn payload(&self) -> &Bytes {
        &self.0.payload
    }

    /// The payload compressed with `level` and `window_bits`, without context takeover: made
    /// once (by the first caller) for every connection with these settings; `None` when this
    /// message was compressed for other settings.
    pub(crate) fn compressed(&self, level: u32, window_bits: u8) -> Option<&Bytes> {
        let (l, w, bytes) = self.0.compressed.get_or_init(|| {
            let mut deflater = Deflater::new(level, window_bits, true)
                .expect("a connection's deflater has a window zlib honours");
            // Compressed into this thread's scratch and kept as an exact copy: the compressed
            // message lives as long as the message does (a room's history, its members'
            // queues), and an output buffer grown in 16 KiB steps, even shrunk in place, left
            // holes between those that the soak measured as +50 MiB of RSS.
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                scratch.clear();
                deflater.compress(&self.0.payload, &mut scratch, true);
                let compressed = Bytes::copy_from_slice(&scratch);
                if scratch.capacity() > SCRATCH_MAX {
                    *scratch = Vec::new();
                }
                (level, window_bits, compressed)
            })
        });
        (*l == level && *w == window_bits).then_some(bytes)
    }
}
