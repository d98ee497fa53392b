//! Outgoing frames: headers in the shortest form, payloads masked for the server, and a queue
//! of byte chunks ready for the socket.
//!
//! Small frames are appended to one buffer, so many small messages leave in one write; a large
//! unmasked payload is queued as its own shared [`Bytes`] chunk, without a copy.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::mask::apply_mask;
use super::{FrameHeader, OpCode};

/// Payloads at least this long are queued without copying when no mask applies.
const ZERO_COPY_MIN: usize = 8 * 1024;

/// Encoded frames waiting to be written, in order.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// Chunks ready to go, older than `pending`.
    ready: VecDeque<Bytes>,
    /// Small frames being coalesced; always after everything in `ready`.
    pending: BytesMut,
    /// Bytes in `ready` and `pending` together.
    len: usize,
}

impl Outgoing {
    /// Encodes one frame. `mask` is the key for a client's frame, `None` for a server's.
    pub(crate) fn push(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        payload: Bytes,
    ) {
        let header = FrameHeader { fin, rsv1, opcode, mask, payload_len: payload.len() as u64 };
        self.len += header.encoded_len() + payload.len();
        header.encode(&mut self.pending);
        match mask {
            None if payload.len() >= ZERO_COPY_MIN => {
                self.ready.push_back(self.pending.split().freeze());
                self.ready.push_back(payload);
            }
            None => self.pending.extend_from_slice(&payload),
            Some(key) => {
                let start = self.pending.len();
                self.pending.extend_from_slice(&payload);
                apply_mask(key, &mut self.pending[start..]);
            }
        }
    }

    /// The next chunk of bytes to write, oldest first.
    pub(crate) fn next(&mut self) -> Option<Bytes> {
        let chunk = match self.ready.pop_front() {
            Some(chunk) => chunk,
            None if self.pending.is_empty() => return None,
            // `take`, not `split`: no spare capacity stays behind to pin the written bytes'
            // allocation while the connection is idle.
            None => std::mem::take(&mut self.pending).freeze(),
        };
        self.len -= chunk.len();
        Some(chunk)
    }

    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut Outgoing) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = out.next() {
            all.extend_from_slice(&chunk);
        }
        assert_eq!(out.len(), 0);
        all
    }

    #[test]
    fn rfc_5_7_frames() {
        let mut out = Outgoing::default();
        out.push(true, false, OpCode::Text, None, Bytes::from_static(b"Hello"));
        assert_eq!(drain(&mut out), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.push(true, false, OpCode::Text, Some([0x37, 0xfa, 0x21, 0x3d]), "Hello".into());
        assert_eq!(
            drain(&mut out),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        out.push(false, false, OpCode::Text, None, "Hel".into());
        out.push(true, false, OpCode::Continuation, None, "lo".into());
        assert_eq!(drain(&mut out), [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        out.push(true, false, OpCode::Ping, None, "Hello".into());
        assert_eq!(drain(&mut out), [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.push(true, false, OpCode::Pong, Some([0x37, 0xfa, 0x21, 0x3d]), "Hello".into());
        assert_eq!(
            drain(&mut out),
            [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn small_frames_coalesce_and_large_ones_keep_order() {
        let mut out = Outgoing::default();
        for _ in 0..10 {
            out.push(true, false, OpCode::Binary, None, Bytes::from_static(b"x"));
        }
        let big = Bytes::from(vec![7u8; 65536]);
        out.push(true, false, OpCode::Binary, None, big.clone());
        out.push(true, false, OpCode::Binary, None, Bytes::from_static(b"y"));
        assert_eq!(out.len(), 10 * 3 + 10 + 65536 + 3);
        let first = out.next().unwrap();
        assert_eq!(first.len(), 30 + 10, "ten small frames and the big header in one chunk");
        let second = out.next().unwrap();
        assert_eq!(second.as_ptr(), big.as_ptr(), "the big payload is not copied");
        assert_eq!(&out.next().unwrap()[..], [0x82, 0x01, b'y']);
        assert!(out.next().is_none());
    }
}
