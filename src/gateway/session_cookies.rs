//! Which of a request's cookies are guest sessions, and what each one is called.
//!
//! A browser holds one session per case, so a consultant sent three cases can open all three:
//! the session for case C lives in the cookie `{cookie}.{tag}`, tag being the first eight hex
//! digits of SHA-256(C). A link to another case adds a cookie; a newer link to the same case
//! replaces the older one's (same name). `{cookie}` alone, the name every session had before,
//! is still read until those cookies expire, and never set.

use std::fmt::Write;

use http::HeaderMap;
use http::header;
use sha2::{Digest, Sha256};

use super::error::GatewayError;

/// How many sessions a link exchange leaves in the browser, the new one included: more would
/// make every request's `Cookie` header a few hundred bytes longer each. Past it, the sessions
/// that expire first are dropped.
pub const KEPT_SESSIONS: usize = 8;

/// How many of our cookies one request may carry: more than a browser of ours keeps (plus one of
/// the old name) means someone else wrote them, and the request is refused.
const READ_AT_MOST: usize = KEPT_SESSIONS + 4;

const TAG_HEX_DIGITS: usize = 8;

/// The cookie that holds the session for `case`.
pub fn session_cookie_name(base: &str, case: &str) -> String {
    let digest = Sha256::digest(case.as_bytes());
    let mut name = String::with_capacity(base.len() + 1 + TAG_HEX_DIGITS);
    name.push_str(base);
    name.push('.');
    for byte in &digest[..TAG_HEX_DIGITS / 2] {
        // Writing to a String cannot fail.
        let _ = write!(name, "{byte:02x}");
    }
    name
}

/// Whether a cookie called `name` is one of ours: `base` itself, or `base.` and the tag.
fn is_session_cookie_name(name: &[u8], base: &str) -> bool {
    match name.strip_prefix(base.as_bytes()) {
        Some([]) => true,
        Some([b'.', tag @ ..]) => {
            tag.len() == TAG_HEX_DIGITS
                && tag
                    .iter()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        }
        _ => false,
    }
}

/// One of our cookies as the request sent it.
#[derive(Clone, Copy, Debug)]
pub struct SessionCookie<'h> {
    /// ASCII: only names [`is_session_cookie_name`] accepts are kept.
    pub name: &'h str,
    pub value: &'h [u8],
}

/// How many of a request's cookies of ours are kept in place. One is the rule (a browser sends
/// the session of each case it was sent, and most are sent one); more go to the heap.
const IN_PLACE: usize = 2;

/// Our cookies in a request, in the order they were sent. Up to [`IN_PLACE`] of them cost no
/// allocation, however many the request carries of other cookies; the struct stays small, since
/// it is returned and moved by value (room for all [`READ_AT_MOST`] in place made it 392 bytes,
/// copied twice a request).
pub struct SessionCookies<'h> {
    in_place: [SessionCookie<'h>; IN_PLACE],
    len: usize,
    /// All of them, once there are more than [`IN_PLACE`].
    spilled: Vec<SessionCookie<'h>>,
}

