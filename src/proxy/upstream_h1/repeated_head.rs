//! A response head that repeats its connection's last one but for the values casegate hands on
//! (the `Date`, mostly), read by comparing it with that head instead of parsing it again.
//!
//! Why: an upstream answers the requests of one connection with heads that are alike byte for
//! byte but for a few values: nginx's answers for a file differ only in the seconds of their
//! `Date`. Parsing each head again (httparse, then every field's name recalled or judged, its
//! place noted) was the largest single part of casegate's work for a guest request, about 3,600
//! of its 25,500 instructions; comparing it with the last head is a few hundred.
//!
//! Why the answer is the parser's: a head whose bytes differ from a head parsed before only
//! inside the values of the fields handed on, and there only by bytes that a value may hold and
//! that can neither end it nor be trimmed from it (anything but SP, HTAB, DEL and the other
//! controls, CR, LF and NUL among them), parses into the same fields in the same places: the same
//! status line, the same names, the same separators and line ends, the same end of the head, and
//! values the parser would have let through. The values casegate reads for the framing
//! (`Content-Length`, `Transfer-Encoding`, `Connection`) must be the same bytes, so the framing is
//! the same too. Anything else is parsed as before. The property tests (`check_upstream_response`)
//! read heads changed in such bytes and in others both ways and want the same.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

use super::passed_fields::PassedFields;
use super::response_head::{FieldSpan, FramingFields, ResponseHead, field_ranges};

/// Heads longer than this are not remembered: the memory held for each pooled connection stays
/// small, and real heads this long (large cookies) are rarely alike from one answer to the next.
pub const LONGEST_REPEATED_HEAD: usize = 4 * 1024;

/// A connection's last final head, and what was read from it.
#[derive(Debug)]
pub struct RepeatedHead {
    /// Its bytes, those inside values handed on or kept for the sanitisers changeable.
    pattern: HeadPattern,
    status: StatusCode,
    version: Version,
    /// The fields handed on as they came, and whether one of them is `Date`.
    passed: Vec<FieldSpan>,
    date: bool,
    /// The fields kept in the response's map for the sanitisers, with their values' places.
    kept: Vec<(HeaderName, Range<usize>)>,
    /// What the framing fields said (they are the same bytes in a repeat).
    framing: FramingFields,
}

/// What [`RepeatedHead::remember`] takes of a final head read by the parser.
pub(super) struct ReadHead<'h> {
    pub(super) bytes: &'h [u8],
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) passed: &'h PassedFields,
    pub(super) kept: Vec<(HeaderName, Range<usize>)>,
    pub(super) framing: &'h FramingFields,
}

impl RepeatedHead {
    /// Remembers `head` for the next answer on its connection, in `last`'s room when there is
    /// one; `None` for a head too long to remember.
    pub(super) fn remember(head: ReadHead<'_>, last: Option<RepeatedHead>) -> Option<RepeatedHead> {
        if head.bytes.len() > LONGEST_REPEATED_HEAD {
            return None;
        }
        let (mut pattern, mut passed) = match last {
            Some(last) => (last.pattern, last.passed),
            None => Default::default(),
        };
        passed.clear();
        passed.extend_from_slice(head.passed.spans());
        let values = passed
            .iter()
            .map(|span| field_ranges(span).1)
            .chain(head.kept.iter().map(|(_, value)| value.clone()));
        pattern.learn(head.bytes, values);
        Some(RepeatedHead {
            pattern,
            status: head.status,
            version: head.version,
            passed,
            date: head.passed.has_date(),
            kept: head.kept,
            framing: head.framing.clone(),
        })
    }

    /// The head at the front of `buffer` when it repeats this one, taken from the buffer, as the
    /// parser would have read it; `None` (and the buffer untouched) otherwise.
    pub fn read(&self, buffer: &mut BytesMut, method: &Method) -> Option<Box<ResponseHead>> {
        let head = self.pattern.take_repeat(buffer)?;
        let mut headers = HeaderMap::new();
        append_values(&mut headers, &head, &self.kept);
        let passed = PassedFields::new(head, self.passed.clone(), self.date);
        Some(Box::new(self.framing.clone().decide(
            self.status,
            self.version,
            headers,
            passed,
            method,
        )))
    }
}

/// A remembered head's bytes, and which of them a repeat may change: what the upstream client's
/// answers and the HTTP/1 server's requests remember alike.
#[derive(Debug, Default)]
pub(crate) struct HeadPattern {
    /// The head's bytes, first line to the blank line.
    bytes: Vec<u8>,
    /// For each of `bytes`, 0xFF where it lies in a value a repeat may change, and 0 elsewhere.
    changeable: Vec<u8>,
}

