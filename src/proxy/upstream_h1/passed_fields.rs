//! An upstream response's fields that casegate hands on without reading them (`Content-Type`,
//! `ETag`, `Date`...): most of every response head. They stay where the upstream sent them, in
//! its head's bytes, and are written to an HTTP/1 client from there.
//!
//! Building a header map of them cost more than anything else casegate does with a response:
//! each field hashed into the map, its value given a reference of its own to the head, the map
//! allocated, walked to write it and dropped, about 2,000 instructions a response. The fields
//! casegate does look at or change (framing, hop-by-hop, `Set-Cookie`, CORS, caching, redirects,
//! HSTS: [`crate::proxy::response::is_read_or_changed`]) are not among these; they go into the
//! response's map as before, where the sanitisers find them. An HTTP/2 answer is written by hyper
//! from the map, so there the fields are moved into it ([`PassedFields::move_into`]).
//!
//! The fields travel beside the response's map, not in it: in the parsed head from the upstream
//! client to the gateway ([`crate::proxy::client::UpstreamAnswer`]), which sanitises them with
//! the map, and on in the answer's body to the HTTP/1 writer ([`UpstreamExtras`]). The
//! response's extensions carried them at first; their map cost three allocations and about 500
//! instructions a request.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use super::body::SpliceOffer;
use super::response_head::{FieldSpan, field_ranges};
use crate::proxy::field_line::write_field_line;
use crate::proxy::response::GUEST_FIELDS;

/// Fields passed on as they came, and what casegate read of the head around them.
#[derive(Clone, Debug, Default)]
pub struct PassedFields {
    /// The response head, status line included; the spans point into it.
    head: Bytes,
    spans: Vec<FieldSpan>,
    /// One of the fields is `Date` (the writer adds one otherwise).
    date: bool,
    /// The body's length as the upstream declared it, when the body is framed by it. The field
    /// itself is not passed: every writer frames the body itself.
    declared_length: Option<u64>,
    /// The answer goes to a guest: casegate's own fields ([`GUEST_FIELDS`]) go with it.
    guest: bool,
}

/// What a response body may bring from the upstream beside its frames, which the HTTP/1 writer
/// asks its answer's body for: the upstream's fields passed on as they came, and a large body's
/// offer to be moved socket to socket. Bodies the gateway makes itself bring neither.
pub trait UpstreamExtras {
    fn passed_fields(&self) -> Option<&PassedFields> {
        None
    }

    fn splice_offer(&self) -> Option<&SpliceOffer> {
        None
    }
}

impl UpstreamExtras for http_body_util::Empty<Bytes> {}

impl UpstreamExtras for http_body_util::Full<Bytes> {}

impl PassedFields {
    /// `spans` point into `head` and were checked by the parser: names are tokens, values hold
    /// no CR, LF or NUL (httparse's rules, which are `http`'s).
    pub(super) fn new(head: Bytes, spans: Vec<FieldSpan>, date: bool) -> PassedFields {
        PassedFields {
            head,
            spans,
            date,
            declared_length: None,
            guest: false,
        }
    }

    pub(super) fn set_declared_length(&mut self, length: Option<u64>) {
        self.declared_length = length;
    }

