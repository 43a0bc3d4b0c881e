//! The streaming base64 of gRPC-Web-text bodies: request bodies decoded and
//! response bodies encoded chunk by chunk, wherever the chunks are cut.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;

/// Why a gRPC-Web-text body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    #[error("the body is not valid base64")]
    Invalid,
    #[error("the body ends inside a base64 quantum")]
    Truncated,
}

/// Decodes a base64 body that arrives in chunks cut anywhere. Clients may
/// encode each message on its own, so padding can end one quantum in the
/// middle of the stream; decoding therefore goes quantum by quantum across
/// such joints and carries at most three characters to the next chunk.
#[derive(Debug, Default)]
pub struct Base64Decoder {
    pending: Vec<u8>,
}

impl Base64Decoder {
    pub fn new() -> Base64Decoder {
        Base64Decoder::default()
    }

    /// Decodes what `chunk` completes; the rest waits for the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, Base64Error> {
        self.pending.extend_from_slice(chunk);
        let whole = self.pending.len() / 4 * 4;
        let mut out = Vec::with_capacity(whole / 4 * 3);
        let mut start = 0;
        // Runs of quanta up to one that carries padding decode in one call.
        for end in (4..=whole).step_by(4) {
            if self.pending[end - 1] == b'=' || end == whole {
                STANDARD
                    .decode_vec(&self.pending[start..end], &mut out)
                    .map_err(|_| Base64Error::Invalid)?;
                start = end;
            }
        }
        self.pending.drain(..whole);
        Ok(Bytes::from(out))
    }

    /// Ends the stream: an incomplete quantum left over is an error.
    pub fn finish(&self) -> Result<(), Base64Error> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(Base64Error::Truncated)
        }
    }
}

/// Encodes a stream in base64 chunk by chunk so that the output joined is
/// the encoding of the input joined: padding only at the very end, which
/// every gRPC-Web-text client reads.
#[derive(Debug, Default)]
pub struct Base64Encoder {
    pending: Vec<u8>,
}

impl Base64Encoder {
    pub fn new() -> Base64Encoder {
        Base64Encoder::default()
    }

    /// Encodes the whole three-byte groups `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let whole = self.pending.len() / 3 * 3;
        let text = STANDARD.encode(&self.pending[..whole]);
        self.pending.drain(..whole);
        Bytes::from(text)
    }

    /// Encodes what is left, with padding.
    pub fn finish(&mut self) -> Bytes {
        let text = STANDARD.encode(&self.pending);
        self.pending.clear();
        Bytes::from(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn base64_decoding_accepts_padding_between_messages() {
        let joined = format!("{}{}", STANDARD.encode(b"ab"), STANDARD.encode(b"cde"));
        let mut d = Base64Decoder::new();
        assert_eq!(&d.push(joined.as_bytes()).unwrap()[..], b"abcde");
        assert_eq!(d.finish(), Ok(()));
        let mut bad = Base64Decoder::new();
        assert_eq!(bad.push(b"ab!d"), Err(Base64Error::Invalid));
        let mut cut = Base64Decoder::new();
        assert_eq!(&cut.push(b"YWJjYQ").unwrap()[..], b"abc");
        assert_eq!(cut.finish(), Err(Base64Error::Truncated));
    }

    proptest! {
        #[test]
        fn base64_decoding_does_not_depend_on_where_chunks_are_cut(
            messages in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let text: String = messages.iter().map(|m| STANDARD.encode(m)).collect();
            let expected: Vec<u8> = messages.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = Base64Decoder::new();
            let mut out = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([text.len()]) {
                out.extend_from_slice(&d.push(&text.as_bytes()[from..cut]).unwrap());
                from = cut;
            }
            prop_assert_eq!(d.finish(), Ok(()));
            prop_assert_eq!(out, expected);
        }

        #[test]
        fn base64_encoding_in_chunks_equals_encoding_at_once(
            chunks in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..50), 0..8),
        ) {
            let mut e = Base64Encoder::new();
            let mut text = Vec::new();
            for c in &chunks {
                text.extend_from_slice(&e.push(c));
            }
            text.extend_from_slice(&e.finish());
            prop_assert_eq!(text, STANDARD.encode(chunks.concat()).into_bytes());
        }
    }
}
