//! Streaming UTF-8 validation: text is checked as it arrives, so an invalid sequence fails the
//! connection at once (RFC 6455 §8.1), even in the middle of a fragment.
//!
//! The bulk of each chunk goes through `std::str::from_utf8` (ASCII fast path, word at a time);
//! only a code point split across chunks is carried over, in at most 3 bytes.

/// The bytes a code point starting with `first` occupies, or 0 if `first` cannot start one.
fn width(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

/// Validates UTF-8 fed in arbitrary chunks.
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

/// The input is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

impl Utf8Validator {
    /// Checks the next chunk. Fails as soon as a byte makes the text invalid, whatever follows.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Invalid> {
        if self.partial_len > 0 {
            let need = width(self.partial[0]) - self.partial_len;
            let take = need.min(chunk.len());
            let mut buf = self.partial;
            buf[self.partial_len..self.partial_len + take].copy_from_slice(&chunk[..take]);
            let len = self.partial_len + take;
            match std::str::from_utf8(&buf[..len]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix of a code point: the chunk ended first.
                    self.partial = buf;
                    self.partial_len = len;
                    return Ok(());
                }
                Err(_) => return Err(Invalid),
            }
            chunk = &chunk[take..];
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &chunk[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(Invalid),
        }
    }

    /// Ends the text: fails if it stops inside a code point. Resets for the next message.
    pub(crate) fn finish(&mut self) -> Result<(), Invalid> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete {
            Ok(())
        } else {
            Err(Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_validates(bytes: &[u8], cuts: &[usize]) -> Result<(), Invalid> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, bytes.len());
            v.feed(&bytes[start..cut])?;
            start = cut;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn accepts_valid_text_in_every_split() {
        let text = "κόσμε ascii 𝄞 \u{10FFFF} \u{FEFF}".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(split_validates(text, &[i, j]), Ok(()), "cuts {i} {j}");
            }
        }
    }

    #[test]
    fn fails_fast_inside_a_code_point() {
        // 0xf4 0x90 starts a code point above U+10FFFF: invalid before the code point ends.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[b'a', 0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(Invalid));
        // A surrogate (ED A0 80) fails at its second byte.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xed]), Ok(()));
        assert_eq!(v.feed(&[0xa0]), Err(Invalid));
        // Overlong and impossible bytes fail at once.
        assert_eq!(Utf8Validator::default().feed(&[0xc0]), Err(Invalid));
        assert_eq!(Utf8Validator::default().feed(&[0xff]), Err(Invalid));
    }

    #[test]
    fn truncated_text_fails_at_finish() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xe2, 0x82]), Ok(()));
        assert_eq!(v.finish(), Err(Invalid));
        // and the validator is reset afterwards
        assert_eq!(v.feed(b"ok"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    proptest! {
        /// The streaming validator agrees with `std::str::from_utf8` on any bytes and any split.
        #[test]
        fn agrees_with_std(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                           cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let expected = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(split_validates(&bytes, &cuts).is_ok(), expected);
        }

        #[test]
        fn agrees_with_std_on_mostly_valid(s in "\\PC{0,20}", junk in any::<u8>(), at in 0usize..80,
                                          cuts in proptest::collection::vec(0usize..80, 0..6)) {
            let mut bytes = s.into_bytes();
            let at = at.min(bytes.len());
            bytes.insert(at, junk);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let expected = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(split_validates(&bytes, &cuts).is_ok(), expected);
        }
    }
}