impl<'h> SessionCookies<'h> {
    /// Our cookies among every `Cookie` header; more than a browser of ours would hold are
    /// refused. Two of one name (one set for another path, or planted by a sibling domain) are
    /// both read: the one that does not open is passed over, and two that open are refused
    /// (`authenticate.rs`).
    pub fn read(headers: &'h HeaderMap, base: &str) -> Result<SessionCookies<'h>, GatewayError> {
        let empty = SessionCookie {
            name: "",
            value: b"",
        };
        let mut cookies = SessionCookies {
            in_place: [empty; IN_PLACE],
            len: 0,
            spilled: Vec::new(),
        };
        for (name, value) in cookie_pairs(headers) {
            if !is_session_cookie_name(name, base) {
                continue;
            }
            // SAFETY: `is_session_cookie_name` accepted only `base` (a `&str`), alone or followed
            // by `.` and ASCII hex digits: UTF-8 throughout. `from_utf8` checked it again, byte by
            // byte, for about 130 instructions a request.
            let name = unsafe { std::str::from_utf8_unchecked(name) };
            if cookies.len == READ_AT_MOST {
                return Err(GatewayError::DuplicateSession);
            }
            cookies.push(SessionCookie { name, value });
        }
        Ok(cookies)
    }

    fn push(&mut self, cookie: SessionCookie<'h>) {
        if self.len < IN_PLACE {
            self.in_place[self.len] = cookie;
        } else {
            if self.spilled.is_empty() {
                self.spilled.reserve(READ_AT_MOST);
                self.spilled.extend_from_slice(&self.in_place);
            }
            self.spilled.push(cookie);
        }
        self.len += 1;
    }

    pub fn all(&self) -> &[SessionCookie<'h>] {
        if self.len <= IN_PLACE {
            &self.in_place[..self.len]
        } else {
            &self.spilled
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The names of our cookies in a request, even when [`SessionCookies::read`] refuses them: the
/// cookies a refusal asks the browser to drop.
pub fn session_cookie_names(headers: &HeaderMap, base: &str) -> Vec<String> {
    let mut names: Vec<String> = cookie_pairs(headers)
        .filter(|(name, _)| is_session_cookie_name(name, base))
        .filter_map(|(name, _)| std::str::from_utf8(name).ok().map(str::to_owned))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Whether the request carries any cookie of ours, valid or not, without opening it.
pub fn carries_session_cookie(headers: &HeaderMap, base: &str) -> bool {
    cookie_pairs(headers).any(|(name, _)| is_session_cookie_name(name, base))
}

/// Every `name=value` pair across all `Cookie` headers, both trimmed. Read as bytes: the header
/// holds every cookie of the app's domain, and checking all of it is text only to find ours was
/// a thousand instructions per request; `memchr` finds the separators in a session's few hundred
/// bytes of base64 a word at a time rather than a byte at a time.
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|line| Pairs {
            rest: Some(line.as_bytes()),
        })
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let equals = memchr::memchr(b'=', pair)?;
            Some((pair[..equals].trim_ascii(), pair[equals + 1..].trim_ascii()))
        })
}

/// The `;`-separated pieces of one `Cookie` line.
struct Pairs<'h> {
    rest: Option<&'h [u8]>,
}

impl<'h> Iterator for Pairs<'h> {
    type Item = &'h [u8];

