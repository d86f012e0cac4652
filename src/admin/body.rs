//! Reading a JSON request body within bounds: the media type must be JSON, a declared length over
//! the limit is refused before a byte is read, a streamed body is cut off as soon as it passes the
//! limit, and a body that trickles in is given up on after [`BODY_READ_TIMEOUT`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::BodyExt;

use super::error::ApiError;

/// How long a client has to send the whole body once the head has arrived.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of a JSON request, at most `limit` bytes.
pub async fn read_json<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::proxy::BoxError>,
{
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if declared_length(headers).is_some_and(|length| length > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    tokio::time::timeout(BODY_READ_TIMEOUT, collect_bounded(body, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

async fn collect_bounded<B>(mut body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::proxy::BoxError>,
{
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| ApiError::BodyRead(error.into()))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                return Err(ApiError::BodyTooLarge { limit });
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// `application/json`, in any case, optionally with parameters (`; charset=utf-8`); exactly one
/// Content-Type header.
fn is_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let media_type = text.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// The declared length; hyper has already refused malformed or conflicting values.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body_util::Full;
    use hyper::body::Frame;

    fn json_headers(extra: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        for (name, value) in extra {
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    #[tokio::test]
    async fn a_json_body_within_the_limit_is_read_whole() {
        let body = Full::new(Bytes::from_static(b"{\"case\":\"42\"}"));
        let read = read_json(&json_headers(&[]), body, 13).await.unwrap();
        assert_eq!(&read[..], b"{\"case\":\"42\"}");
    }

    #[tokio::test]
    async fn media_types_other_than_json_are_refused() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("json", Some("application/json"), true),
            (
                "json with a charset",
                Some("application/json; charset=utf-8"),
                true,
            ),
            ("json in capitals", Some("Application/JSON"), true),
            ("no content type", None, false),
            ("a form", Some("application/x-www-form-urlencoded"), false),
            ("text", Some("text/plain"), false),
            (
                "a json suffix type",
                Some("application/problem+json"),
                false,
            ),
        ];
        for (name, content_type, accepted) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = content_type {
                headers.insert(CONTENT_TYPE, value.parse().unwrap());
            }
            let result = read_json(&headers, Full::new(Bytes::from_static(b"{}")), 64).await;
            match accepted {
                true => assert!(result.is_ok(), "{name}"),
                false => assert!(
                    matches!(result, Err(ApiError::UnsupportedMediaType)),
                    "{name}"
                ),
            }
        }
    }

    /// A body delivered as the given frames, one per poll.
    struct Frames(VecDeque<Result<Frame<Bytes>, std::io::Error>>);

    impl hyper::body::Body for Frames {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let headers = json_headers(&[("content-length", "65")]);
        // A body that fails if read proves nothing was read.
        let failing = Frames(VecDeque::from([Err(std::io::Error::other("read"))]));
        let result = read_json(&headers, failing, 64).await;
        assert!(matches!(result, Err(ApiError::BodyTooLarge { limit: 64 })));
    }

    #[tokio::test]
    async fn a_streamed_body_is_cut_off_once_it_passes_the_limit() {
        let chunk = || Ok(Frame::data(Bytes::from_static(b"0123456789")));
        let body = Frames((0..10).map(|_| chunk()).collect());
        let result = read_json(&json_headers(&[]), body, 95).await;
        assert!(matches!(result, Err(ApiError::BodyTooLarge { limit: 95 })));
    }

    #[tokio::test]
    async fn a_failing_connection_is_a_read_error() {
        let body = Frames(VecDeque::from([
            Ok(Frame::data(Bytes::from_static(b"{"))),
            Err(std::io::Error::other("reset")),
        ]));
        let result = read_json(&json_headers(&[]), body, 64).await;
        assert!(matches!(result, Err(ApiError::BodyRead(_))));
    }
}
