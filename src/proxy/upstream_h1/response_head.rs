//! Reading an upstream's response head, and from it how its body is framed and whether the
//! connection may carry another request (RFC 9112 sections 6.3 and 9.3).
//!
//! Anything ambiguous is refused rather than guessed at: two lengths that disagree are a 502
//! (RFC 9112 section 6.3 item 5 says exactly that for a proxy), and a response whose framing
//! leaves any doubt (both `Transfer-Encoding` and `Content-Length`, a coding other than chunked
//! last, a body that ends at the close) is read to its end but its connection is never reused.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

use super::passed_fields::PassedFields;
use super::repeated_head::{ReadHead, RepeatedHead};
use crate::proxy::hop::{field_named_by, is_hop_by_hop, options_in};
use crate::proxy::response::is_read_or_changed;

/// The largest response head casegate reads (status line and fields). Legacy apps with large
/// cookies stay well below; a head beyond it is refused with a 502.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most fields in one response head (hyper's limit is 100).
pub const MAX_HEADERS: usize = 128;
/// How the body after a response head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: 1xx, 204, 304, the answer to HEAD, or `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes.
    UntilClose,
    /// 101: the connection now belongs to another protocol.
    Switched,
}

/// A final response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// The fields casegate reads or changes (usually none).
    pub headers: HeaderMap,
    /// All the others, handed on as they came.
    pub passed: PassedFields,
    pub framing: BodyFraming,
    /// Whether the connection may carry another request once the body has been read to its end.
    pub reusable: bool,
}

/// What the front of the buffer held.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An interim (1xx) response, consumed; the final one follows.
    Interim,
    /// Boxed: the head goes up through the exchange, the upstream client's select and its
    /// callers to the gateway, and by value each of them copied its couple of hundred bytes
    /// (about 15 `memcpy` calls a request).
    Final(Box<ResponseHead>),
}

