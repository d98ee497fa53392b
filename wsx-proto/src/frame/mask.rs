//! Masking (RFC 6455 §5.3): XOR with a 4-byte key, a machine word at a time.
//!
//! Safe code only: the word loop below compiles to vector instructions on x86-64 (see
//! `benches/mask.rs`, which reports it next to `memcpy`), so no `unsafe` is needed here.

/// Masks or unmasks `buf` in place with `key`, as if `buf` started at payload offset 0.
///
/// ```
/// let mut data = *b"Hello";
/// wsx_proto::apply_mask([0x37, 0xfa, 0x21, 0x3d], &mut data);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// ```
pub fn apply_mask(key: [u8; 4], buf: &mut [u8]) {
    apply_mask_at(key, 0, buf);
}

/// Masks `buf`, which starts at byte `offset` of the payload (for payloads that arrive in pieces).
pub(crate) fn apply_mask_at(key: [u8; 4], offset: usize, buf: &mut [u8]) {
    let key = rotate(key, offset);
    let word = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // 8 is a multiple of 4, so the remainder starts at key phase 0.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// The key as seen from payload byte `offset`.
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(offset % 4);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time definition of RFC 6455 §5.3.
    fn reference(key: [u8; 4], offset: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn rfc_example() {
        let mut data = *b"Hello";
        apply_mask([0x37, 0xfa, 0x21, 0x3d], &mut data);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        /// The word-wise loop equals the reference on unaligned, odd-length input at any offset.
        #[test]
        fn equals_reference(key in any::<[u8; 4]>(), offset in 0usize..8, start in 0usize..8,
                            data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask_at(key, offset, &mut fast[start..]);
            reference(key, offset, &mut slow[start..]);
            prop_assert_eq!(fast, slow);
        }

        /// Masking in pieces equals masking at once.
        #[test]
        fn pieces_equal_whole(key in any::<[u8; 4]>(), cut in 0usize..100,
                              data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(key, &mut whole);
            let mut pieces = data;
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask_at(key, 0, a);
            apply_mask_at(key, cut, b);
            prop_assert_eq!(whole, pieces);
        }
    }
}
