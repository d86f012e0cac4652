//! Decoding a chunked response body (RFC 9112 section 7.1) as it arrives, in whatever pieces the
//! socket hands over.
//!
//! The grammar is read strictly, because a proxy that reads a body's end in another place than the
//! upstream meant is how one exchange's bytes become the next one's response: lines end in CRLF
//! (a bare LF is an error), a chunk size is at most 16 hex digits, extensions and trailers are
//! bounded and dropped (trailers never reach the client), and the body ends only at the last
//! chunk's empty trailer line.

use bytes::{Bytes, BytesMut};

/// The most bytes of chunk extensions in one body; hyper allows the same.
const MAX_EXTENSION_BYTES: u64 = 16 * 1024;
/// The most bytes of trailer fields after the last chunk.
const MAX_TRAILER_BYTES: u64 = 16 * 1024;
/// A chunk size has at most this many hex digits (leading zeros included), so it fits in a u64.
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a chunked body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A byte the grammar does not allow where it stands.
    Malformed(&'static str),
    /// Chunk extensions or trailers past their limit.
    TooLong(&'static str),
}

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkedError::Malformed(what) => write!(f, "malformed chunked body: {what}"),
            ChunkedError::TooLong(what) => write!(f, "chunked body: {what} too long"),
        }
    }
}

impl std::error::Error for ChunkedError {}

/// What the decoder made of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// Everything buffered was framing; more bytes are needed.
    NeedMore,
    /// The body ended; bytes after it are left in the buffer.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first hex digit of a chunk size.
    SizeStart,
    /// More hex digits, or what follows them.
    Size {
        digits: u8,
    },
    /// Blanks after the size, before `;` or CR.
    SizeBlanks,
    /// A chunk extension, up to CR.
    Extension,
    /// The LF ending a size line.
    SizeLf,
    /// Chunk data still to come.
    Data,
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// The start of a trailer line: CR for the empty line that ends the body, or a field.
    TrailerStart,
    /// Inside a trailer field, up to CR.
    Trailer,
    /// The LF ending a trailer field.
    TrailerLf,
    /// The LF of the empty line ending the body.
    EndLf,
    End,
}