/// Why a response head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x syntax (status line or fields).
    Malformed(httparse::Error),
    /// Longer than [`MAX_HEAD_BYTES`].
    TooLarge,
    /// A status code outside 100-999 (httparse reads three digits; `http` wants 100 and above).
    BadStatus,
    /// `Content-Length` values that are not one number.
    BadContentLength,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Malformed(httparse::Error::TooManyHeaders) => {
                write!(f, "response head has more than {MAX_HEADERS} fields")
            }
            HeadError::Malformed(error) => write!(f, "malformed response head: {error}"),
            HeadError::TooLarge => write!(f, "response head larger than {MAX_HEAD_BYTES} bytes"),
            HeadError::BadStatus => f.write_str("response status code out of range"),
            HeadError::BadContentLength => f.write_str("response Content-Length is not one number"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Parses a response head at the front of `buffer`, removing it from the buffer once whole.
/// `method` is the request's: the answer to HEAD has no body whatever its fields say.
pub fn parse_response_head(
    buffer: &mut BytesMut,
    method: &Method,
    memory: &mut ResponseMemory,
) -> Result<Parsed, HeadError> {
    if let Some(head) = memory
        .last
        .as_ref()
        .and_then(|last| last.read(buffer, method))
    {
        return Ok(Parsed::Final(head));
    }
    let names = &mut memory.names;
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut fields,
    );
    let length = match status {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() >= MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(error) => return Err(HeadError::Malformed(error)),
    };
    if length > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(HeadError::BadStatus)?;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        let _ = buffer.split_to(length);
        return Ok(Parsed::Interim);
    }
    let version = match response.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Where each field sits in the buffer, so that the fields passed on stay in the head's bytes
    // and the values of the others can share them instead of being copied (hyper does the same).
    let mut storage = [const { MaybeUninit::<FieldSpan>::uninit() }; MAX_HEADERS];
    let spans = field_spans(&mut storage, response.headers, buffer);
    let count = spans.len();
    let head = buffer.split_to(length).freeze();
    let mut reading = FramingFields::default();
    // Only the fields casegate reads or changes: usually none.
    let mut headers = HeaderMap::new();
    // Where the map's values sit in the head, for the next head that repeats this one.
    let mut kept_values = Vec::new();
    let mut passed = Vec::with_capacity(count);
    let mut date = false;
    for (index, &span) in spans.iter().enumerate() {
        let (name_range, value_range) = field_ranges(&span);
        let spelled = &head[name_range];
        // A field passed on needs no `HeaderName`: when the last head had the same name here,
        // none is copied (about 20 instructions a field, most of a response's fields).
        let (name, disposition) = match names.recall(index, spelled) {
            Some((_, Disposition::Passed { date: is_date })) => {
                date |= is_date;
                passed.push(span);
                continue;
            }
            Some((name, disposition)) => (name.clone(), disposition),
            None => learn_name(spelled, index, names, Disposition::of)?,
        };
        let kept = match disposition {
            Disposition::Passed { date: is_date } => {
                date |= is_date;
                passed.push(span);
                continue;
            }
            Disposition::Read => true,
            // About this one connection (read for the framing, below) or about the upstream's
            // software: never handed on, so never put in the map only to be taken out again.
            Disposition::Dropped => false,
        };
        // Read in place: a field only read (the framing's) never gets a `Bytes` of its own,
        // whose reference to the head is an atomic increment and decrement.
        reading.note(&name, &head[value_range.clone()])?;
        if kept {
            // SAFETY: httparse let through only the bytes a `HeaderValue` may hold (HTAB,
            // visible ASCII and SP, obs-text 0x80-0xFF: its HEADER_VALUE_MAP is `http`'s rule),
            // so checking every byte again would be work for nothing. hyper's client does the
            // same.
            let value = unsafe {
                HeaderValue::from_maybe_shared_unchecked(head.slice(value_range.clone()))
            };
            kept_values.push((name.clone(), value_range));
            headers.append(name, value);
        }
    }
    // Remembered for the next response: this one's names and no more, so that the memory is
    // bounded by one head.
    names.truncate(count);
    let mut passed = PassedFields::new(head.clone(), passed, date);
    for name in std::mem::take(&mut reading.connection_named) {
        headers.remove(&name);
        passed.remove(&name);
        kept_values.retain(|(kept, _)| *kept != name);
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let read = ReadHead {
            bytes: &head,
            status,
            version,
            passed: &passed,
            kept: kept_values,
            framing: &reading,
        };
        memory.last = RepeatedHead::remember(read, memory.last.take());
    }
    Ok(Parsed::Final(Box::new(
        reading.decide(status, version, headers, passed, method),
    )))
}

/// What becomes of an upstream response's field. The framing's own fields (`Content-Length`,
/// `Transfer-Encoding`, `Connection`) are all `Dropped`, so every one of them is read.
#[derive(Debug, Clone, Copy)]
pub enum Disposition {
    /// Handed on as it came, never looked at again ([`PassedFields`]); `date` when it is the
    /// `Date` field, which casegate then does not write itself.
    Passed { date: bool },
    /// Read or changed by the sanitisers or the connection (HSTS): kept in the map, where
    /// they look ([`is_read_or_changed`]).
    Read,
    /// Read here for the framing at most, and not handed on: hop-by-hop, `Content-Length` (every
    /// writer frames the body itself, from [`PassedFields::declared_length`]), the upstream's
    /// software.
    Dropped,
}

impl Disposition {
    fn of(name: &HeaderName) -> Disposition {
        if is_hop_by_hop(name) || name == header::CONTENT_LENGTH || names_upstream_software(name) {
            Disposition::Dropped
        } else if is_read_or_changed(name) {
            Disposition::Read
        } else {
            Disposition::Passed {
                date: name == header::DATE,
            }
        }
    }
}

/// Fields that name the upstream's software and its version (`Server: Apache/2.4.6`,
/// `X-Powered-By: PHP/5.4`): they tell whoever reads them, a guest outside the organisation
/// included, what to attack, and no client needs them. Left out of every response as its head is
/// read, as nginx's proxy leaves out `Server` unless told otherwise.
const UPSTREAM_SOFTWARE: [HeaderName; 3] = [
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-aspnetmvc-version"),
];