impl HeadPattern {
    /// Learns `head`, whose bytes within `values` a repeat may change, in the room of the head
    /// learnt before.
    pub(crate) fn learn(&mut self, head: &[u8], values: impl IntoIterator<Item = Range<usize>>) {
        self.bytes.clear();
        self.bytes.extend_from_slice(head);
        self.changeable.clear();
        self.changeable.resize(head.len(), 0);
        for value in values {
            self.changeable[value].fill(0xFF);
        }
    }

    /// The head's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `buffer` starts with a repeat of the head ([`alike_but_for_values`]).
    pub(crate) fn is_repeated_by(&self, buffer: &[u8]) -> bool {
        buffer
            .get(..self.bytes.len())
            .is_some_and(|new| alike_but_for_values(&self.bytes, &self.changeable, new))
    }

    /// The repeat of the head at the front of `buffer`, taken from it; `None` (and the buffer
    /// untouched) when `buffer` does not start with one.
    pub(crate) fn take_repeat(&self, buffer: &mut BytesMut) -> Option<Bytes> {
        self.is_repeated_by(buffer)
            .then(|| buffer.split_to(self.bytes.len()).freeze())
    }
}

/// Appends to `headers` the value of each of `fields` from where it sits in `head`, a repeat.
pub(crate) fn append_values(
    headers: &mut HeaderMap,
    head: &Bytes,
    fields: &[(HeaderName, Range<usize>)],
) {
    for (name, value) in fields {
        // SAFETY: the value's bytes are those of a head the parser let through, or others that
        // `alike_but_for_values` let through: bytes a `HeaderValue` may hold.
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(head.slice(value.clone())) };
        headers.append(name.clone(), value);
    }
}

