//! `Assembler`: data-frame pieces to messages (RFC 6455 §5.4, §5.6).
//!
//! Enforces the fragmentation rules (a continuation needs a message in progress; a new message
//! may not start inside another), the message-size limit (checked at each frame header, before
//! the frame's payload is buffered; for a compressed message, on what it inflates to, and on its
//! compressed bytes against the compressed bound) and UTF-8 for text, as the bytes arrive.
//!
//! Memory follows the bytes that arrived, never the length a header claims: the message buffer
//! grows geometrically as pieces come, capped by what the frame still announces.

use bytes::{Bytes, BytesMut};

use crate::config::Limits;
use crate::deflate::codec::Inflater;
use crate::error::ProtocolError;
use crate::frame::decode::Piece;
use crate::frame::OpCode;
use crate::message::{Message, Utf8Bytes};
use crate::utf8::Utf8Validator;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// Joins the fragments of one message at a time.
#[derive(Debug)]
pub(crate) struct Assembler {
    max_message_size: usize,
    /// The message in progress, if any.
    kind: Option<Kind>,
    /// Its bytes so far, when it spans several pieces.
    buf: BytesMut,
    utf8: Utf8Validator,
    /// permessage-deflate, if negotiated.
    inflater: Option<Box<Inflater>>,
    /// The message in progress is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Compressed bytes of the message in progress so far (bounded by
    /// [`Limits::compressed_size`] of the message limit).
    wire: u64,
}

impl Assembler {
    pub(crate) fn new(max_message_size: usize, inflater: Option<Box<Inflater>>) -> Self {
        Self {
            max_message_size,
            kind: None,
            buf: BytesMut::new(),
            utf8: Utf8Validator::default(),
            inflater,
            compressed: false,
            wire: 0,
        }
    }

    /// The capacity of the message buffer.
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Takes a piece of a data frame; returns the message it completes, if any.
    pub(crate) fn push(&mut self, piece: Piece) -> Result<Option<Message>, ProtocolError> {
        let header = piece.header;
        if piece.first {
            match (header.opcode, self.kind) {
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Text, None) => self.kind = Some(Kind::Text),
                (OpCode::Binary, None) => self.kind = Some(Kind::Binary),
                (OpCode::Continuation, Some(_)) => {}
                (OpCode::Close | OpCode::Ping | OpCode::Pong, _) => {
                    unreachable!("the connection handles control frames itself")
                }
            }
            if header.opcode != OpCode::Continuation {
                // The decoder lets RSV1 through only when permessage-deflate was agreed on.
                self.compressed = header.rsv1;
                self.wire = 0;
            }
            if self.compressed {
                // Inflated bytes are checked as they come; the compressed ones here, so that
                // frames that inflate to little cannot go on for ever.
                self.wire += header.payload_len;
                let max = Limits::compressed_size(self.max_message_size);
                if self.wire > max as u64 {
                    return Err(ProtocolError::MessageTooBig { size: self.wire, max });
                }
            }
            // A compressed message's limit applies to its inflated size, checked as it inflates.
            let size = self.buf.len() as u64 + header.payload_len;
            if !self.compressed && size > self.max_message_size as u64 {
                return Err(ProtocolError::MessageTooBig { size, max: self.max_message_size });
            }
        }
        let kind = self.kind.unwrap_or(Kind::Binary);
        let ends_message = piece.last && header.fin;

        // Fast path: a whole message in one piece is neither copied nor validated twice.
        if piece.first && ends_message && header.opcode != OpCode::Continuation && !self.compressed
        {
            self.kind = None;
            return Ok(Some(finish(kind, piece.payload)?));
        }