fn names_upstream_software(name: &HeaderName) -> bool {
    name == header::SERVER || UPSTREAM_SOFTWARE.contains(name)
}

/// Where a field's name and value sit in its head: offset and length of each.
pub(crate) type FieldSpan = (u32, u32, u32, u32);

/// The name's and the value's place in the head, as ranges to index it with.
pub(crate) fn field_ranges(
    &(name_at, name_len, value_at, value_len): &FieldSpan,
) -> (Range<usize>, Range<usize>) {
    let (name_at, value_at) = (name_at as usize, value_at as usize);
    (
        name_at..name_at + name_len as usize,
        value_at..value_at + value_len as usize,
    )
}

/// The spans of `fields` (parsed from `buffer`) in `storage`, which is not zeroed first: only the
/// spans written are handed back (zeroing the room for every possible field cost 2 KiB of writes
/// a response, and as many cache lines). `storage` must have room for every field.
pub(crate) fn field_spans<'s>(
    storage: &'s mut [MaybeUninit<FieldSpan>],
    fields: &[httparse::Header<'_>],
    buffer: &[u8],
) -> &'s [FieldSpan] {
    let base = buffer.as_ptr() as usize;
    let offset = |text: &[u8]| (text.as_ptr() as usize - base) as u32;
    let count = fields.len().min(storage.len());
    for (span, field) in storage.iter_mut().zip(&fields[..count]) {
        let name = field.name.as_bytes();
        span.write((
            offset(name),
            name.len() as u32,
            offset(field.value),
            field.value.len() as u32,
        ));
    }
    // SAFETY: the first `count` spans were written just above.
    unsafe { std::slice::from_raw_parts(storage.as_ptr().cast::<FieldSpan>(), count) }
}

/// The field names of a connection's last head, in order, each as spelled on the wire, with
/// what was worked out from each (`T`: for a response, its [`Disposition`]): an upstream sends
/// the same names in the same order response after response (and a browser its requests), and
/// comparing the bytes in place is a fraction of parsing a name again (about 150 instructions a
/// field) and of judging it again (about 60).
#[derive(Debug)]
pub struct KnownNames<T = ()>(Vec<(Box<[u8]>, HeaderName, T)>);

impl<T> Default for KnownNames<T> {
    fn default() -> Self {
        KnownNames(Vec::new())
    }
}

impl<T: Copy> KnownNames<T> {
    /// The name the last head spelled as `spelled` in the `index`th field, and what was worked
    /// out from it; `None` when that head had another name there, or fewer fields.
    pub(crate) fn recall(&self, index: usize, spelled: &[u8]) -> Option<(&HeaderName, T)> {
        let (known, name, judged) = self.0.get(index)?;
        (**known == *spelled).then_some((name, *judged))
    }
}

