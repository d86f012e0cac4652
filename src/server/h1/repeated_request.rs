//! A request head that repeats its connection's last one but for the values of fields the server
//! does not read (a video player's `Range`, a changed cookie), read by comparing it with that head
//! instead of parsing it again.
//!
//! Why: a client sends the requests of one connection with heads alike byte for byte but for a
//! few values, and the same target when it fetches one resource piece by piece. Parsing each head
//! again (httparse, its target as a `Uri`, each name recalled, the header map built) cost about
//! 2,500 of the 22,500 instructions of a guest request; a repeat costs about 1,100, most of it the
//! header map, which is built as before.
//!
//! Why the answer is the parser's: the rule of [`HeadPattern`], as for the upstream's
//! answers (`proxy::upstream_h1::repeated_head`). The request line, the names, the separators,
//! the line ends and the values the parser reads itself (`Connection`, `Expect`, `Upgrade`) must
//! be the same bytes, so the method, the target, the version, the keep-alive and the expectations
//! are the same. Heads with a body's framing fields are not remembered. The map the gateway reads
//! is built afresh from the new head's bytes, and the gateway checks every value in it as it
//! would a parsed one. The property tests (`check_client_requests`) read streams of repeated and
//! changed heads both ways and want the same.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName};
use http::{Method, Uri, Version};

use super::request_head::{HeadLimits, RequestFraming, RequestHead};
use crate::proxy::upstream_h1::repeated_head::{HeadPattern, append_values};

/// Heads longer than this are not remembered: a kept-alive connection's memory stays small.
pub const LONGEST_REPEATED_REQUEST: usize = 4 * 1024;

/// A connection's last request head, and what was read from it.
#[derive(Debug)]
pub struct RepeatedRequest {
    /// Its bytes, those inside values the parser did not read changeable.
    pattern: HeadPattern,
    method: Method,
    /// Where the target sits in the head.
    target: Range<usize>,
    /// The target, parsed when the head is first repeated (a head never repeated costs no second
    /// parse), from a copy of its bytes: a `Uri` sharing the head would keep the connection's
    /// whole read buffer from being reused or let go.
    uri: Option<Uri>,
    version: Version,
    /// Every field, in order: the name, and where the value sits in the head.
    fields: Vec<(HeaderName, Range<usize>)>,
    keep_alive: bool,
    expect_continue: bool,
    wants_upgrade: bool,
}

/// What [`RepeatedRequest::remember`] takes of a head read by the parser.
pub(super) struct ReadRequest<'h> {
    pub(super) bytes: &'h [u8],
    pub(super) head: &'h RequestHead,
    pub(super) fields: Vec<(HeaderName, Range<usize>)>,
    /// Where the values the parser did not read sit (not the framing's, `Connection`, `Expect`
    /// or `Upgrade`): a repeat may change them.
    pub(super) changeable: &'h [Range<usize>],
    pub(super) target: Range<usize>,
}

impl RepeatedRequest {
    /// Remembers a head for the next request on its connection, in `last`'s room when there is
    /// one; `None` for a head too long to remember or with a body's framing. Boxed: a
    /// connection's task holds it from its second request on, and inline its couple of hundred
    /// bytes would be part of every connection's task, idle ones and those that never repeat.
    pub(super) fn remember(
        read: ReadRequest<'_>,
        mut last: Option<Box<RepeatedRequest>>,
    ) -> Option<Box<RepeatedRequest>> {
        if read.bytes.len() > LONGEST_REPEATED_REQUEST || read.head.framing != RequestFraming::Empty
        {
            return None;
        }
        let mut pattern = last
            .as_mut()
            .map(|last| std::mem::take(&mut last.pattern))
            .unwrap_or_default();
        pattern.learn(read.bytes, read.changeable.iter().cloned());
        let remembered = RepeatedRequest {
            pattern,
            method: read.head.method.clone(),
            target: read.target,
            uri: None,
            version: read.head.version,
            fields: read.fields,
            keep_alive: read.head.keep_alive,
            expect_continue: read.head.expect_continue,
            wants_upgrade: read.head.wants_upgrade,
        };
        Some(match last {
            Some(mut room) => {
                *room = remembered;
                room
            }
            None => Box::new(remembered),
        })
    }

