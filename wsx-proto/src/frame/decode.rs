//! `FrameDecoder`: bytes to frame pieces, enforcing the rules that depend on the connection
//! (masking direction, RSV1 only with an extension, the frame-size limit).
//!
//! Data frames are handed on in pieces as their payload arrives, already unmasked, so text can be
//! validated (invalid UTF-8 fails before the frame ends) and fragments assembled as they come.
//! Handed on whole: control frames (at most 125 bytes), and a binary message in one uncompressed
//! frame of up to 1 MiB, which then reaches the application without a copy.

use bytes::{Buf, Bytes, BytesMut};

use super::mask::apply_mask_at;
use super::{FrameHeader, OpCode};
use crate::config::Limits;
use crate::error::ProtocolError;
use crate::Role;

/// The largest one-frame binary message handed on whole. Larger ones come in pieces, as they
/// arrive, and are assembled in a buffer of their own size: buffered whole with their header,
/// their receive buffer would outgrow them (doubling), and a buffer that large is mapped anew
/// (and page-faulted in) for every message instead of reused.
const WHOLE_MAX: u64 = 1 << 20;

/// Payloads up to this long are copied out of the receive buffer (see [`take_payload`]).
const COPY_MAX: usize = 512;

/// A piece of one frame's payload, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The frame's header.
    pub(crate) header: FrameHeader,
    /// The payload bytes in this piece.
    pub(crate) payload: Bytes,
    /// This piece starts the frame.
    pub(crate) first: bool,
    /// This piece ends the frame.
    pub(crate) last: bool,
}

#[derive(Debug)]
enum State {
    Header,
    Payload { header: FrameHeader, done: u64 },
}

/// Decodes frames for one side of one connection.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    role: Role,
    rsv1_allowed: bool,
    max_frame_size: usize,
    /// The data message in progress is compressed (RSV1 on its first frame): its frames are
    /// measured against the compressed bound of the frame limit.
    compressed: bool,
    /// A payload was split off the source buffer (not copied) since [`take_shared`] was last
    /// asked: what is left of the buffer shares its memory with that payload.
    ///
    /// [`take_shared`]: Self::take_shared
    shared: bool,
    state: State,
}

impl FrameDecoder {
    pub(crate) fn new(role: Role, rsv1_allowed: bool, max_frame_size: usize) -> Self {
        let state = State::Header;
        Self { role, rsv1_allowed, max_frame_size, compressed: false, shared: false, state }
    }

    /// Whether the source buffer may share memory with a payload handed on since the last call.
    pub(crate) fn take_shared(&mut self) -> bool {
        std::mem::take(&mut self.shared)
    }

    /// Takes the next piece from `src`; `Ok(None)` when `src` holds nothing more to hand on.
    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Piece>, ProtocolError> {
        if let State::Header = self.state {
            let Some((header, len)) = FrameHeader::decode(src)? else {
                return Ok(None);
            };
            self.check(&header)?;
            if header.opcode.is_control() {
                // Whole control frames only: they are small and must not interleave.
                let total = len + header.payload_len as usize;
                if src.len() < total {
                    return Ok(None);
                }
                src.advance(len);
                let len = header.payload_len as usize;
                let payload = take_payload(src, len, header.mask, 0, &mut self.shared);
                return Ok(Some(Piece { header, payload, first: true, last: true }));
            }
            src.advance(len);
            if header.payload_len == 0 {
                return Ok(Some(Piece { header, payload: Bytes::new(), first: true, last: true }));
            }
            self.state = State::Payload { header, done: 0 };
        }
        let State::Payload { header, done } = &mut self.state else {
            unreachable!("the header state returned or moved to Payload above")
        };
        let remaining = header.payload_len - *done;
        // A binary message in one uncompressed frame (the usual case) up to WHOLE_MAX is handed
        // on whole, once it is all here, so it is never copied into a message buffer. Its size
        // is within the message limit already (`frame_size` is the smaller of the two limits).
        if header.opcode == OpCode::Binary
            && header.fin
            && !header.rsv1
            && header.payload_len <= WHOLE_MAX
            && (src.len() as u64) < remaining
        {
            return Ok(None);
        }
        // `remaining` is bounded by the frame limit, a usize, when the source is shorter.
        let take = usize::try_from(remaining).map_or(src.len(), |r| r.min(src.len()));
        if take == 0 {
            return Ok(None);
        }
        let offset = *done as usize;
        let payload = take_payload(src, take, header.mask, offset, &mut self.shared);
        let piece =
            Piece { header: *header, payload, first: *done == 0, last: take as u64 == remaining };
        *done += take as u64;
        if piece.last {
            self.state = State::Header;
        }
        Ok(Some(piece))
    }