    /// Each field's name and value, as the upstream spelled them, in its order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|span| {
            let (name, value) = field_ranges(span);
            (&self.head[name], &self.head[value])
        })
    }

    /// Writes the fields as `name: value` lines for an HTTP/1 head: the same bytes as writing
    /// each [`PassedFields::fields`] pair, with most of them copied in a few runs. An upstream
    /// usually writes its fields just so, one after the other, and every field between two
    /// dropped ones (`Server`, `Content-Length`, `Connection`) is then one copy of the head's
    /// bytes instead of two copies and two small writes a field (about a tenth of the
    /// `memcpy` calls a guest request made). A line spelled any other way (no space or two
    /// after the colon, spaces before the line's end, a bare LF) is written from its name and
    /// value, as before.
    pub fn write_lines(&self, out: &mut Vec<u8>) {
        let head = &self.head[..];
        let mut run = 0..0;
        for span in &self.spans {
            let (name, value) = field_ranges(span);
            let canonical = head.get(name.end..value.start) == Some(b": ")
                && head.get(value.end..value.end + 2) == Some(b"\r\n");
            if canonical && run.end == name.start && !run.is_empty() {
                run.end = value.end + 2;
                continue;
            }
            out.extend_from_slice(&head[run.clone()]);
            if canonical {
                run = name.start..value.end + 2;
            } else {
                run = 0..0;
                write_field_line(out, &head[name], &head[value]);
            }
        }
        out.extend_from_slice(&head[run]);
    }

    /// Where each field sits in the head.
    pub(super) fn spans(&self) -> &[FieldSpan] {
        &self.spans
    }

    pub fn has_date(&self) -> bool {
        self.date
    }

    pub fn declared_length(&self) -> Option<u64> {
        self.declared_length
    }

    /// Leaves out the fields named `name` (in any letter case): those the upstream's
    /// `Connection` named, hop-by-hop for this one connection.
    pub(super) fn remove(&mut self, name: &HeaderName) {
        let head = &self.head;
        self.spans.retain(|span| {
            !head[field_ranges(span).0].eq_ignore_ascii_case(name.as_str().as_bytes())
        });
    }

    /// The answer goes to a guest: casegate's [`GUEST_FIELDS`] are written with the fields.
    pub fn mark_for_guest(&mut self) {
        self.guest = true;
    }

    pub fn is_for_guest(&self) -> bool {
        self.guest
    }

    /// Moves the fields, the declared length and (for a guest) casegate's own fields into
    /// `headers`, for a writer that takes only a map (hyper's HTTP/2 server).
    pub fn move_into(self, headers: &mut HeaderMap) {
        headers.reserve(self.spans.len() + GUEST_FIELDS.len() + 1);
        for span in &self.spans {
            let (name, value) = field_ranges(span);
            // The parser let through only tokens; a name `http` refused anyway is left out
            // rather than guessed at.
            let Ok(name) = HeaderName::from_bytes(&self.head[name]) else {
                continue;
            };
            let value = self.head.slice(value);
            // SAFETY: the parser let through only the bytes a `HeaderValue` may hold (see `new`).
            let value = unsafe { HeaderValue::from_maybe_shared_unchecked(value) };
            headers.append(name, value);
        }
        if let Some(length) = self.declared_length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        if self.guest {
            for (name, value) in GUEST_FIELDS {
                headers.append(name, HeaderValue::from_static(value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::upstream_h1::response_head::{Parsed, final_head_of, parse_response_head};
    use http::Method;

    fn written(passed: &PassedFields) -> Vec<String> {
        passed
            .fields()
            .map(|(name, value)| {
                format!(
                    "{}: {}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                )
            })
            .collect()
    }

    #[test]
    fn fields_keep_their_order_spelling_and_repeats() {
        let head = final_head_of(
            "HTTP/1.1 200 OK\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\
             Content-Length: 0\r\n\r\n",
            &Method::GET,
        );
        assert_eq!(
            written(&head.passed),
            [
                "X-B: 2",
                "x-a: 1",
                "X-B: 3",
                "Date: Tue, 01 Dec 2026 00:00:00 GMT"
            ]
        );
        assert!(head.passed.has_date());
        assert_eq!(head.passed.declared_length(), Some(0));
        assert!(!head.passed.is_for_guest());
    }

    /// A field the upstream's `Connection` names is hop-by-hop, whatever its letter case, in the
    /// fields passed on as in the map.
    #[test]
    fn fields_named_by_connection_are_not_passed_on() {
        let head = final_head_of(
            "HTTP/1.1 200 OK\r\nConnection: x-hop, Set-Cookie\r\nX-HOP: 1\r\nX-Stay: 2\r\n\
             Set-Cookie: a=1\r\nContent-Length: 0\r\n\r\n",
            &Method::GET,
        );
        assert_eq!(written(&head.passed), ["X-Stay: 2"]);
        assert!(head.headers.is_empty());
    }

    /// A name longer than those remembered per connection is judged afresh, the same way.
    #[test]
    fn long_names_are_judged_like_short_ones() {
        let long = format!("x-{}", "n".repeat(100));
        let cookie = format!("Set-Cookie: a=1\r\n{long}: 1\r\n");
        let head = final_head_of(
            &format!("HTTP/1.1 200 OK\r\n{cookie}Content-Length: 0\r\n\r\n"),
            &Method::GET,
        );
        assert_eq!(written(&head.passed), [format!("{long}: 1")]);
        assert!(head.headers.contains_key(header::SET_COOKIE));
    }

    /// The lines as `write_lines` writes them, and as writing each field by itself would.
    fn lines_both_ways(passed: &PassedFields) -> (Vec<u8>, Vec<u8>) {
        let mut in_runs = Vec::new();
        passed.write_lines(&mut in_runs);
        let mut one_by_one = Vec::new();
        for (name, value) in passed.fields() {
            write_field_line(&mut one_by_one, name, value);
        }
        (in_runs, one_by_one)
    }

    #[test]
    fn lines_copied_in_runs_are_the_fields_written_one_by_one() {
        let head = final_head_of(
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\
             ETag: \"v1\"\r\nAccept-Ranges: bytes\r\nX-Tight:1\r\nX-Wide:   2\r\n\
             X-Trailing: 3  \r\nX-Bare: 4\nX-Tab:\t5\r\nX-Last: 6\r\n\r\n",
            &Method::GET,
        );
        let (in_runs, one_by_one) = lines_both_ways(&head.passed);
        assert_eq!(in_runs, one_by_one);
        assert_eq!(
            String::from_utf8(in_runs).unwrap(),
            "Date: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Type: application/json\r\n\
             ETag: \"v1\"\r\nAccept-Ranges: bytes\r\nX-Tight: 1\r\nX-Wide: 2\r\n\
             X-Trailing: 3\r\nX-Bare: 4\r\nX-Tab: 5\r\nX-Last: 6\r\n"
        );
    }

    proptest::proptest! {
        /// Whatever the spacing and line ends, and whichever fields are dropped between them,
        /// the runs are byte for byte the fields written one by one.
        #[test]
        fn runs_write_what_field_by_field_writes(
            fields in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "Date", "ETag", "X-A", "Content-Length", "Server", "Connection",
                        "Set-Cookie", "Vary", "Cache-Control",
                    ]),
                    proptest::sample::select(vec![":", ": ", ":  ", ":\t", ": \t"]),
                    "[a-z0-9 ]{0,6}[a-z0-9]",
                    proptest::sample::select(vec!["", " ", "\t"]),
                    proptest::sample::select(vec!["\r\n", "\n"]),
                ),
                0..12,
            ),
        ) {
            let mut text = String::from("HTTP/1.1 200 OK\r\n");
            for (name, colon, value, trailing, end) in &fields {
                let value = if *name == "Content-Length" { "0" } else { value.as_str() };
                text.push_str(&format!("{name}{colon}{value}{trailing}{end}"));
            }
            text.push_str("\r\n");
            let mut buffer = bytes::BytesMut::from(text.as_bytes());
            let parsed = parse_response_head(&mut buffer, &Method::GET, &mut Default::default());
            // Two lengths that disagree are refused, not written: nothing to compare.
            if let Ok(Parsed::Final(head)) = parsed {
                let (in_runs, one_by_one) = lines_both_ways(&head.passed);
                proptest::prop_assert_eq!(in_runs, one_by_one);
            }
        }
    }

    #[test]
    fn moved_into_a_map_they_are_the_same_fields_with_the_length_and_ours() {
        let mut head = final_head_of(
            "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 12, 12\r\n\r\n",
            &Method::HEAD,
        );
        head.passed.mark_for_guest();
        let mut headers = head.headers;
        head.passed.move_into(&mut headers);
        assert_eq!(headers["etag"], "\"v1\"");
        assert_eq!(headers[header::CONTENT_LENGTH], "12");
        for (name, value) in GUEST_FIELDS {
            assert_eq!(headers[name], value);
        }
        assert_eq!(headers.len(), 2 + GUEST_FIELDS.len());
    }
}