impl<T> KnownNames<T> {
    /// Forgets the names past the first `count`: what is remembered is bounded by one head.
    pub(crate) fn truncate(&mut self, count: usize) {
        self.0.truncate(count);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// What a response's field names are remembered with.
pub type ResponseNames = KnownNames<Disposition>;

/// What a connection remembers of its last response head for reading the next: the last final
/// head itself, which the next usually repeats but for a few values ([`RepeatedHead`]), and
/// failing that the field names, recalled one by one.
#[derive(Debug, Default)]
pub struct ResponseMemory {
    names: ResponseNames,
    last: Option<RepeatedHead>,
}

impl ResponseMemory {
    #[cfg(test)]
    pub(crate) fn last_head(&self) -> Option<&RepeatedHead> {
        self.last.as_ref()
    }
}

/// Real field names are short; a long one is not worth remembering.
const LONGEST_KNOWN_NAME: usize = 64;

/// The field name `spelled` as the `index`th field and what `judge` makes of it, from `names`
/// when the last head spelled the same bytes there. Names longer than [`LONGEST_KNOWN_NAME`] are
/// parsed and judged every time.
pub(crate) fn field_name<T: Copy>(
    spelled: &[u8],
    index: usize,
    names: &mut KnownNames<T>,
    judge: impl FnOnce(&HeaderName) -> T,
) -> Result<(HeaderName, T), HeadError> {
    match names.recall(index, spelled) {
        Some((name, judged)) => Ok((name.clone(), judged)),
        None => learn_name(spelled, index, names, judge),
    }
}

/// The field name `spelled`, parsed and judged, and remembered as the `index`th (the part of
/// [`field_name`] for a name [`KnownNames::recall`] does not know).
pub(crate) fn learn_name<T: Copy>(
    spelled: &[u8],
    index: usize,
    names: &mut KnownNames<T>,
    judge: impl FnOnce(&HeaderName) -> T,
) -> Result<(HeaderName, T), HeadError> {
    let names = &mut names.0;
    let name = HeaderName::from_bytes(spelled)
        .map_err(|_| HeadError::Malformed(httparse::Error::HeaderName))?;
    let judged = judge(&name);
    if spelled.len() > LONGEST_KNOWN_NAME {
        return Ok((name, judged));
    }
    let entry = (Box::from(spelled), name.clone(), judged);
    if index < names.len() {
        names[index] = entry;
    } else if index == names.len() {
        names.push(entry);
    }
    Ok((name, judged))
}

/// The fields that decide framing and reuse, noted as the head is read.
#[derive(Debug, Default, Clone)]
pub(super) struct FramingFields {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    close: bool,
    /// Fields the upstream's `Connection` named: hop-by-hop too, so left out like the others.
    connection_named: Vec<HeaderName>,
}

impl FramingFields {
    fn note(&mut self, name: &HeaderName, value: &[u8]) -> Result<(), HeadError> {
        if name == header::CONTENT_LENGTH {
            for item in value.split(|&byte| byte == b',') {
                let length = parse_length(item.trim_ascii()).ok_or(HeadError::BadContentLength)?;
                if self.content_length.is_some_and(|seen| seen != length) {
                    return Err(HeadError::BadContentLength);
                }
                self.content_length = Some(length);
            }
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            // Only the last coding of the last line counts: chunked must be the final one.
            if let Some(last) = value.rsplit(|&byte| byte == b',').next() {
                self.chunked_last = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
        } else if name == header::CONNECTION {
            for option in options_in(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.connection_named.extend(field_named_by(option));
            }
        }
        Ok(())
    }

    pub(super) fn decide(
        self,
        status: StatusCode,
        version: Version,
        headers: HeaderMap,
        mut passed: PassedFields,
        method: &Method,
    ) -> ResponseHead {
        let persistent = match version {
            Version::HTTP_11 => !self.close,
            // An HTTP/1.0 server's keep-alive is a guess about the server; not worth the risk.
            _ => false,
        };
        // Both framings: Transfer-Encoding wins, the length is dropped so the client is not told
        // one, and the connection is not trusted again (RFC 9112 sections 6.2 and 6.3 item 3),
        // whatever the status: a sender that writes both is not one to keep reading from.
        let both_framings = self.transfer_encoding && self.content_length.is_some();
        // The length goes on as a number, so `12, 12` is told to the client once (a list is
        // malformed to a strict HTTP/2 client).
        passed.set_declared_length(self.content_length.filter(|_| !self.transfer_encoding));
        let (framing, clear) = if status == StatusCode::SWITCHING_PROTOCOLS {
            (BodyFraming::Switched, false)
        } else if *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            (BodyFraming::Empty, true)
        } else if self.transfer_encoding {
            match self.chunked_last && version == Version::HTTP_11 {
                true => (BodyFraming::Chunked, true),
                false => (BodyFraming::UntilClose, false),
            }
        } else {
            match self.content_length {
                Some(0) => (BodyFraming::Empty, true),
                Some(length) => (BodyFraming::Length(length), true),
                None => (BodyFraming::UntilClose, false),
            }
        };
        ResponseHead {
            status,
            version,
            headers,
            passed,
            framing,
            reusable: persistent && clear && !both_framings,
        }
    }
}

/// A decimal length: digits only, no sign, no blanks inside, at most 19 digits' worth. Every
/// `Content-Length` casegate reads on HTTP/1 (requests from clients, both ways upstream) is read
/// with it.
pub(crate) fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |length, &digit| {
        length.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The final head `text` spells, as the upstream client reads it on a new connection, for
/// tests here and in the modules that take the head on; panics on anything else.
#[cfg(test)]
pub(crate) fn final_head_of(text: &str, method: &Method) -> ResponseHead {
    let mut buffer = BytesMut::from(text.as_bytes());
    match parse_response_head(&mut buffer, method, &mut ResponseMemory::default()) {
        Ok(Parsed::Final(head)) => *head,
        other => panic!("{text:?}: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, method: &Method) -> Result<Parsed, HeadError> {
        let mut buffer = BytesMut::from(text.as_bytes());
        parse_response_head(&mut buffer, method, &mut ResponseMemory::default())
    }

    fn final_head(text: &str) -> ResponseHead {
        final_head_of(text, &Method::GET)
    }

    /// Everything the head hands on, in one map (as an HTTP/2 answer gets it).
    fn handed_on(head: ResponseHead) -> HeaderMap {
        let mut headers = head.headers;
        head.passed.move_into(&mut headers);
        headers
    }

    fn names_of(headers: &HeaderMap) -> Vec<&str> {
        headers.keys().map(|name| name.as_str()).collect()
    }

    #[test]
    fn hop_by_hop_fields_frame_the_body_and_are_left_out_of_the_head() {
        let head = final_head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Upstream-Secret\r\nKeep-Alive: timeout=5\r\n\
             X-Upstream-Secret: 1\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\
             Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nContent-Type: text/html\r\n\r\n",
        );
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert!(head.reusable);
        assert_eq!(names_of(&handed_on(head)), ["content-type"]);
        let closing = final_head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nClose: 1\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!closing.reusable);
        assert_eq!(names_of(&handed_on(closing)), ["content-length"]);
    }

    #[test]
    fn fields_naming_the_upstream_software_are_left_out_of_the_head() {
        let head = final_head(
            "HTTP/1.1 200 OK\r\nServer: Apache/2.4.6 (CentOS) PHP/5.4.16\r\nX-Powered-By: PHP/5.4.16\r\n\
             X-AspNet-Version: 4.0.30319\r\nX-AspNetMvc-Version: 5.2\r\nContent-Type: text/html\r\n\
             X-Served-By: cache-1\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            names_of(&handed_on(head)),
            ["content-type", "x-served-by", "content-length"]
        );
    }

    #[test]
    fn framing_and_reuse_follow_rfc_9112() {
        let cases: [(&str, BodyFraming, bool); 12] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
                BodyFraming::Length(12),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\n",
                BodyFraming::Length(12),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                BodyFraming::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                BodyFraming::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
                BodyFraming::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                BodyFraming::Chunked,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                BodyFraming::UntilClose,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", BodyFraming::UntilClose, false),
            (
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n",
                BodyFraming::Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                BodyFraming::Length(1),
                false,
            ),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
                BodyFraming::Empty,
                true,
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\n\r\n",
                BodyFraming::Switched,
                false,
            ),
        ];
        for (text, framing, reusable) in cases {
            let head = final_head(text);
            assert_eq!(
                (head.framing, head.reusable),
                (framing, reusable),
                "{text:?}"
            );
        }
        let both = final_head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        );
        assert!(!handed_on(both).contains_key(header::CONTENT_LENGTH));
    }

    /// Found by the upstream_response property: with a bodiless status the length stayed beside
    /// Transfer-Encoding and the connection was kept.
    #[test]
    fn both_framings_lose_the_length_and_the_connection_whatever_the_status() {
        for status in ["200 OK", "304 Not Modified", "204 No Content"] {
            let head = final_head(&format!(
                "HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
            ));
            assert!(!head.reusable, "{status}");
            assert!(
                !handed_on(head).contains_key(header::CONTENT_LENGTH),
                "{status}"
            );
        }
    }

    #[test]
    fn the_answer_to_head_has_no_body_whatever_it_declares() {
        let Ok(Parsed::Final(head)) = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
            &Method::HEAD,
        ) else {
            panic!("not a final head");
        };
        assert_eq!((head.framing, head.reusable), (BodyFraming::Empty, true));
        assert_eq!(head.passed.declared_length(), Some(5000));
        assert_eq!(handed_on(*head)[header::CONTENT_LENGTH], "5000");
    }

    #[test]
    fn lengths_that_are_not_one_number_are_refused() {
        for length in [
            "12, 13",
            "-1",
            "+5",
            "1 2",
            "",
            "0x10",
            "99999999999999999999",
            "5,",
        ] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            assert_eq!(
                parse(&text, &Method::GET).unwrap_err(),
                HeadError::BadContentLength,
                "{length:?}"
            );
        }
        let two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(
            parse(two, &Method::GET).unwrap_err(),
            HeadError::BadContentLength
        );
    }

    #[test]
    fn interim_responses_are_consumed_and_the_final_one_follows() {
        let mut buffer = BytesMut::from(
            &b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
        );
        assert!(matches!(
            parse_response_head(&mut buffer, &Method::GET, &mut ResponseMemory::default()),
            Ok(Parsed::Interim)
        ));
        let Ok(Parsed::Final(head)) =
            parse_response_head(&mut buffer, &Method::GET, &mut ResponseMemory::default())
        else {
            panic!("no final head");
        };
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(&buffer[..], b"ok");
    }

    #[test]
    fn partial_heads_wait_and_broken_or_huge_ones_are_refused() {
        assert!(matches!(
            parse("HTTP/1.1 200 OK\r\nContent-Le", &Method::GET),
            Ok(Parsed::Partial)
        ));
        for text in [
            "ICY 200 OK\r\n\r\n",
            "HTTP/2 200\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            assert!(
                matches!(parse(text, &Method::GET), Err(HeadError::Malformed(_))),
                "{text:?}"
            );
        }
        assert_eq!(
            parse("HTTP/1.1 099 Low\r\n\r\n", &Method::GET).unwrap_err(),
            HeadError::BadStatus
        );
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse(&huge, &Method::GET).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            parse(&many, &Method::GET).unwrap_err(),
            HeadError::Malformed(httparse::Error::TooManyHeaders)
        );
    }

    #[test]
    fn names_remembered_from_the_last_response_are_the_names_parsed_afresh() {
        let mut names = ResponseMemory::default();
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Type: a\r\nX-One: 1\r\nContent-Length: 0\r\n\r\n",
            // Same places, other case: the same names.
            "HTTP/1.1 200 OK\r\ncontent-TYPE: a\r\nx-one: 1\r\nContent-Length: 0\r\n\r\n",
            // Other names in the remembered places, and one more.
            "HTTP/1.1 200 OK\r\nX-Two: 2\r\nContent-Type: a\r\nContent-Length: 0\r\nX-Three: 3\r\n\r\n",
        ] {
            let mut buffer = BytesMut::from(text.as_bytes());
            let Ok(Parsed::Final(head)) =
                parse_response_head(&mut buffer, &Method::GET, &mut names)
            else {
                panic!("{text:?}");
            };
            let fresh = final_head(text);
            assert_eq!(
                names_of(&handed_on(*head)),
                names_of(&handed_on(fresh)),
                "{text:?}"
            );
        }
        assert_eq!(names.names.len(), 4);
        // A name that only differs in a byte that is not a letter is not the remembered one.
        let mut buffer =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nX_Two: 2\r\nContent-Length: 0\r\n\r\n"[..]);
        let Ok(Parsed::Final(head)) = parse_response_head(&mut buffer, &Method::GET, &mut names)
        else {
            panic!("no head");
        };
        let handed_on = handed_on(*head);
        assert!(handed_on.contains_key("x_two"));
        assert!(!handed_on.contains_key("x-two"));
    }

    /// A passed field recalled from the last response skips its name: the date must still be
    /// known as the date (casegate then writes none of its own), and another field in the
    /// date's old place must not be taken for it.
    #[test]
    fn the_date_is_known_whether_its_name_is_recalled_or_parsed() {
        let date = "Date: Tue, 01 Dec 2026 00:00:00 GMT\r\n";
        let end = "Content-Length: 0\r\n\r\n";
        let mut names = ResponseMemory::default();
        for (fields, is_dated) in [
            (date.to_owned(), true),
            // The same spelling in the same place: recalled.
            (date.to_owned(), true),
            (date.to_lowercase(), true),
            // Another field passed on where the date was, parsed and then recalled.
            ("X-Date: 1\r\n".to_owned(), false),
            ("X-Date: 1\r\n".to_owned(), false),
            (format!("X-Date: 1\r\n{date}"), true),
            (format!("X-Date: 1\r\n{date}"), true),
        ] {
            let text = format!("HTTP/1.1 200 OK\r\n{fields}{end}");
            let mut buffer = BytesMut::from(text.as_bytes());
            let Ok(Parsed::Final(head)) =
                parse_response_head(&mut buffer, &Method::GET, &mut names)
            else {
                panic!("{text:?}");
            };
            assert_eq!(head.passed.has_date(), is_dated, "{text:?}");
            assert_eq!(final_head(&text).passed.has_date(), is_dated, "{text:?}");
        }
    }

    #[test]
    fn values_keep_their_bytes_and_names_are_lower_cased() {
        let head =
            final_head("HTTP/1.1 200 OK\r\nX-Thing: caf\u{e9} \t\r\nContent-Length: 0\r\n\r\n");
        // Over HTTP/1 as they came, spelling and all; in a map, as `http` spells names.
        let fields: Vec<_> = head.passed.fields().collect();
        assert_eq!(fields, [(&b"X-Thing"[..], "caf\u{e9}".as_bytes())]);
        assert_eq!(
            handed_on(head)["x-thing"].as_bytes(),
            "caf\u{e9}".as_bytes()
        );
    }

    /// The remembered names are cut back to the last response's fields and long names are not
    /// kept, so that each of the 128 places cannot keep a long name from a different response
    /// (about 128 x 64 KiB, twice, in the first version, found in review).
    #[test]
    fn remembered_names_never_hold_more_than_one_heads_worth() {
        let mut names = ResponseMemory::default();
        let long = "n".repeat(60_000);
        // The long name moves one place to the front with each response; the places behind it
        // are not touched by the shorter head.
        for place in (0..MAX_HEADERS).rev() {
            let mut text = String::from("HTTP/1.1 200 OK\r\n");
            for index in 0..place {
                text.push_str(&format!("s{index}: v\r\n"));
            }
            text.push_str(&format!("{long}: v\r\n\r\n"));
            assert!(text.len() < MAX_HEAD_BYTES);
            let mut buffer = BytesMut::from(text.as_bytes());
            assert!(matches!(
                parse_response_head(&mut buffer, &Method::GET, &mut names),
                Ok(Parsed::Final(_))
            ));
        }
        let held: usize = names
            .names
            .0
            .iter()
            .map(|(spelled, name, _)| spelled.len() + name.as_str().len())
            .sum();
        assert!(
            held <= 2 * MAX_HEAD_BYTES,
            "one connection remembers {held} bytes of field names ({} places)",
            names.names.len()
        );
    }

    /// A repeated length is accepted as one number, and that number is what the guest is told
    /// (hyper's server writes a field as it stands, and over HTTP/2 `content-length: 12, 12` is
    /// malformed to a strict client).
    #[test]
    fn a_repeated_length_reaches_the_guest_as_one_number() {
        let head = final_head("HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Length(12));
        let handed_on = handed_on(head);
        let told: Vec<_> = handed_on.get_all(header::CONTENT_LENGTH).iter().collect();
        assert_eq!(told, ["12"]);
    }
}