/// Whether `new` is `last` but for bytes where `changeable` is set (0xFF; 0 elsewhere), each of
/// them a byte a field value may hold inside it: visible ASCII or obs-text (0x80-0xFF), no SP or
/// HTAB, which the parser trims from a value's ends, and no control. All three are as long as
/// each other.
fn alike_but_for_values(last: &[u8], changeable: &[u8], new: &[u8]) -> bool {
    // Bytes as lanes, with masks instead of branches, in blocks of a fixed size that the compiler
    // turns into a few vector instructions; most blocks are the same bytes, found with fewer. The
    // last block ends with the head, over bytes checked already (checking them twice is
    // harmless).
    const BLOCK: usize = 16;
    fn strays(last: &[u8], changeable: &[u8], new: &[u8]) -> u8 {
        let mut strays = 0;
        for ((&was, &may_change), &is) in last.iter().zip(changeable).zip(new) {
            let value_byte = (u8::from(is > b' ') & u8::from(is != 0x7F)).wrapping_neg();
            strays |= (was ^ is) & !(may_change & value_byte);
        }
        strays
    }
    let length = last.len().min(changeable.len()).min(new.len());
    if length < BLOCK {
        return strays(last, changeable, new) == 0;
    }
    let mut at = 0;
    while at < length {
        let start = at.min(length - BLOCK);
        let block = start..start + BLOCK;
        let (was, is) = (&last[block.clone()], &new[block.clone()]);
        if was != is && strays(was, &changeable[block], is) != 0 {
            return false;
        }
        at += BLOCK;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::upstream_h1::response_head::{
        Parsed, ResponseMemory, final_head_of, parse_response_head,
    };

    const DATED: &str = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 05 Dec 2026 17:00:00 GMT\r\n\
        Content-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\
        Set-Cookie: a=1\r\nETag: \"1\"\r\n\r\n";

    /// What reading `text` after `before` on one connection made of it, and whether it was
    /// read as a repeat.
    fn read_after(before: &str, text: &str) -> (Option<ResponseHead>, bool) {
        let mut memory = ResponseMemory::default();
        let mut buffer = BytesMut::from(before.as_bytes());
        assert!(matches!(
            parse_response_head(&mut buffer, &Method::GET, &mut memory),
            Ok(Parsed::Final(_))
        ));
        let mut buffer = BytesMut::from(text.as_bytes());
        let repeated = memory
            .last_head()
            .is_some_and(|last| last.read(&mut buffer.clone(), &Method::GET).is_some());
        let head = match parse_response_head(&mut buffer, &Method::GET, &mut memory) {
            Ok(Parsed::Final(head)) => Some(*head),
            _ => None,
        };
        (head, repeated)
    }

    /// Everything a head hands on, as text, for comparing two reads.
    fn summary(head: &ResponseHead) -> String {
        let passed: Vec<String> = head
            .passed
            .fields()
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                )
            })
            .collect();
        format!(
            "{} {:?} {:?} {:?} {} {:?} {:?} {}",
            head.status,
            head.version,
            head.framing,
            head.headers,
            head.reusable,
            passed,
            head.passed.declared_length(),
            head.passed.has_date(),
        )
    }

    #[test]
    fn a_head_that_differs_only_in_values_handed_on_is_read_as_a_repeat() {
        for text in [
            DATED.to_owned(),
            DATED.replace("17:00:00", "17:00:01"),
            DATED.replace("a=1", "b=2"),
            DATED.replace("\"1\"", "\"\u{e9}"),
            DATED.replace("application/json", "application/jsoX"),
        ] {
            let (head, repeated) = read_after(DATED, &text);
            assert!(repeated, "{text:?}");
            let head = head.expect("a final head");
            assert_eq!(
                summary(&head),
                summary(&final_head_of(&text, &Method::GET)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn any_other_difference_is_parsed_again() {
        for (from, to) in [
            // The framing's values, names, the status line, separators and line ends.
            ("Content-Length: 2", "Content-Length: 3"),
            ("keep-alive", "close     "),
            ("ETag", "ETaX"),
            ("200 OK", "204 OK"),
            ("Date: ", "Date:x"),
            ("\"1\"\r\n", "\"1\" \n"),
            // Bytes a value may not hold, or that the parser trims from its ends.
            ("\"1\"", "\"1 "),
            ("\"1\"", " 1\""),
            ("\"1\"", "\"\t\""),
            ("\"1\"", "\"\r\""),
            ("\"1\"", "\"\n\""),
            ("\"1\"", "\"\0\""),
            ("\"1\"", "\"\x7f\""),
            ("\"1\"", "\"\x01\""),
        ] {
            let text = DATED.replacen(from, to, 1);
            assert_ne!(text, DATED, "{from:?}");
            let (head, repeated) = read_after(DATED, &text);
            assert!(!repeated, "{to:?}");
            let fresh = parse_response_head(
                &mut BytesMut::from(text.as_bytes()),
                &Method::GET,
                &mut ResponseMemory::default(),
            );
            match (head, fresh) {
                (Some(head), Ok(Parsed::Final(fresh))) => {
                    assert_eq!(summary(&head), summary(&fresh), "{to:?}")
                }
                (None, Ok(Parsed::Final(_))) => panic!("{to:?}: refused, where parsed afresh"),
                (Some(_), _) => panic!("{to:?}: read, where refused afresh"),
                (None, _) => {}
            }
        }
    }

    #[test]
    fn a_shorter_buffer_or_another_method_is_read_as_the_parser_reads_it() {
        let mut memory = ResponseMemory::default();
        let mut buffer = BytesMut::from(DATED.as_bytes());
        parse_response_head(&mut buffer, &Method::GET, &mut memory).expect("parsed");
        let last = memory.last_head().expect("remembered");
        let mut partial = BytesMut::from(&DATED.as_bytes()[..DATED.len() - 1]);
        assert!(last.read(&mut partial, &Method::GET).is_none());
        assert_eq!(
            partial.len(),
            DATED.len() - 1,
            "a refused repeat leaves the buffer be"
        );
        let mut with_body = BytesMut::from(format!("{DATED}{{}}").as_bytes());
        let head = last.read(&mut with_body, &Method::HEAD).expect("a repeat");
        assert_eq!(&with_body[..], b"{}");
        assert_eq!(
            summary(&head),
            summary(&final_head_of(DATED, &Method::HEAD))
        );
    }

    proptest::proptest! {
        /// The blocks, the last one overlapping, judge each byte as this one-by-one reading of
        /// the rule does, at every length.
        #[test]
        fn blocks_judge_every_byte_as_the_rule_does(
            bytes in proptest::collection::vec(
                (proptest::prelude::any::<u8>(), proptest::prelude::any::<bool>(), 0u8..4, proptest::prelude::any::<u8>()),
                0..100,
            )
        ) {
            let last: Vec<u8> = bytes.iter().map(|&(was, ..)| was).collect();
            let changeable: Vec<u8> = bytes.iter().map(|&(_, may, ..)| if may { 0xFF } else { 0 }).collect();
            // Mostly the same bytes, as a repeated head is.
            let new: Vec<u8> = bytes.iter().map(|&(was, _, keep, is)| if keep > 0 { was } else { is }).collect();
            let by_the_rule = bytes.iter().zip(&new).all(|(&(was, may, ..), &is)| {
                was == is || (may && is > b' ' && is != 0x7F)
            });
            proptest::prop_assert_eq!(alike_but_for_values(&last, &changeable, &new), by_the_rule);
        }
    }

    #[test]
    fn long_heads_are_not_remembered() {
        let long = DATED.replace(
            "\r\n\r\n",
            &format!("\r\nX-Pad: {}\r\n\r\n", "p".repeat(5000)),
        );
        let mut memory = ResponseMemory::default();
        let mut buffer = BytesMut::from(long.as_bytes());
        parse_response_head(&mut buffer, &Method::GET, &mut memory).expect("parsed");
        assert!(memory.last_head().is_none());
    }
}
