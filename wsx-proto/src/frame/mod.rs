//! The frame codec (RFC 6455 §5.2): [`OpCode`], [`FrameHeader`], decoding and encoding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod mask;

use bytes::BufMut;

use crate::error::ProtocolError;

/// A frame's opcode. RFC 6455 defines exactly these six; the others are reserved and rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }

    fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xa => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xa,
        }
    }
}

/// A decoded frame header (2 to 14 bytes on the wire).
///
/// RSV2 and RSV3 have no field: no extension we speak defines them, so decoding rejects them.
///
/// ```
/// use wsx_proto::{FrameHeader, OpCode};
/// // RFC 6455 §5.7: a single-frame masked text message "Hello"
/// let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let (header, len) = FrameHeader::decode(&wire).unwrap().unwrap();
/// assert_eq!(len, 6);
/// assert_eq!(header.opcode, OpCode::Text);
/// assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
/// assert_eq!(header.payload_len, 5);
/// let mut out = Vec::new();
/// header.encode(&mut out);
/// assert_eq!(out, wire[..6]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of a message.
    pub fin: bool,
    /// RSV1: set on the first frame of a compressed message (RFC 7692).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every frame a client sends.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest header: 2 bytes, an 8-byte length and a 4-byte mask.
    pub const MAX_LEN: usize = 14;

    /// Decodes a header from the start of `src`: `Ok(None)` if more bytes are needed, else the
    /// header and its length in bytes. Rejects what is invalid in any context: RSV2/RSV3,
    /// reserved opcodes, long or fragmented control frames, a 64-bit length with its top bit set.
    pub fn decode(src: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, ..] = *src else { return Ok(None) };
        if b0 & 0x30 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let opcode = OpCode::from_bits(b0 & 0x0f)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut len) = match b1 & 0x7f {
            126 => {
                let Some(b) = src.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
            }
            127 => {
                let Some(b) = src.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0; 8];
                be.copy_from_slice(b);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (n, 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode.is_control() {
            if payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(payload_len));
            }
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
        }
        let mask = if masked {
            let Some(b) = src.get(len..len + 4) else {
                return Ok(None);
            };
            len += 4;
            Some([b[0], b[1], b[2], b[3]])
        } else {
            None
        };
        let rsv1 = b0 & 0x40 != 0;
        Ok(Some((Self { fin, rsv1, opcode, mask, payload_len }, len)))
    }

    /// The header's length on the wire (shortest length form).
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header to `dst`, using the shortest length form (RFC 6455 §5.2).
    pub fn encode(&self, dst: &mut impl BufMut) {
        let b0 = u8::from(self.fin) << 7 | u8::from(self.rsv1) << 6 | self.opcode.bits();
        let m = if self.mask.is_some() { 0x80 } else { 0 };
        match self.payload_len {
            // The match arms bound the values, so the casts below cannot truncate.
            n @ 0..=125 => dst.put_slice(&[b0, m | n as u8]),
            n @ 126..=0xffff => {
                dst.put_slice(&[b0, m | 126]);
                dst.put_u16(n as u16);
            }
            n => {
                dst.put_slice(&[b0, m | 127]);
                dst.put_u64(n);
            }
        }
        if let Some(key) = self.mask {
            dst.put_slice(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(opcode: OpCode, len: u64) -> FrameHeader {
        FrameHeader { fin: true, rsv1: false, opcode, mask: None, payload_len: len }
    }

    fn encoded(h: &FrameHeader) -> Vec<u8> {
        let mut v = Vec::new();
        h.encode(&mut v);
        v
    }

    /// RFC 6455 §5.7, the examples whose headers differ.
    #[test]
    fn rfc_5_7_headers() {
        // unmasked "Hello"
        assert_eq!(encoded(&header(OpCode::Text, 5)), [0x81, 0x05]);
        // fragmented unmasked "Hel" + "lo"
        let first = FrameHeader { fin: false, ..header(OpCode::Text, 3) };
        assert_eq!(encoded(&first), [0x01, 0x03]);
        assert_eq!(encoded(&header(OpCode::Continuation, 2)), [0x80, 0x02]);
        // unmasked ping "Hello", masked pong "Hello"
        assert_eq!(encoded(&header(OpCode::Ping, 5)), [0x89, 0x05]);
        let pong = FrameHeader { mask: Some([0x37, 0xfa, 0x21, 0x3d]), ..header(OpCode::Pong, 5) };
        assert_eq!(encoded(&pong), [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
        // 256 bytes binary in a single unmasked frame
        assert_eq!(encoded(&header(OpCode::Binary, 256)), [0x82, 0x7e, 0x01, 0x00]);
        // 64 KiB binary in a single unmasked frame
        assert_eq!(
            encoded(&header(OpCode::Binary, 65536)),
            [0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn shortest_length_form_at_boundaries() {
        for (len, wire_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let h = header(OpCode::Binary, len);
            assert_eq!(encoded(&h).len(), wire_len, "length {len}");
            assert_eq!(h.encoded_len(), wire_len);
            assert_eq!(FrameHeader::decode(&encoded(&h)), Ok(Some((h, wire_len))));
        }
    }

    #[test]
    fn rejects_what_is_invalid_everywhere() {
        assert_eq!(FrameHeader::decode(&[0xa1, 0x00]), Err(ProtocolError::ReservedBits)); // RSV2
        assert_eq!(FrameHeader::decode(&[0x91, 0x00]), Err(ProtocolError::ReservedBits)); // RSV3
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0x00]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        assert_eq!(
            FrameHeader::decode(&[0x89, 0x7e, 0x00, 0x7e]),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
        assert_eq!(FrameHeader::decode(&[0x09, 0x00]), Err(ProtocolError::FragmentedControlFrame));
        let mut huge = vec![0x82, 0x7f];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(FrameHeader::decode(&huge), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn needs_more_bytes_until_the_header_is_complete() {
        let h = FrameHeader { mask: Some([1, 2, 3, 4]), ..header(OpCode::Binary, 70000) };
        let wire = encoded(&h);
        assert_eq!(wire.len(), 14);
        for n in 0..wire.len() {
            assert_eq!(FrameHeader::decode(&wire[..n]), Ok(None), "{n} bytes");
        }
        assert_eq!(FrameHeader::decode(&wire), Ok(Some((h, 14))));
    }

    fn any_header() -> impl Strategy<Value = FrameHeader> {
        let opcodes = prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ];
        (any::<bool>(), any::<bool>(), opcodes, any::<Option<[u8; 4]>>(), 0u64..(1 << 63)).prop_map(
            |(fin, rsv1, opcode, mask, len)| {
                let (fin, payload_len) =
                    if opcode.is_control() { (true, len % 126) } else { (fin, len) };
                FrameHeader { fin, rsv1, opcode, mask, payload_len }
            },
        )
    }

    proptest! {
        #[test]
        fn encode_then_decode(h in any_header()) {
            let wire = encoded(&h);
            prop_assert_eq!(wire.len(), h.encoded_len());
            prop_assert_eq!(FrameHeader::decode(&wire), Ok(Some((h, wire.len()))));
        }
    }
}