        let start = self.buf.len();
        match (&mut self.inflater, self.compressed) {
            (Some(inflater), true) => {
                inflater.inflate(&piece.payload, &mut self.buf, self.max_message_size)?;
                if ends_message {
                    inflater.finish(&mut self.buf, self.max_message_size)?;
                }
            }
            _ => {
                // Announced but not yet arrived: what this frame still claims after this piece.
                let announced = header.payload_len.saturating_sub(piece.payload.len() as u64);
                grow(&mut self.buf, piece.payload.len(), announced);
                self.buf.extend_from_slice(&piece.payload);
            }
        }
        if kind == Kind::Text {
            self.utf8.feed(&self.buf[start..]).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if !ends_message {
            return Ok(None);
        }
        self.kind = None;
        if kind == Kind::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        // The whole buffer goes with the message, and a new empty one (no allocation) stays:
        // an idle connection holds no message buffer. (`split()` would keep the spare capacity,
        // and with it the whole allocation, alive here after the application dropped the
        // message: a connection would hold as much as its largest inflated message.)
        finish(kind, std::mem::take(&mut self.buf).freeze()).map(Some)
    }
}

/// Makes room for `incoming` bytes: geometric growth (by four, so a large message is copied
/// about a third of its size over in all), following the bytes that arrived, and never past what
/// the frame still `announced` beyond them (which the limit already bounds). A peer that
/// announces 16 MiB and sends 16 bytes costs a few KiB of buffer, not 16 MiB.
fn grow(buf: &mut BytesMut, incoming: usize, announced: u64) {
    let needed = buf.len() + incoming;
    if needed <= buf.capacity() {
        return;
    }
    let announced = usize::try_from(announced).unwrap_or(usize::MAX);
    let target = needed.max(buf.capacity().saturating_mul(4)).max(MIN_MESSAGE_BUFFER);
    let target = target.min(needed.saturating_add(announced));
    buf.reserve(target - buf.len());
}

/// The smallest message buffer allocated once a message spans pieces.
const MIN_MESSAGE_BUFFER: usize = 4096;

fn finish(kind: Kind, payload: Bytes) -> Result<Message, ProtocolError> {
    Ok(match kind {
        Kind::Binary => Message::Binary(payload),
        Kind::Text => {
            Message::Text(Utf8Bytes::try_from(payload).map_err(|_| ProtocolError::InvalidUtf8)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameHeader;

    fn piece(opcode: OpCode, fin: bool, payload: &'static [u8], first: bool, last: bool) -> Piece {
        Piece {
            header: FrameHeader {
                fin,
                rsv1: false,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            },
            payload: Bytes::from_static(payload),
            first,
            last,
        }
    }

    #[test]
    fn joins_fragments() {
        let mut a = Assembler::new(100, None);
        assert_eq!(a.push(piece(OpCode::Text, false, b"Hel", true, true)), Ok(None));
        assert_eq!(
            a.push(piece(OpCode::Continuation, true, b"lo", true, true)),
            Ok(Some(Message::text("Hello")))
        );
    }

    #[test]
    fn continuation_needs_a_message() {
        let mut a = Assembler::new(100, None);
        assert_eq!(
            a.push(piece(OpCode::Continuation, true, b"x", true, true)),
            Err(ProtocolError::UnexpectedContinuation)
        );
    }

    #[test]
    fn no_new_message_inside_a_message() {
        let mut a = Assembler::new(100, None);
        a.push(piece(OpCode::Binary, false, b"x", true, true)).unwrap();
        assert_eq!(
            a.push(piece(OpCode::Text, true, b"y", true, true)),
            Err(ProtocolError::ExpectedContinuation)
        );
    }

    #[test]
    fn invalid_utf8_fails_mid_fragment() {
        let mut a = Assembler::new(100, None);
        // first piece of a frame whose remaining bytes have not arrived yet
        assert_eq!(
            a.push(piece(OpCode::Text, false, b"ok\xce", true, false)),
            Ok(None),
            "a split code point is fine so far"
        );
        assert_eq!(
            a.push(piece(OpCode::Text, false, b"\xff", false, false)),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn message_limit_is_checked_at_the_header() {
        let mut a = Assembler::new(4, None);
        a.push(piece(OpCode::Binary, false, b"abc", true, true)).unwrap();
        let mut next = piece(OpCode::Continuation, true, b"", true, false);
        next.header.payload_len = 1 << 40;
        assert_eq!(a.push(next), Err(ProtocolError::MessageTooBig { size: 3 + (1 << 40), max: 4 }));
    }
}