/// One chunked body's reading position.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk size being read, then the bytes of the chunk still to come.
    size: u64,
    extension_bytes: u64,
    trailer_bytes: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            extension_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether the last chunk and its trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::End
    }

    /// Reads framing from the front of `buffer` until there is body data to hand out, the body
    /// ends, or the buffer runs dry. Consumed bytes are removed from `buffer`; data is split off it
    /// without copying.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        let mut consumed = 0;
        while self.state != State::Data && self.state != State::End {
            let Some(&byte) = buffer.get(consumed) else {
                break;
            };
            consumed += 1;
            self.step(byte)?;
        }
        let _ = buffer.split_to(consumed);
        match self.state {
            State::End => Ok(Decoded::End),
            State::Data if !buffer.is_empty() => {
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                Ok(Decoded::Data(buffer.split_to(take).freeze()))
            }
            _ => Ok(Decoded::NeedMore),
        }
    }

    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        use ChunkedError::{Malformed, TooLong};
        self.state = match (self.state, byte) {
            (State::SizeStart, _) => {
                let digit = hex_value(byte).ok_or(Malformed("chunk size is not hex"))?;
                self.size = u64::from(digit);
                State::Size { digits: 1 }
            }
            (State::Size { digits }, _) if hex_value(byte).is_some() => {
                if digits >= MAX_SIZE_DIGITS {
                    return Err(Malformed("chunk size has too many digits"));
                }
                self.size = self.size << 4 | u64::from(hex_value(byte).unwrap_or(0));
                State::Size { digits: digits + 1 }
            }
            (State::Size { .. } | State::SizeBlanks, b' ' | b'\t') => State::SizeBlanks,
            (State::Size { .. } | State::SizeBlanks, b';') => self.extension_byte()?,
            (State::Size { .. } | State::SizeBlanks | State::Extension, b'\r') => State::SizeLf,
            (State::Size { .. } | State::SizeBlanks, _) => {
                return Err(Malformed("unexpected byte after chunk size"));
            }
            (State::Extension, b'\n') => return Err(Malformed("bare LF in chunk extension")),
            (State::Extension, _) => self.extension_byte()?,
            (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
            (State::SizeLf, b'\n') => State::Data,
            (State::SizeLf, _) => return Err(Malformed("chunk size line without CRLF")),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr, _) => return Err(Malformed("chunk data longer than its size")),
            (State::DataLf, b'\n') => State::SizeStart,
            (State::DataLf, _) => return Err(Malformed("chunk data without CRLF")),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::Trailer, b'\n') => {
                return Err(Malformed("bare LF in trailer"));
            }
            (State::TrailerStart | State::Trailer, _) => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(TooLong("trailer section"));
                }
                if byte == b'\r' {
                    State::TrailerLf
                } else {
                    State::Trailer
                }
            }
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::TrailerLf, _) => return Err(Malformed("trailer field without CRLF")),
            (State::EndLf, b'\n') => State::End,
            (State::EndLf, _) => return Err(Malformed("last chunk without CRLF")),
            // `decode` hands data out itself and stops at the end; never stepped in these.
            (State::Data | State::End, _) => return Err(Malformed("byte after the body's end")),
        };
        Ok(())
    }

    fn extension_byte(&mut self) -> Result<State, ChunkedError> {
        self.extension_bytes += 1;
        if self.extension_bytes > MAX_EXTENSION_BYTES {
            return Err(ChunkedError::TooLong("chunk extensions"));
        }
        Ok(State::Extension)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` in the given piece sizes; answers the body and what was left after its end.
    fn decode_in_pieces(
        input: &[u8],
        pieces: &[usize],
    ) -> Result<(Vec<u8>, Vec<u8>), ChunkedError> {
        let mut decoder = ChunkedDecoder::new();
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        let mut rest = input;
        let mut sizes = pieces.iter().copied().cycle();
        loop {
            match decoder.decode(&mut buffer)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::End => {
                    buffer.extend_from_slice(rest);
                    return Ok((body, buffer.to_vec()));
                }
                Decoded::NeedMore if rest.is_empty() => {
                    return Err(ChunkedError::Malformed("input ended"));
                }
                Decoded::NeedMore => {
                    let take = sizes.next().unwrap_or(1).clamp(1, rest.len());
                    buffer.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                }
            }
        }
    }

    #[test]
    fn a_body_with_extensions_and_trailers_decodes_to_its_data() {
        let input = b"5;name=value\r\nhello\r\n7 ; x\r\n, world\r\n0\r\nExpires: never\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 1000] {
            let (body, rest) = decode_in_pieces(input, &[piece]).unwrap();
            assert_eq!(body, b"hello, world", "pieces of {piece}");
            assert_eq!(rest, b"NEXT", "pieces of {piece}");
        }
    }

    #[test]
    fn upper_case_hex_and_leading_zeros_are_sizes() {
        let (body, _) = decode_in_pieces(b"0000A\r\n0123456789\r\n0\r\n\r\n", &[4]).unwrap();
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn broken_framing_is_an_error_never_a_guess() {
        let cases: [&[u8]; 13] = [
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nField: value\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
        ];
        for input in cases {
            assert!(
                matches!(
                    decode_in_pieces(input, &[1]),
                    Err(ChunkedError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn the_largest_size_fits_and_extensions_and_trailers_are_bounded() {
        let mut decoder = ChunkedDecoder::new();
        let mut buffer = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            decoder.decode(&mut buffer).unwrap(),
            Decoded::Data(Bytes::from_static(b"ab"))
        );
        assert_eq!(decoder.size, u64::MAX - 2);

        let long_extension = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(17 * 1024));
        assert_eq!(
            decode_in_pieces(long_extension.as_bytes(), &[4096]),
            Err(ChunkedError::TooLong("chunk extensions"))
        );
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "y".repeat(17 * 1024));
        assert_eq!(
            decode_in_pieces(long_trailer.as_bytes(), &[4096]),
            Err(ChunkedError::TooLong("trailer section"))
        );
    }

    /// Encodes `chunks` as a chunked body, with optional extensions and trailers.
    fn encode(chunks: &[Vec<u8>], extensions: bool, trailers: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
            out.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
            if extensions {
                out.extend_from_slice(b";a=\"b\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        if trailers {
            out.extend_from_slice(b"Digest: x\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    proptest! {
        /// However the socket splits a body, the data and where the body ends are the same.
        #[test]
        fn any_split_decodes_to_the_same_data_and_end(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            pieces in proptest::collection::vec(1usize..64, 1..8),
            extensions in any::<bool>(),
            trailers in any::<bool>(),
            after in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut input = encode(&chunks, extensions, trailers);
            input.extend_from_slice(&after);
            let (body, rest) = decode_in_pieces(&input, &pieces).unwrap();
            prop_assert_eq!(body, chunks.concat());
            prop_assert_eq!(rest, after);
        }

        /// Arbitrary bytes never panic the decoder, and never yield more data than they hold.
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok((body, _)) = decode_in_pieces(&input, &[3]) {
                prop_assert!(body.len() <= input.len());
            }
        }
    }
}
