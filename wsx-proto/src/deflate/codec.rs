//! Compressing and inflating messages (RFC 7692 §7.2) with zlib's raw deflate (flate2 on the
//! pure-Rust zlib-rs backend, which honours window sizes).
//!
//! Inflating is incremental and bounded: output past the message limit fails with 1009 at once,
//! so a small "bomb" never allocates more than the limit.

use std::cell::RefCell;

use bytes::{BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;

/// The bytes a sync flush ends with; removed from each compressed message (§7.2.1) and put back
/// before inflating (§7.2.2).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output grows in steps of this much.
const STEP: usize = 16 * 1024;

thread_local! {
    /// A compressor (level, window, state) this thread lends to the next message it compresses
    /// without context takeover, taken back reset when the message ends: a zlib state is some
    /// 300 KiB, and allocating and clearing one per message costs more than the compression of a
    /// small one.
    static SPARE_DEFLATE: RefCell<Option<(u32, u8, Compress)>> = const { RefCell::new(None) };

    /// An inflater this thread lends likewise: a state is some 47 KiB, and one allocated and
    /// freed per message churns the heap (freed blocks that size get split by small long-lived
    /// allocations, and the next state must come from fresh memory: a server's RSS then grows
    /// while its heap does not).
    static SPARE_INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses this side's messages.
#[derive(Debug)]
pub(crate) struct Deflater {
    state: Option<Compress>,
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
}

impl Deflater {
    /// `None` when zlib cannot honour the window (8 bits): messages then go uncompressed.
    pub(crate) fn new(level: u32, window_bits: u8, no_context_takeover: bool) -> Option<Self> {
        (window_bits >= 9).then_some(Self { state: None, level, window_bits, no_context_takeover })
    }

    /// The level and window of a deflater that starts afresh for every message (no context
    /// takeover): its output for a message depends on nothing else, so it can be shared.
    pub(crate) fn shareable(&self) -> Option<(u32, u8)> {
        self.no_context_takeover.then_some((self.level, self.window_bits))
    }

    /// Compresses `input`, the next part of a message, onto `out`. `last`: the message ends
    /// here, so the sync-flush trailer is removed and, without context takeover, the state goes
    /// back to the thread's spare.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, last: bool) {
        let (level, bits, lend) = (self.level, self.window_bits, self.no_context_takeover);
        let state = self.state.get_or_insert_with(|| borrow_compress(level, bits, lend));
        if !last {
            return compress_part(state, input, out);
        }
        compress_message(state, input, out);
        if let Some(mut state) = self.state.take_if(|_| lend) {
            // Without context takeover the next message starts afresh: from the spare.
            state.reset();
            SPARE_DEFLATE.with(|spare| *spare.borrow_mut() = Some((level, bits, state)));
        }
    }
}

/// A compressor for a new message: with `lend` (no context takeover), the thread's spare one if
/// it has one of this level and window.
fn borrow_compress(level: u32, window_bits: u8, lend: bool) -> Compress {
    let spare = lend.then(|| SPARE_DEFLATE.with(|spare| spare.borrow_mut().take())).flatten();
    match spare {
        Some((l, b, state)) if (l, b) == (level, window_bits) => state,
        _ => new_compress(level, window_bits),
    }
}

fn new_compress(level: u32, window_bits: u8) -> Compress {
    Compress::new_with_window_bits(Compression::new(level), false, window_bits)
}

/// Compresses the last part of a message onto `out`, without the sync-flush trailer (§7.2.1).
fn compress_message(state: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    let start_out = out.len();
    compress_part(state, input, out);
    if out.len() == start_out {
        // zlib writes nothing when nothing is new since its last flush; the message must
        // still end with an empty stored block (§7.2.1), whose first byte is all that
        // remains once its last four are removed (§7.2.3.6).
        out.push(0x00);
    } else if out.ends_with(&TRAILER) {
        out.truncate(out.len() - TRAILER.len());
    }
}

/// Compresses `input` onto `out`, flushed (sync) so that the peer can inflate all of it.
fn compress_part(state: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    let start_in = state.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(STEP.max(input.len() / 2));
        }
        let consumed = (state.total_in() - start_in) as usize;
        // Raw deflate of in-memory data cannot fail: the stream is always in a valid state.
        state
            .compress_vec(&input[consumed..], out, FlushCompress::Sync)
            .expect("deflate of a valid stream");
        // zlib: a flush is complete when it returns with output space left over.
        if (state.total_in() - start_in) as usize == input.len() && out.len() < out.capacity() {
            break;
        }
    }
}