    /// The head at the front of `buffer` when it repeats this one (and fits `limits`), taken
    /// from the buffer, as the parser would have read it; `None` (and the buffer untouched)
    /// otherwise.
    pub(super) fn read(
        &mut self,
        buffer: &mut BytesMut,
        limits: HeadLimits,
    ) -> Option<RequestHead> {
        if !self.is_repeated_by(buffer, limits) {
            return None;
        }
        let uri = match &self.uri {
            Some(uri) => uri.clone(),
            None => {
                let target = Bytes::copy_from_slice(self.pattern.bytes().get(self.target.clone())?);
                // The same bytes the parser made a `Uri` of: refused only were they refused then.
                let uri = Uri::from_maybe_shared(target).ok()?;
                self.uri.insert(uri).clone()
            }
        };
        let head: Bytes = buffer.split_to(self.pattern.bytes().len()).freeze();
        let mut headers = HeaderMap::with_capacity(map_room(self.fields.len()));
        append_values(&mut headers, &head, &self.fields);
        Some(RequestHead {
            method: self.method.clone(),
            uri,
            version: self.version,
            headers,
            framing: RequestFraming::Empty,
            keep_alive: self.keep_alive,
            expect_continue: self.expect_continue,
            wants_upgrade: self.wants_upgrade,
            wire_len: head.len(),
        })
    }

    /// Whether `buffer` starts with a repeat of this head that fits `limits`.
    fn is_repeated_by(&self, buffer: &[u8], limits: HeadLimits) -> bool {
        self.pattern.bytes().len() <= limits.max_bytes
            && self.fields.len() <= limits.max_fields
            && self.pattern.is_repeated_by(buffer)
    }
}

/// The fewest fields a request's map has room for (see [`map_room`]).
const SPARE_SLOTS: usize = 6;

