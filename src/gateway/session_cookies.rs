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
use memchr::memmem;
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

/// `[session] cookie`, the name every session cookie starts with, and a searcher for it built
/// once: a request's cookies are read by finding it (see [`OurCookies`]).
#[derive(Debug, Clone)]
pub struct CookieBase {
    name: String,
    finder: memmem::Finder<'static>,
}

impl CookieBase {
    pub fn new(name: &str) -> CookieBase {
        CookieBase {
            name: name.to_owned(),
            finder: memmem::Finder::new(name.as_bytes()).into_owned(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

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
fn is_session_cookie_name(name: &[u8], base: &[u8]) -> bool {
    match name.strip_prefix(base) {
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
    pub fn read(
        headers: &'h HeaderMap,
        base: &CookieBase,
    ) -> Result<SessionCookies<'h>, GatewayError> {
        let empty = SessionCookie {
            name: "",
            value: b"",
        };
        let mut cookies = SessionCookies {
            in_place: [empty; IN_PLACE],
            len: 0,
            spilled: Vec::new(),
        };
        // Two loops rather than `our_cookies`'s `flat_map`, whose state machine cost 190
        // instructions a request here (callgrind).
        for line in headers.get_all(header::COOKIE) {
            for (name, value) in OurCookies::in_line(line.as_bytes(), base) {
                // SAFETY: `OurCookies` yields only names `is_session_cookie_name` accepts: the
                // base (a `&str`), alone or followed by `.` and ASCII hex digits: UTF-8
                // throughout. `from_utf8` checked it again, byte by byte, for about 130
                // instructions a request.
                let name = unsafe { std::str::from_utf8_unchecked(name) };
                if cookies.len == READ_AT_MOST {
                    return Err(GatewayError::DuplicateSession);
                }
                cookies.push(SessionCookie { name, value });
            }
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
pub fn session_cookie_names(headers: &HeaderMap, base: &CookieBase) -> Vec<String> {
    let mut names: Vec<String> = our_cookies(headers, base)
        .filter_map(|(name, _)| std::str::from_utf8(name).ok().map(str::to_owned))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Whether the request carries any cookie of ours, valid or not, without opening it.
pub fn carries_session_cookie(headers: &HeaderMap, base: &CookieBase) -> bool {
    our_cookies(headers, base).next().is_some()
}

/// The `name=value` pairs of all `Cookie` headers whose name is ours (see
/// [`is_session_cookie_name`]), both trimmed, in the order they were sent.
fn our_cookies<'h>(
    headers: &'h HeaderMap,
    base: &CookieBase,
) -> impl Iterator<Item = (&'h [u8], &'h [u8])> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(move |line| OurCookies::in_line(line.as_bytes(), base))
}

/// Our cookies in one `Cookie` line. The line is `;`-separated pieces, each `name=value` (one
/// without `=` is no cookie) with whitespace around both; it holds every cookie of the app's
/// domain, and ours are the ones a few hundred bytes long. So rather than split the line into
/// pieces, the base's name is searched for (`memmem`, a word at a time) and kept where it starts
/// a piece; from there the name is checked in place and the value's end found with `memchr`.
/// Splitting at every `;` and then each piece at its `=` took two `memchr`s a cookie, ours or
/// not, 60 instructions each (callgrind). Read as bytes: checking all of the header is text only
/// to find ours was a thousand instructions per request.
struct OurCookies<'h, 'b> {
    line: &'h [u8],
    /// Where the search goes on: no piece starts between a found name and the next `;`.
    from: usize,
    finder: &'b memmem::Finder<'static>,
}

impl<'h, 'b> OurCookies<'h, 'b> {
    fn in_line(line: &'h [u8], base: &'b CookieBase) -> OurCookies<'h, 'b> {
        OurCookies {
            line,
            from: 0,
            finder: &base.finder,
        }
    }
}

impl<'h> Iterator for OurCookies<'h, '_> {
    type Item = (&'h [u8], &'h [u8]);

    fn next(&mut self) -> Option<(&'h [u8], &'h [u8])> {
        let line = self.line;
        loop {
            let found = self.from + self.finder.find(line.get(self.from..)?)?;
            // The end of the piece the base was found in: its `;`, or the line's end.
            let piece_end =
                memchr::memchr(b';', &line[found..]).map_or(line.len(), |at| found + at);
            self.from = piece_end + 1;
            let starts_piece = matches!(line[..found].trim_ascii_end().last(), None | Some(b';'));
            if !starts_piece {
                continue;
            }
            let piece = &line[found..piece_end];
            let Some(equals) = memchr::memchr(b'=', piece) else {
                continue;
            };
            let name = piece[..equals].trim_ascii_end();
            if is_session_cookie_name(name, self.finder.needle()) {
                return Some((name, piece[equals + 1..].trim_ascii()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::strategy::Strategy;

    fn with_cookies(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::COOKIE, HeaderValue::from_bytes(line).unwrap());
        }
        headers
    }

    fn base() -> CookieBase {
        CookieBase::new("cg_guest")
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
        assert!(is_session_cookie_name(a.as_bytes(), b"cg_guest"));
        assert!(
            is_session_cookie_name(b"cg_guest", b"cg_guest"),
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
                !is_session_cookie_name(not_ours, b"cg_guest"),
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
        let cookies = SessionCookies::read(&headers, &base()).unwrap();
        assert_eq!(
            names(&cookies),
            [
                ("cg_guest.0000abcd", &b"v2.a"[..]),
                ("cg_guest", &b"v2.k.p.t"[..])
            ]
        );
        assert!(carries_session_cookie(&headers, &base()));
        assert_eq!(
            session_cookie_names(&headers, &base()),
            ["cg_guest", "cg_guest.0000abcd"]
        );
    }

    #[test]
    fn a_cookie_whose_name_only_contains_ours_is_not_ours() {
        let headers = with_cookies(&[b"xcg_guest=a; cg_guestx=b; cg_guest"]);
        let cookies = SessionCookies::read(&headers, &base()).unwrap();
        assert!(cookies.is_empty());
        assert!(!carries_session_cookie(&headers, &base()));
    }

    #[test]
    fn two_of_one_name_are_both_read_even_on_separate_lines() {
        let headers = with_cookies(&[b"cg_guest.0000abcd=a; x=1", b"cg_guest.0000abcd=b"]);
        let cookies = SessionCookies::read(&headers, &base()).unwrap();
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
        let cookies = SessionCookies::read(&headers, &base()).unwrap();
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
            SessionCookies::read(&headers, &base()).unwrap().all().len(),
            READ_AT_MOST
        );
        let headers = with_cookies(&[line.join("; ").as_bytes()]);
        assert!(matches!(
            SessionCookies::read(&headers, &base()),
            Err(GatewayError::DuplicateSession)
        ));
    }

    /// Our cookies as splitting the line at every `;`, then each piece at its first `=`, reads them.
    fn split_and_filtered(line: &[u8], base: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        line.split(|&byte| byte == b';')
            .filter_map(|piece| {
                let piece = piece.trim_ascii();
                let equals = piece.iter().position(|&byte| byte == b'=')?;
                Some((
                    piece[..equals].trim_ascii(),
                    piece[equals + 1..].trim_ascii(),
                ))
            })
            .filter(|(name, _)| is_session_cookie_name(name, base))
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect()
    }

    fn found_in(line: &[u8], base: &CookieBase) -> Vec<(Vec<u8>, Vec<u8>)> {
        OurCookies::in_line(line, base)
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect()
    }

    #[test]
    fn ours_are_those_splitting_the_line_at_every_semicolon_finds() {
        let base = base();
        for line in [
            &b""[..],
            b";",
            b"cg_guest",
            b"cg_guest=",
            b";;cg_guest=1;",
            b"a=cg_guest=1; cg_guest=2",
            b"a=x cg_guest=1; cg_guest.0000abcd=2",
            b" cg_guest = 1 ;cg_guest;=cg_guest; cg_guest=",
            b"cg_guestcg_guest=1;cg_guest\t=\tv\t",
            b"cg_guest x=1; cg_guest.0000ABCD=2; cg_guest.0000abcd=3=4",
            b"x=caf\xc3\xa9;cg_guest=y",
        ] {
            assert_eq!(
                found_in(line, &base),
                split_and_filtered(line, b"cg_guest"),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest::proptest! {
        /// Lines made of the pieces that matter (our names, near misses, separators, spaces)
        /// and any bytes at all.
        #[test]
        fn any_line_is_read_as_splitting_it_reads_it(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        &b"cg_guest"[..],
                        b"cg_guest.0000abcd",
                        b"cg_guest.0000abc",
                        b"cg_gues",
                        b";",
                        b"=",
                        b" ",
                        b"\t",
                        b"v2.k.p",
                    ]).prop_map(<[u8]>::to_vec),
                    proptest::collection::vec(proptest::num::u8::ANY, 1..4),
                ],
                0..16,
            )
        ) {
            let line = pieces.concat();
            proptest::prop_assert_eq!(
                found_in(&line, &base()),
                split_and_filtered(&line, b"cg_guest")
            );
        }
    }

    #[test]
    fn another_cookies_bytes_do_not_hide_ours() {
        let headers = with_cookies(&[b"app=caf\xc3\xa9\xff; cg_guest=v2.k.p.t"]);
        let cookies = SessionCookies::read(&headers, &base()).unwrap();
        assert_eq!(names(&cookies), [("cg_guest", &b"v2.k.p.t"[..])]);
    }
}