/// Inflates the peer's messages.
#[derive(Debug)]
pub(crate) struct Inflater {
    state: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// The deflate stream ended (a block with BFINAL): the rest of the message is ignored.
    ended: bool,
}

impl Inflater {
    pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        // zlib inflates an 8-bit window with a 9-bit one; a larger window reads any smaller.
        Self { state: None, window_bits: window_bits.max(9), no_context_takeover, ended: false }
    }

    /// Inflates the next part of a compressed message onto `out`, failing with 1009 as soon as
    /// `out` would pass `limit`.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        if self.ended {
            return Ok(());
        }
        let (bits, lend) = (self.window_bits, self.no_context_takeover);
        let state = self.state.get_or_insert_with(|| borrow_decompress(bits, lend));
        let start_in = state.total_in();
        let mut scratch = [0u8; 8 * 1024];
        loop {
            let consumed = (state.total_in() - start_in) as usize;
            let before_out = state.total_out();
            let status = state
                .decompress(&input[consumed..], &mut scratch, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            let produced = (state.total_out() - before_out) as usize;
            if out.len() + produced > limit {
                return Err(ProtocolError::MessageTooBig {
                    size: (out.len() + produced) as u64,
                    max: limit,
                });
            }
            out.put_slice(&scratch[..produced]);
            let now = (state.total_in() - start_in) as usize;
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(());
            }
            let all_in = now == input.len() && produced < scratch.len();
            let stuck = produced == 0 && now == consumed;
            if all_in || stuck {
                return Ok(());
            }
        }
    }

    /// Ends a message: inflates the trailer the sender removed, and frees or keeps the state.
    pub(crate) fn finish(&mut self, out: &mut BytesMut, limit: usize) -> Result<(), ProtocolError> {
        let result = self.inflate(&TRAILER, out, limit);
        if self.no_context_takeover || self.ended {
            // A stream that ended with BFINAL cannot be continued: the next message starts anew.
            let state = self.state.take();
            if let Some(mut state) = state.filter(|_| self.no_context_takeover) {
                state.reset(false); // (a 15-bit window)
                SPARE_INFLATE.with(|spare| *spare.borrow_mut() = Some(state));
            }
            self.ended = false;
        }
        result
    }
}

