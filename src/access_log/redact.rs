//! A link token somewhere other than under `[links] prefix` (`/S/<token>` typed by hand, a token
//! pasted after a case path) is refused, but its path would still be logged, and the token in it
//! is a working credential until it expires. A path segment that looks like one is logged as
//! [`REDACTED`] instead.

use std::borrow::Cow;

/// What the log shows in place of a segment that looks like a token.
pub const REDACTED: &str = "[token]";

/// `path` with every segment that looks like a JWS compact token (a base64url JSON header,
/// which always starts `eyJ`, then a `.`) replaced by [`REDACTED`].
pub fn redact_tokens(path: &str) -> Cow<'_, str> {
    // Nearly every path has no "eyJ" at all: no allocation, one scan.
    if !path.contains("eyJ") {
        return Cow::Borrowed(path);
    }
    let redacted: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if looks_like_token(segment) {
                REDACTED
            } else {
                segment
            }
        })
        .collect();
    Cow::Owned(redacted.join("/"))
}

fn looks_like_token(segment: &str) -> bool {
    segment.starts_with("eyJ") && segment.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shaped_segments_are_redacted_and_nothing_else() {
        let cases = [
            ("/cases/42/video", "/cases/42/video"),
            (
                "/S/eyJhbGciOiJIUzI1NiJ9.eyJjYXNlIjoiNDIifQ.c2ln",
                "/S/[token]",
            ),
            (
                "/cases/42/eyJhbGciOiJIUzI1NiJ9.e30.sig/more",
                "/cases/42/[token]/more",
            ),
            ("/eyJhbGciOiJIUzI1NiJ9.e30.sig", "/[token]"),
            // Not a token: no dot, or "eyJ" not at the start of its segment.
            ("/files/eyJournal", "/files/eyJournal"),
            ("/files/keyJ.v1", "/files/keyJ.v1"),
        ];
        for (path, logged) in cases {
            assert_eq!(redact_tokens(path), logged, "{path}");
        }
    }
}