    fn next(&mut self) -> Option<&'h [u8]> {
        let rest = self.rest?;
        match memchr::memchr(b';', rest) {
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_cookies(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::COOKIE, HeaderValue::from_bytes(line).unwrap());
        }
        headers
    }

    fn names<'h>(cookies: &SessionCookies<'h>) -> Vec<(&'h str, &'h [u8])> {
        cookies.all().iter().map(|c| (c.name, c.value)).collect()
    }

    #[test]
    fn each_case_has_its_own_name_of_fixed_shape() {
        let a = session_cookie_name("cg_guest", "42");
        let b = session_cookie_name("cg_guest", "43");
        assert_ne!(a, b);
        assert_eq!(a, session_cookie_name("cg_guest", "42"), "stable");
        assert_eq!(a.len(), "cg_guest.".len() + TAG_HEX_DIGITS);
        assert!(is_session_cookie_name(a.as_bytes(), "cg_guest"));
        assert!(
            is_session_cookie_name(b"cg_guest", "cg_guest"),
            "the old name"
        );
        for not_ours in [
            &b"cg_guest."[..],
            b"cg_guest.0123456",
            b"cg_guest.012345678",
            b"cg_guest.0123456G",
            b"cg_guest.0123456A",
            b"cg_guest-01234567",
            b"xcg_guest",
            b"cg_guestx",
        ] {
            assert!(
                !is_session_cookie_name(not_ours, "cg_guest"),
                "{}",
                String::from_utf8_lossy(not_ours)
            );
        }
    }

    #[test]
    fn ours_are_found_among_the_apps_cookies_in_any_line() {
        let headers = with_cookies(&[
            b"theme=dark; cg_guest.0000abcd=v2.a",
            b" cg_guest = v2.k.p.t ;x=1",
        ]);
        let cookies = SessionCookies::read(&headers, "cg_guest").unwrap();
        assert_eq!(
            names(&cookies),
            [
                ("cg_guest.0000abcd", &b"v2.a"[..]),
                ("cg_guest", &b"v2.k.p.t"[..])
            ]
        );
        assert!(carries_session_cookie(&headers, "cg_guest"));
        assert_eq!(
            session_cookie_names(&headers, "cg_guest"),
            ["cg_guest", "cg_guest.0000abcd"]
        );
    }

    #[test]
    fn a_cookie_whose_name_only_contains_ours_is_not_ours() {
        let headers = with_cookies(&[b"xcg_guest=a; cg_guestx=b; cg_guest"]);
        let cookies = SessionCookies::read(&headers, "cg_guest").unwrap();
        assert!(cookies.is_empty());
        assert!(!carries_session_cookie(&headers, "cg_guest"));
    }

    #[test]
    fn two_of_one_name_are_both_read_even_on_separate_lines() {
        let headers = with_cookies(&[b"cg_guest.0000abcd=a; x=1", b"cg_guest.0000abcd=b"]);
        let cookies = SessionCookies::read(&headers, "cg_guest").unwrap();
        assert_eq!(
            names(&cookies),
            [
                ("cg_guest.0000abcd", &b"a"[..]),
                ("cg_guest.0000abcd", &b"b"[..])
            ]
        );
    }

    #[test]
    fn past_the_ones_kept_in_place_all_are_read_in_order() {
        let line: Vec<String> = (0..=IN_PLACE)
            .map(|n| format!("cg_guest.{n:08x}=v{n}"))
            .collect();
        let headers = with_cookies(&[line.join("; ").as_bytes()]);
        let cookies = SessionCookies::read(&headers, "cg_guest").unwrap();
        let read: Vec<(String, String)> = names(&cookies)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), String::from_utf8_lossy(value).into()))
            .collect();
        let sent: Vec<(String, String)> = (0..=IN_PLACE)
            .map(|n| (format!("cg_guest.{n:08x}"), format!("v{n}")))
            .collect();
        assert_eq!(read, sent);
    }

    #[test]
    fn more_than_a_browser_of_ours_keeps_are_refused() {
        let line: Vec<String> = (0..=READ_AT_MOST)
            .map(|n| format!("cg_guest.{n:08x}=v"))
            .collect();
        let headers = with_cookies(&[line[..READ_AT_MOST].join("; ").as_bytes()]);
        assert_eq!(
            SessionCookies::read(&headers, "cg_guest")
                .unwrap()
                .all()
                .len(),
            READ_AT_MOST
        );
        let headers = with_cookies(&[line.join("; ").as_bytes()]);
        assert!(matches!(
            SessionCookies::read(&headers, "cg_guest"),
            Err(GatewayError::DuplicateSession)
        ));
    }

    #[test]
    fn pieces_are_those_of_splitting_at_every_semicolon() {
        for line in [
            &b""[..],
            b";",
            b";;a=1;",
            b"a=1; b=2",
            b" a = 1 ;b=;=c; d",
            b"x=caf\xc3\xa9;y",
        ] {
            let ours: Vec<&[u8]> = Pairs { rest: Some(line) }.collect();
            let split: Vec<&[u8]> = line.split(|&byte| byte == b';').collect();
            assert_eq!(ours, split, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn another_cookies_bytes_do_not_hide_ours() {
        let headers = with_cookies(&[b"app=caf\xc3\xa9\xff; cg_guest=v2.k.p.t"]);
        let cookies = SessionCookies::read(&headers, "cg_guest").unwrap();
        assert_eq!(names(&cookies), [("cg_guest", &b"v2.k.p.t"[..])]);
    }
}