/// An inflater for a new message: with `lend` (no context takeover), the thread's spare one if
/// it has one. (A spare has the largest window, which inflates what any window compressed; zlib
/// allocates the largest window whatever the setting.)
fn borrow_decompress(window_bits: u8, lend: bool) -> Decompress {
    lend.then(|| SPARE_INFLATE.with(|spare| spare.borrow_mut().take()))
        .flatten()
        .unwrap_or_else(|| Decompress::new_with_window_bits(false, window_bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(d: &mut Deflater, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.compress(text, &mut out, true);
        out
    }

    fn inflate(i: &mut Inflater, data: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = BytesMut::new();
        i.inflate(data, &mut out, limit)?;
        i.finish(&mut out, limit)?;
        Ok(out.to_vec())
    }

    /// RFC 7692 §7.2.3.1 and §7.2.3.2: "Hello", then "Hello" again sharing the window.
    #[test]
    fn rfc_hello_with_and_without_context_takeover() {
        let mut d = Deflater::new(6, 15, false).unwrap();
        assert_eq!(deflate(&mut d, b"Hello"), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(deflate(&mut d, b"Hello"), [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut fresh = Deflater::new(6, 15, true).unwrap();
        assert_eq!(deflate(&mut fresh, b"Hello"), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(deflate(&mut fresh, b"Hello"), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);

        let mut i = Inflater::new(15, false);
        assert_eq!(
            inflate(&mut i, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap(),
            b"Hello"
        );
        assert_eq!(inflate(&mut i, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap(), b"Hello");
    }

    /// Messages without context takeover borrow the thread's spare state: interleaved with
    /// other settings and with a message compressed in parts (which holds the state it borrowed
    /// to its end), each still compresses exactly as from a fresh state.
    #[test]
    fn spare_state_starts_every_message_afresh() {
        let text: Vec<u8> = (0..5_000u32).map(|i| (i % 11) as u8 + b'a').collect();
        let fresh = |level, bits| {
            let mut out = Vec::new();
            compress_message(&mut new_compress(level, bits), &text, &mut out);
            out
        };
        let (six, nine) = (fresh(6, 15), fresh(9, 10));
        let mut a = Deflater::new(6, 15, true).unwrap();
        let mut b = Deflater::new(9, 10, true).unwrap();
        for _ in 0..3 {
            assert_eq!(deflate(&mut a, &text), six);
            assert_eq!(deflate(&mut b, &text), nine);
            let mut parts = Vec::new();
            a.compress(&text[..100], &mut parts, false);
            assert!(a.state.is_some(), "a message in parts keeps its own state");
            a.compress(&text[100..], &mut parts, true);
            assert!(a.state.is_none());
            let mut i = Inflater::new(15, true);
            assert_eq!(inflate(&mut i, &parts, 10_000).unwrap(), text);
            assert_eq!(inflate(&mut i, &deflate(&mut a, b"Hello"), 100).unwrap(), b"Hello");
        }
    }

    /// Inflaters without context takeover lend the thread's spare state from one
    /// message to the next: one in the middle of a message keeps its own while another inflates
    /// whole messages, a message that ended with BFINAL or failed leaves a clean spare, and each
    /// message still inflates as from a fresh state.
    #[test]
    fn spare_inflater_starts_every_message_afresh() {
        // 1,000 pseudo-random letters, five times: matches 1,000 bytes back.
        let mut x = 1u32;
        let mut letter = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            b'a' + (x >> 16) as u8 % 26
        };
        let text: Vec<u8> = (0..1_000).map(|_| letter()).collect::<Vec<_>>().repeat(5);
        let mut d = Deflater::new(6, 15, true).unwrap();
        let whole = deflate(&mut d, &text);
        let (mut a, mut b) = (Inflater::new(15, true), Inflater::new(15, true));
        for _ in 0..3 {
            let mut parts = BytesMut::new();
            a.inflate(&whole[..whole.len() / 2], &mut parts, 10_000).unwrap();
            assert_eq!(inflate(&mut b, &whole, 10_000).unwrap(), text, "b borrows the spare");
            assert!(b.state.is_none() && a.state.is_some());
            let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
            assert_eq!(inflate(&mut b, &bfinal, 100).unwrap(), b"Hello");
            assert!(inflate(&mut b, &[0xff, 0xff, 0xff], 100).is_err(), "not deflate");
            b.finish(&mut BytesMut::new(), 100).ok();
            a.inflate(&whole[whole.len() / 2..], &mut parts, 10_000).unwrap();
            a.finish(&mut parts, 10_000).unwrap();
            assert_eq!(&parts[..], &text[..], "a's own state, to the end of its message");
            assert!(SPARE_INFLATE.with(|spare| spare.borrow().is_some()));
        }
        // A smaller window borrows the same (the largest window inflates every smaller one).
        let mut nine = Deflater::new(6, 9, true).unwrap();
        let mut small = Inflater::new(9, true);
        assert_eq!(inflate(&mut small, &deflate(&mut nine, &text), 10_000).unwrap(), text);
    }

    /// §7.2.3.3: a stored (uncompressed) block; §7.2.3.4: BFINAL set; §7.2.3.5: two blocks.
    #[test]
    fn rfc_stored_bfinal_and_two_blocks() {
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        assert_eq!(inflate(&mut Inflater::new(15, false), &stored, 100).unwrap(), b"Hello");
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut i = Inflater::new(15, false);
        assert_eq!(inflate(&mut i, &bfinal, 100).unwrap(), b"Hello");
        assert_eq!(inflate(&mut i, &bfinal, 100).unwrap(), b"Hello", "a new stream after BFINAL");
        let two = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&mut Inflater::new(15, false), &two, 100).unwrap(), b"Hello");
    }

    /// The compressed stream may be cut anywhere (§7.2.3.1's fragmented example).
    #[test]
    fn inflate_in_pieces() {
        let mut i = Inflater::new(15, false);
        let mut out = BytesMut::new();
        i.inflate(&[0xf2, 0x48, 0xcd], &mut out, 100).unwrap();
        i.inflate(&[0xc9, 0xc9, 0x07, 0x00], &mut out, 100).unwrap();
        i.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
    }

    #[test]
    fn large_messages_roundtrip_with_every_window() {
        let text: Vec<u8> = (0..300_000u32).map(|i| (i % 7 + i / 1000 % 13) as u8 + b'a').collect();
        for bits in 9..=15 {
            for no_takeover in [false, true] {
                let mut d = Deflater::new(6, bits, no_takeover).unwrap();
                let mut i = Inflater::new(bits, no_takeover);
                for _ in 0..3 {
                    let compressed = deflate(&mut d, &text);
                    assert!(compressed.len() < text.len() / 4, "bits {bits}");
                    assert_eq!(inflate(&mut i, &compressed, 1 << 20).unwrap(), text, "bits {bits}");
                }
            }
        }
        assert!(Deflater::new(6, 8, false).is_none(), "zlib cannot compress with 8 bits");
    }

    /// A bomb: a few KiB that inflate to 32 MiB are refused as soon as the limit is passed.
    #[test]
    fn bomb_is_refused_at_the_limit() {
        let zeros = vec![0u8; 32 << 20];
        let mut d = Deflater::new(9, 15, true).unwrap();
        let bomb = deflate(&mut d, &zeros);
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let mut i = Inflater::new(15, true);
        let mut out = BytesMut::new();
        let err = i.inflate(&bomb, &mut out, 1 << 20).unwrap_err();
        assert!(matches!(err, ProtocolError::MessageTooBig { max: 1048576, .. }), "{err:?}");
        assert!(out.len() <= 1 << 20, "never more than the limit: {}", out.len());
        assert!(out.capacity() <= 2 << 20, "nor allocated: {}", out.capacity());
    }

    /// Found by the interop suite (Node ws and Python websockets failed with 1007): an empty
    /// message after another produced no output, and the receiver's restored trailer was then
    /// not a valid block. Empty messages and empty last fragments, in every order.
    #[test]
    fn interop_empty_messages_keep_the_stream_valid() {
        for no_takeover in [false, true] {
            let mut d = Deflater::new(6, 15, no_takeover).unwrap();
            let mut i = Inflater::new(15, no_takeover);
            for msg in [&b""[..], b"", b"\x00", b"abc", b"", b"Hello", b"Hello", b""] {
                assert_eq!(inflate(&mut i, &deflate(&mut d, msg), 100).unwrap(), msg);
            }
            // a fragmented message whose last fragment is empty
            let mut first = Vec::new();
            d.compress(b"Hello", &mut first, false);
            let mut last = Vec::new();
            d.compress(b"", &mut last, true);
            let mut out = BytesMut::new();
            i.inflate(&first, &mut out, 100).unwrap();
            i.inflate(&last, &mut out, 100).unwrap();
            i.finish(&mut out, 100).unwrap();
            assert_eq!(&out[..], b"Hello");
        }
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut i = Inflater::new(15, false);
        assert_eq!(
            inflate(&mut i, &[0xff, 0xff, 0xff, 0xff], 100),
            Err(ProtocolError::InvalidCompressedData)
        );
    }
}