/// Room to spare in a request's map for `count` fields: the gateway looks up about ten names a
/// request that are usually absent (`Transfer-Encoding`, `Connection`, `Upgrade`, `Accept`,
/// ...), and in a map sized to its fields (two slots for two) each miss probes every slot before
/// it gives up. Half empty, most misses stop at the first empty slot.
pub(super) fn map_room(count: usize) -> usize {
    (2 * count).max(SPARE_SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::h1::request_head::{HeadError, RequestMemory, parse_request_head};

    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 8192,
        max_fields: 100,
    };

    const RANGED: &str = "GET /cases/42/video.mp4 HTTP/1.1\r\nHost: share.test\r\n\
        Cookie: casegate_session=abc\r\nRange: bytes=1000-\r\nConnection: keep-alive\r\n\r\n";

    /// Everything the server and the gateway read of a head, as text, for comparing two reads.
    fn summary(head: &RequestHead) -> String {
        format!(
            "{} {} {:?} {:?} {:?} {} {} {} {}",
            head.method,
            head.uri,
            head.version,
            head.headers,
            head.framing,
            head.keep_alive,
            head.expect_continue,
            head.wants_upgrade,
            head.wire_len,
        )
    }

    fn parse(text: &str, memory: &mut RequestMemory) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(&mut BytesMut::from(text.as_bytes()), LIMITS, memory)
    }

    /// A connection that has read `before` twice (the first head of a connection is never
    /// remembered).
    fn having_read(before: &str) -> RequestMemory {
        let mut memory = RequestMemory::default();
        for _ in 0..2 {
            assert!(
                matches!(parse(before, &mut memory), Ok(Some(_))),
                "{before:?}"
            );
        }
        memory
    }

    /// Reads `text` after `before` on one connection; whether it was read as a repeat, and that
    /// it was read as on a new connection.
    fn repeated_after(before: &str, text: &str) -> bool {
        let mut memory = having_read(before);
        let repeated = memory
            .last_request()
            .is_some_and(|last| last.is_repeated_by(text.as_bytes(), LIMITS));
        let fresh = parse(text, &mut RequestMemory::default());
        match (parse(text, &mut memory), fresh) {
            (Ok(Some(head)), Ok(Some(fresh))) => {
                assert_eq!(summary(&head), summary(&fresh), "{text:?}")
            }
            (Err(error), Err(fresh)) => assert_eq!(error, fresh, "{text:?}"),
            (read, fresh) => panic!("{text:?}: {read:?}, where afresh {fresh:?}"),
        }
        repeated
    }

    #[test]
    fn a_head_that_differs_only_in_values_the_server_does_not_read_is_a_repeat() {
        for text in [
            RANGED.to_owned(),
            RANGED.replace("1000-", "2000-"),
            RANGED.replace("abc", "xyz"),
            // obs-text in a value, as many bytes as the letters it replaces.
            RANGED.replace("share.test", "share.t\u{e9}t"),
        ] {
            assert!(repeated_after(RANGED, &text), "{text:?}");
        }
    }

    #[test]
    fn a_changed_request_line_name_or_read_value_is_parsed_again() {
        for (from, to) in [
            ("/cases/42/", "/cases/43/"),
            ("GET ", "PUT "),
            ("HTTP/1.1", "HTTP/1.0"),
            ("Range", "Rangx"),
            ("1000-", "1000 "),
            ("1000-", "1000\x7f"),
            ("keep-alive", "keep-alivX"),
            ("keep-alive", "close     "),
        ] {
            let text = RANGED.replacen(from, to, 1);
            assert!(!repeated_after(RANGED, &text), "{to:?}");
        }
        // Values the parser reads, each changed to one that means something else.
        for (before, after) in [
            ("Connection: close", "Connection: xlose"),
            ("Expect: 100-continue", "Expect: 100-continuX"),
            ("Content-Length: 0", "Content-Length: 5"),
            ("Upgrade: websocket", "Upgrade: websockeX"),
        ] {
            let head = |field: &str| format!("GET / HTTP/1.1\r\nHost: x\r\n{field}\r\n\r\n");
            assert!(!repeated_after(&head(before), &head(after)), "{after:?}");
        }
        let http10 = |value: &str| format!("GET / HTTP/1.0\r\nConnection: {value}\r\n\r\n");
        assert!(!repeated_after(
            &http10("keep-alive"),
            &http10("keep-alivX")
        ));
    }

    #[test]
    fn heads_with_a_body_or_too_long_are_not_remembered() {
        for text in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n".to_owned(),
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
            format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "p".repeat(5000)),
        ] {
            assert!(having_read(&text).last_request().is_none(), "{text:?}");
        }
    }

    /// A connection kept idle after its one request (a browser's spare connection) holds no
    /// copy of it; the second request is remembered.
    #[test]
    fn only_a_connections_second_head_is_remembered() {
        let mut memory = RequestMemory::default();
        assert!(matches!(parse(RANGED, &mut memory), Ok(Some(_))));
        assert!(memory.last_request().is_none());
        assert!(matches!(parse(RANGED, &mut memory), Ok(Some(_))));
        assert!(memory.last_request().is_some());
    }

    /// Limits lowered by a reload hold for a repeat as for a parse.
    #[test]
    fn a_repeat_over_the_limits_is_parsed_and_refused() {
        let mut memory = having_read(RANGED);
        for limits in [
            HeadLimits {
                max_bytes: 64,
                max_fields: 100,
            },
            HeadLimits {
                max_bytes: 8192,
                max_fields: 2,
            },
        ] {
            let refused =
                parse_request_head(&mut BytesMut::from(RANGED.as_bytes()), limits, &mut memory);
            assert_eq!(refused.unwrap_err(), HeadError::TooLarge, "{limits:?}");
        }
    }
}