    fn check(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // RFC 7692 §6: RSV1 only on the first frame of a data message, and only when negotiated.
        let first_data_frame = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv1 && (!self.rsv1_allowed || !first_data_frame) {
            return Err(ProtocolError::ReservedBits);
        }
        let compressed = match header.opcode {
            OpCode::Text | OpCode::Binary => header.rsv1,
            OpCode::Continuation => self.compressed,
            _ => false,
        };
        // A compressed frame of a message within the limit may be a little larger than the
        // message (incompressible data): its limit is on what it inflates to, checked then.
        let max = match compressed {
            true => Limits::compressed_size(self.max_frame_size),
            false => self.max_frame_size,
        };
        if header.payload_len > max as u64 {
            return Err(ProtocolError::FrameTooBig { size: header.payload_len, max });
        }
        if !header.opcode.is_control() {
            self.compressed = compressed && !header.fin;
        }
        Ok(())
    }
}

/// The next `len` bytes of `src`, unmasked: copied out when small, split off without a copy
/// otherwise (`shared` is then set: what is left of `src` shares memory with the payload).
fn take_payload(
    src: &mut BytesMut,
    len: usize,
    mask: Option<[u8; 4]>,
    offset: usize,
    shared: &mut bool,
) -> Bytes {
    if len <= COPY_MAX {
        // One small allocation, instead of sharing the buffer (a count that every later read
        // and the message's drop would touch).
        let payload = BytesMut::from(&src[..len]);
        src.advance(len);
        return unmask(payload, mask, offset);
    }
    *shared = true;
    unmask(src.split_to(len), mask, offset)
}

