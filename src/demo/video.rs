//! The demo case video: a WebM embedded in the binary, served from memory with single
//! byte-range support so a browser can seek.

use bytes::Bytes;
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

/// 60 s of a VP8 test pattern with a running clock, keyframes every 2 s (see assets/README.md).
static VIDEO: &[u8] = include_bytes!("assets/case-demo.webm");

/// The part of the video a request asked for, already checked against its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    Whole,
    /// Inclusive bounds, as Content-Range writes them; `start <= end < len` always holds.
    Part {
        start: usize,
        end: usize,
    },
    Unsatisfiable,
}

/// Answers a GET or HEAD for the video. Ranges only apply to GET (RFC 9110 §14.2).
pub(super) fn video_response(method: &Method, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let whole = Bytes::from_static(VIDEO);
    let len = whole.len();
    // We send no ETag or Last-Modified, so no If-Range validator can match: send it all.
    let range = match headers.get(RANGE) {
        Some(value) if method == Method::GET && !headers.contains_key(IF_RANGE) => {
            select(value, len)
        }
        _ => ByteRange::Whole,
    };
    let builder = Response::builder().header(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let built = match range {
        ByteRange::Whole => builder
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, "video/webm")
            .header(CONTENT_LENGTH, len)
            .body(Full::new(whole)),
        ByteRange::Part { start, end } => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(CONTENT_TYPE, "video/webm")
            .header(CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
            .header(CONTENT_LENGTH, end - start + 1)
            // A view into the static asset: no copy however large the range.
            .body(Full::new(whole.slice(start..=end))),
        ByteRange::Unsatisfiable => builder
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(CONTENT_RANGE, format!("bytes */{len}"))
            .header(CONTENT_LENGTH, 0)
            .body(Full::new(Bytes::new())),
    };
    // Every header above is ASCII digits and fixed text, so building cannot fail; if it ever
    // did, a bare 500 is the honest answer.
    built.unwrap_or_else(|_| {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// Reads one `Range` header value against a representation of `len` bytes.
///
/// Only a single `bytes=` range is honoured. A header we do not understand, and a multi-range
/// request, are ignored and get the whole video, as RFC 9110 §14.2 permits; only a well-formed
/// range that lies wholly past the end is unsatisfiable.
fn select(value: &HeaderValue, len: usize) -> ByteRange {
    let Ok(text) = value.to_str() else {
        return ByteRange::Whole;
    };
    let Some(spec) = strip_prefix_ignore_case(text.trim(), "bytes=") else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    match (digits(first), digits(last)) {
        (Some(start), Some(end)) if start <= end => from_start(start, Some(end), len),
        (Some(start), None) if last.is_empty() => from_start(start, None, len),
        (None, Some(suffix)) if first.is_empty() => from_end(suffix, len),
        _ => ByteRange::Whole,
    }
}

/// `a-b` and `a-`: an end past the last byte is trimmed to it.
fn from_start(start: usize, end: Option<usize>, len: usize) -> ByteRange {
    match len.checked_sub(1) {
        Some(last_byte) if start <= last_byte => ByteRange::Part {
            start,
            end: end.map_or(last_byte, |end| end.min(last_byte)),
        },
        _ => ByteRange::Unsatisfiable,
    }
}

/// `-n`: the last n bytes, or all of them when n exceeds the length; `-0` asks for nothing.
fn from_end(suffix: usize, len: usize) -> ByteRange {
    match len.checked_sub(1) {
        Some(last_byte) if suffix > 0 => ByteRange::Part {
            start: len.saturating_sub(suffix),
            end: last_byte,
        },
        _ => ByteRange::Unsatisfiable,
    }
}

/// A non-empty run of ASCII digits; huge numbers saturate so that an absurd start is
/// unsatisfiable and an absurd end or suffix means "to the end", as they would with big integers.
fn digits(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0usize, |acc, b| {
        acc.saturating_mul(10).saturating_add(usize::from(b - b'0'))
    }))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// How long the embedded video is, for tests that check full responses.
#[cfg(test)]
pub(super) fn video_len() -> usize {
    VIDEO.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteRange::{Part, Unsatisfiable, Whole};

    #[test]
    fn range_headers_select_the_expected_bytes_of_a_thousand() {
        let table = [
            (
                "a closed range is served as asked",
                "bytes=0-99",
                Part { start: 0, end: 99 },
            ),
            (
                "a one-byte range is served",
                "bytes=5-5",
                Part { start: 5, end: 5 },
            ),
            (
                "an open range runs to the end",
                "bytes=900-",
                Part {
                    start: 900,
                    end: 999,
                },
            ),
            (
                "a suffix range serves the tail",
                "bytes=-100",
                Part {
                    start: 900,
                    end: 999,
                },
            ),
            (
                "an end past the last byte is trimmed",
                "bytes=990-5000",
                Part {
                    start: 990,
                    end: 999,
                },
            ),
            (
                "a suffix longer than the file is all of it",
                "bytes=-5000",
                Part { start: 0, end: 999 },
            ),
            (
                "the unit is case-insensitive",
                "Bytes=1-2",
                Part { start: 1, end: 2 },
            ),
            (
                "spaces around the numbers are tolerated",
                "bytes= 1 - 2 ",
                Part { start: 1, end: 2 },
            ),
            (
                "a start at the length is unsatisfiable",
                "bytes=1000-",
                Unsatisfiable,
            ),
            (
                "a start past the length is unsatisfiable",
                "bytes=2000-3000",
                Unsatisfiable,
            ),
            (
                "an absurd start is unsatisfiable",
                "bytes=99999999999999999999999-",
                Unsatisfiable,
            ),
            (
                "an empty suffix is unsatisfiable",
                "bytes=-0",
                Unsatisfiable,
            ),
            (
                "an absurd end means to the end",
                "bytes=10-99999999999999999999999",
                Part {
                    start: 10,
                    end: 999,
                },
            ),
            (
                "a multi-range request gets the whole file",
                "bytes=0-1,5-6",
                Whole,
            ),
            ("a reversed range is ignored", "bytes=9-5", Whole),
            ("another unit is ignored", "items=0-5", Whole),
            ("a missing dash is ignored", "bytes=5", Whole),
            ("a bare dash is ignored", "bytes=-", Whole),
            ("a negative number is ignored", "bytes=-5-6", Whole),
            ("a plus sign is not a digit", "bytes=+5-6", Whole),
            ("garbage is ignored", "nonsense", Whole),
        ];
        for (name, header, expected) in table {
            assert_eq!(
                select(&HeaderValue::from_static(header), 1000),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn nothing_is_satisfiable_in_an_empty_file() {
        for header in ["bytes=0-0", "bytes=0-", "bytes=-1"] {
            assert_eq!(
                select(&HeaderValue::from_static(header), 0),
                Unsatisfiable,
                "{header}"
            );
        }
    }

    #[test]
    fn a_range_with_if_range_gets_the_whole_video() {
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, HeaderValue::from_static("bytes=0-9"));
        headers.insert(IF_RANGE, HeaderValue::from_static("\"some-etag\""));
        let response = video_response(&Method::GET, &headers);
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn head_ignores_the_range() {
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, HeaderValue::from_static("bytes=0-9"));
        let response = video_response(&Method::HEAD, &headers);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            video_len().to_string().as_str()
        );
    }

    #[test]
    fn the_embedded_video_is_a_small_webm() {
        assert!(VIDEO.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]), "EBML magic");
        assert!(
            video_len() <= 4 * 1024 * 1024,
            "keep the committed asset at most 4 MB"
        );
    }
}
