//! Outgoing frames: headers in the shortest form, payloads masked for the server, and a queue
//! of byte chunks ready for the socket.
//!
//! Small frames are appended to one buffer, so many small messages leave in one write; a large
//! unmasked payload is queued as its own shared [`Bytes`] chunk, without a copy.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use super::mask::apply_mask;
use super::{FrameHeader, OpCode};

/// Payloads at least this long are queued without copying when no mask applies.
const ZERO_COPY_MIN: usize = 8 * 1024;

/// A coalescing buffer no larger than this is kept, emptied, once everything in it has been
/// written through [`Outgoing::advance`]: a connection exchanging small messages allocates
/// nothing per message. A larger one is let go, so a connection that once sent a burst does not
/// hold its buffer while idle.
const KEEP_MAX: usize = 512;

/// A buffer started after a larger one was let go is made as large as what that one held, up
/// to this much: a connection receiving bursts (a busy room's member) allocates its buffer
/// once per burst instead of growing it, copy after copy, from nothing.
const HINT_MAX: usize = 16 * 1024;

/// Encoded frames waiting to be written, in order.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// Chunks ready to go, older than `pending`.
    ready: VecDeque<Bytes>,
    /// Small frames being coalesced; always after everything in `ready`.
    pending: BytesMut,
    /// How much of the front of `pending` has been written already.
    written: usize,
    /// Bytes not yet written or taken, in `ready` and `pending` together.
    len: usize,
    /// How much the last buffer let go held (at most [`HINT_MAX`]): the size a new one starts
    /// with.
    hint: usize,
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
        let header_len = header.encoded_len();
        self.len += header_len + payload.len();
        let zero_copy = mask.is_none() && payload.len() >= ZERO_COPY_MIN;
        // One reservation for the header and the copied payload: no growth in between.
        self.reserve(header_len + if zero_copy { 0 } else { payload.len() });
        header.encode(&mut self.pending);
        match mask {
            None if zero_copy => {
                let head = self.take_pending();
                self.ready.push_back(head);
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

    /// Encodes one frame whose payload is shared with others (a prepared message): the same as
    /// [`push`](Self::push), but a payload that is copied is read where it is, without taking a
    /// reference to it (an atomic operation on a count that every receiver shares).
    pub(crate) fn push_shared(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        payload: &Bytes,
    ) {
        if mask.is_none() && payload.len() >= ZERO_COPY_MIN {
            return self.push(fin, rsv1, opcode, mask, payload.clone());
        }
        let header = FrameHeader { fin, rsv1, opcode, mask, payload_len: payload.len() as u64 };
        self.len += header.encoded_len() + payload.len();
        self.reserve(header.encoded_len() + payload.len());
        header.encode(&mut self.pending);
        let start = self.pending.len();
        self.pending.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(key, &mut self.pending[start..]);
        }
    }

    /// Room for `n` more bytes in `pending`; a new buffer starts at the size of the last.
    fn reserve(&mut self, n: usize) {
        if self.pending.capacity() == 0 {
            self.pending.reserve(n.max(self.hint));
        } else {
            self.pending.reserve(n);
        }
    }

    /// The next chunk of bytes to write, oldest first, taken out of the queue.
    pub(crate) fn next(&mut self) -> Option<Bytes> {
        let chunk = match self.ready.pop_front() {
            Some(chunk) => chunk,
            None if self.pending.len() == self.written => return None,
            None => self.take_pending(),
        };
        self.len -= chunk.len();
        Some(chunk)
    }

    /// The unwritten part of `pending`, as a chunk of its own; `pending` starts anew.
    fn take_pending(&mut self) -> Bytes {
        let mut chunk = std::mem::take(&mut self.pending).freeze();
        chunk.advance(std::mem::take(&mut self.written));
        chunk
    }

    /// Fills `dst` with the bytes to write next, oldest first, without taking them out of the
    /// queue; returns how many slices it filled. [`advance`](Self::advance) says how many bytes
    /// were written.
    pub(crate) fn chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let unwritten = &self.pending[self.written..];
        let pending = (!unwritten.is_empty()).then_some(unwritten);
        let chunks = self.ready.iter().map(|b| &b[..]).chain(pending);
        let mut filled = 0;
        for (slot, chunk) in dst.iter_mut().zip(chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    /// Drops the first `n` bytes of the queue, which have been written.
    ///
    /// # Panics
    /// If fewer than `n` bytes are queued.
    pub(crate) fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advanced past the queued bytes: {n} > {}", self.len);
        self.len -= n;
        while let Some(front) = self.ready.front_mut() {
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.ready.pop_front();
        }
        self.written += n;
        if self.written == self.pending.len() {
            self.written = 0;
            if self.pending.capacity() <= KEEP_MAX {
                self.pending.clear();
            } else {
                self.hint = self.pending.len().min(HINT_MAX);
                self.pending = BytesMut::new();
            }
        }
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

    /// Writes the queue through `chunks`/`advance`, `step` bytes at most per write.
    fn write_all(out: &mut Outgoing, step: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        while out.len() > 0 {
            let mut slices = [IoSlice::new(&[]); 4];
            let filled = out.chunks(&mut slices);
            assert!(filled > 0);
            let mut n = 0;
            for slice in &slices[..filled] {
                let take = slice.len().min(step - n);
                wire.extend_from_slice(&slice[..take]);
                n += take;
                if n == step {
                    break;
                }
            }
            out.advance(n);
        }
        assert_eq!(out.chunks(&mut [IoSlice::new(&[])]), 0);
        wire
    }

    #[test]
    fn partial_writes_across_chunks_keep_order() {
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        let mut expected = Outgoing::default();
        let mut out = Outgoing::default();
        for q in [&mut expected, &mut out] {
            q.push(true, false, OpCode::Text, None, "ab".into());
            q.push(true, false, OpCode::Binary, None, big.clone());
            q.push(true, false, OpCode::Text, Some([1, 2, 3, 4]), "cd".into());
        }
        let expected = drain(&mut expected);
        for step in [1, 3, 4, 5, 1000, 100_000] {
            let mut out = Outgoing::default();
            out.push(true, false, OpCode::Text, None, "ab".into());
            out.push(true, false, OpCode::Binary, None, big.clone());
            out.push(true, false, OpCode::Text, Some([1, 2, 3, 4]), "cd".into());
            assert_eq!(write_all(&mut out, step), expected, "{step} bytes per write");
        }
        // Written in part, then taken: `next` gives only what is left.
        out.advance(1);
        let mut rest = Vec::new();
        while let Some(chunk) = out.next() {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest, expected[1..]);
        // A frame queued while the buffer is half written goes after it.
        out.push(true, false, OpCode::Text, None, "xyz".into());
        out.advance(2);
        out.push(true, false, OpCode::Text, None, "w".into());
        assert_eq!(write_all(&mut out, 2), [b'x', b'y', b'z', 0x81, 0x01, b'w']);
    }

    #[test]
    fn a_small_buffer_is_reused_a_large_one_let_go() {
        let mut out = Outgoing::default();
        out.push(true, false, OpCode::Text, None, "hello".into());
        let buffer = out.pending.as_ptr();
        write_all(&mut out, usize::MAX);
        out.push(true, false, OpCode::Text, None, "again".into());
        assert_eq!(out.pending.as_ptr(), buffer, "the written buffer is reused");
        write_all(&mut out, usize::MAX);
        out.push(true, false, OpCode::Binary, None, Bytes::from(vec![0u8; KEEP_MAX + 1]));
        write_all(&mut out, usize::MAX);
        assert_eq!(out.pending.capacity(), 0, "a buffer over KEEP_MAX is freed once written");
    }

    #[test]
    fn a_burst_after_a_burst_starts_at_its_size() {
        let mut out = Outgoing::default();
        let message = || Bytes::from(vec![b'x'; 100]);
        for _ in 0..20 {
            out.push(true, false, OpCode::Text, None, message());
        }
        write_all(&mut out, usize::MAX);
        assert_eq!(out.pending.capacity(), 0);
        out.push(true, false, OpCode::Text, None, message());
        assert!(out.pending.capacity() >= 20 * 102, "room for the whole burst at once");
        let buffer = out.pending.as_ptr();
        for _ in 1..20 {
            out.push(true, false, OpCode::Text, None, message());
        }
        assert_eq!(out.pending.as_ptr(), buffer, "not moved while the burst came");
        write_all(&mut out, usize::MAX);
        out.push(true, false, OpCode::Binary, None, Bytes::from(vec![0u8; 7000]));
        out.push(true, false, OpCode::Binary, None, Bytes::from(vec![0u8; 7000]));
        out.push(true, false, OpCode::Binary, None, Bytes::from(vec![0u8; 7000]));
        write_all(&mut out, usize::MAX);
        out.push(true, false, OpCode::Text, None, "hi".into());
        assert_eq!(out.pending.capacity(), HINT_MAX, "never more than HINT_MAX ahead");
    }

    #[test]
    #[should_panic(expected = "advanced past the queued bytes")]
    fn advancing_past_the_queue_is_a_bug() {
        let mut out = Outgoing::default();
        out.push(true, false, OpCode::Text, None, "hi".into());
        out.advance(5);
    }
}