fn unmask(mut payload: BytesMut, mask: Option<[u8; 4]>, offset: usize) -> Bytes {
    if let Some(key) = mask {
        apply_mask_at(key, offset, &mut payload);
    }
    payload.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut FrameDecoder, wire: &[u8]) -> Vec<Piece> {
        let mut src = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(piece) = decoder.decode(&mut src).unwrap() {
            out.push(piece);
        }
        out
    }

    #[test]
    fn rfc_masked_hello_to_server() {
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let mut d = FrameDecoder::new(Role::Server, false, 1000);
        let pieces = decode_all(&mut d, &wire);
        assert_eq!(pieces.len(), 1);
        assert_eq!(&pieces[0].payload[..], b"Hello");
        assert!(pieces[0].first && pieces[0].last);
    }

    /// Small payloads are copied out of the source buffer, larger ones split off it, and the
    /// decoder says when the buffer may share memory with a payload it handed on.
    #[test]
    fn small_payloads_are_copied_large_ones_shared() {
        let frame = |len: usize| {
            let mut f = vec![0x82, 0x7e, (len >> 8) as u8, len as u8];
            f.extend(std::iter::repeat_n(7u8, len));
            f
        };
        let mut d = FrameDecoder::new(Role::Client, false, 1 << 20);
        for (len, shared) in [(16, false), (COPY_MAX, false), (COPY_MAX + 1, true), (16, false)] {
            let mut src = BytesMut::with_capacity(4096);
            src.extend_from_slice(&frame(len));
            let piece = d.decode(&mut src).unwrap().unwrap();
            assert_eq!(piece.payload.len(), len);
            assert_eq!(d.take_shared(), shared, "{len}");
            assert!(!d.take_shared(), "taken");
            // A copy owns its memory alone; a split shares it while the source buffer lives.
            assert_eq!(piece.payload.try_into_mut().is_ok(), !shared, "{len}");
            drop(src);
        }
    }

    #[test]
    fn payload_is_handed_on_as_it_arrives() {
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let mut d = FrameDecoder::new(Role::Server, false, 1000);
        let mut src = BytesMut::new();
        let mut text = Vec::new();
        for &b in &wire {
            src.extend_from_slice(&[b]);
            while let Some(p) = d.decode(&mut src).unwrap() {
                assert_eq!(p.header.opcode, OpCode::Text);
                text.extend_from_slice(&p.payload);
            }
        }
        assert_eq!(text, b"Hello");
    }

    #[test]
    fn a_one_frame_binary_message_is_handed_on_whole() {
        let mut frame = vec![0x82, 0x85, 1, 2, 3, 4];
        frame.extend(b"bytes".iter().zip([1, 2, 3, 4].iter().cycle()).map(|(b, k)| b ^ k));
        let mut d = FrameDecoder::new(Role::Server, false, 1000);
        let mut src = BytesMut::new();
        for (i, &b) in frame.iter().enumerate() {
            src.extend_from_slice(&[b]);
            let piece = d.decode(&mut src).unwrap();
            if i + 1 < frame.len() {
                assert_eq!(piece, None, "nothing before the frame is all here ({i})");
                continue;
            }
            let piece = piece.unwrap();
            assert!(piece.first && piece.last);
            assert_eq!(&piece.payload[..], b"bytes");
        }
        // One larger than WHOLE_MAX comes in pieces, as it arrives.
        let mut d = FrameDecoder::new(Role::Client, false, 2 << 20);
        let len = (WHOLE_MAX + 1).to_be_bytes();
        let mut src = BytesMut::from(&[0x82, 0x7f][..]);
        src.extend_from_slice(&len);
        src.extend_from_slice(b"part");
        let piece = d.decode(&mut src).unwrap().unwrap();
        assert!(piece.first && !piece.last && &piece.payload[..] == b"part");
        // A fragment (FIN clear) is still handed on as it arrives.
        let mut d = FrameDecoder::new(Role::Client, false, 1000);
        let mut src = BytesMut::from(&[0x02, 0x05, b'a', b'b'][..]);
        assert_eq!(&d.decode(&mut src).unwrap().unwrap().payload[..], b"ab");
    }

    #[test]
    fn masking_direction_is_enforced() {
        let mut server = FrameDecoder::new(Role::Server, false, 1000);
        assert_eq!(
            server.decode(&mut BytesMut::from(&[0x81, 0x00][..])),
            Err(ProtocolError::UnmaskedFrame)
        );
        let mut client = FrameDecoder::new(Role::Client, false, 1000);
        assert_eq!(
            client.decode(&mut BytesMut::from(&[0x81, 0x80, 1, 2, 3, 4][..])),
            Err(ProtocolError::MaskedFrame)
        );
    }

    #[test]
    fn rsv1_needs_an_extension_and_a_data_frame() {
        let mut plain = FrameDecoder::new(Role::Client, false, 1000);
        assert_eq!(
            plain.decode(&mut BytesMut::from(&[0xc1, 0x00][..])),
            Err(ProtocolError::ReservedBits)
        );
        let mut deflate = FrameDecoder::new(Role::Client, true, 1000);
        assert!(deflate.decode(&mut BytesMut::from(&[0xc1, 0x00][..])).unwrap().is_some());
        assert_eq!(
            deflate.decode(&mut BytesMut::from(&[0xc9, 0x00][..])),
            Err(ProtocolError::ReservedBits)
        );
        assert_eq!(
            deflate.decode(&mut BytesMut::from(&[0xc0, 0x00][..])),
            Err(ProtocolError::ReservedBits),
            "never on a continuation"
        );
    }

    #[test]
    fn oversized_frame_fails_at_its_header() {
        let mut d = FrameDecoder::new(Role::Client, false, 100);
        // only the header of a 65536-byte frame: refused before any payload arrives
        let wire = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(
            d.decode(&mut BytesMut::from(&wire[..])),
            Err(ProtocolError::FrameTooBig { size: 65536, max: 100 })
        );
    }

    #[test]
    fn control_frames_wait_until_whole() {
        let mut d = FrameDecoder::new(Role::Client, false, 1000);
        let mut src = BytesMut::from(&[0x89, 0x05, b'H', b'e'][..]);
        assert_eq!(d.decode(&mut src), Ok(None));
        src.extend_from_slice(b"llo");
        let p = d.decode(&mut src).unwrap().unwrap();
        assert_eq!(&p.payload[..], b"Hello");
        assert_eq!(p.header.opcode, OpCode::Ping);
    }
}
