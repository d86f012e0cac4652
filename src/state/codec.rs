//! Little-endian primitives for record payloads: fixed-width integers and u32-length-prefixed
//! UTF-8 strings. Hand-written so replaying a million records costs a few hundred milliseconds.

/// Appends primitives to a payload buffer.
pub(crate) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Encoder<'a> {
        Encoder { out }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn str(&mut self, value: &str) {
        // Strings longer than u32::MAX cannot reach here: the frame limit is far smaller and the
        // caller checks the finished payload against it.
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(value.as_bytes());
    }

    pub(crate) fn opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(text) => {
                self.u8(1);
                self.str(text);
            }
            None => self.u8(0),
        }
    }

    pub(crate) fn opt_i64(&mut self, value: Option<i64>) {
        match value {
            Some(number) => {
                self.u8(1);
                self.i64(number);
            }
            None => self.u8(0),
        }
    }
}

/// Why a checksummed payload does not decode: always corruption, never a torn write.
pub(crate) type DecodeError = &'static str;

/// Reads primitives from a payload, refusing anything out of bounds.
pub(crate) struct Decoder<'a> {
    input: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Decoder<'a> {
        Decoder { input }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.input.len() < len {
            return Err("record field runs past the end of its record");
        }
        let (head, rest) = self.input.split_at(len);
        self.input = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = u32::from_le_bytes(self.array()?);
        let len = usize::try_from(len).map_err(|_| "string length does not fit")?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| "string is not UTF-8")
    }

    pub(crate) fn boxed_str(&mut self) -> Result<Box<str>, DecodeError> {
        self.str().map(Box::from)
    }

    fn presence(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("optional field has an invalid presence byte"),
        }
    }

    pub(crate) fn opt_str(&mut self) -> Result<Option<Box<str>>, DecodeError> {
        if self.presence()? {
            self.boxed_str().map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        if self.presence()? {
            self.i64().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Every byte of a record must be accounted for: trailing bytes mean a wrong layout.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err("record has trailing bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut buf = Vec::new();
        let mut enc = Encoder::new(&mut buf);
        enc.u8(7);
        enc.u64(u64::MAX);
        enc.i64(-5);
        enc.str("grüezi");
        enc.opt_str(None);
        enc.opt_str(Some("x"));
        enc.opt_i64(Some(42));
        enc.opt_i64(None);
        let mut dec = Decoder::new(&buf);
        assert_eq!(dec.u8(), Ok(7));
        assert_eq!(dec.u64(), Ok(u64::MAX));
        assert_eq!(dec.i64(), Ok(-5));
        assert_eq!(dec.str(), Ok("grüezi"));
        assert_eq!(dec.opt_str(), Ok(None));
        assert_eq!(dec.opt_str(), Ok(Some(Box::from("x"))));
        assert_eq!(dec.opt_i64(), Ok(Some(42)));
        assert_eq!(dec.opt_i64(), Ok(None));
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn a_string_longer_than_its_record_is_refused() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&100u32.to_le_bytes());
        buf.extend_from_slice(b"short");
        assert!(Decoder::new(&buf).str().is_err());
    }

    #[test]
    fn a_bad_presence_byte_is_refused() {
        assert!(Decoder::new(&[2]).opt_i64().is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut dec = Decoder::new(&[1, 2]);
        assert_eq!(dec.u8(), Ok(1));
        assert!(dec.finish().is_err());
    }
}
