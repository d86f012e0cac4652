//! Validation of `[upstream] guest_forward_headers`: client headers the app needs from guests
//! beyond the built-in allowlist (an AJAX app's `X-CSRF-Token`, say). A name that would let a
//! guest speak as someone else (a credential, an identity claim, a header casegate or the
//! connection controls) is refused, each with its own line.

use http::HeaderName;
use toml::Spanned;

use super::{Validator, is_reserved_header};
use crate::proxy::guest_allowlist::GUEST_REQUEST_HEADERS;
use crate::proxy::hop::{is_client_identity, is_guest_credential};

/// More names than any app needs; a longer list is an allowlist being turned back into a denylist.
const MAX_EXTRA_HEADERS: usize = 32;

impl Validator<'_, '_> {
    pub(super) fn guest_forward_headers(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Option<Vec<HeaderName>> {
        let Some(raw) = raw else {
            return Some(Vec::new());
        };
        if raw.get_ref().len() > MAX_EXTRA_HEADERS {
            self.diag.error(
                raw.span(),
                format_args!(
                    "upstream.guest_forward_headers: at most {MAX_EXTRA_HEADERS} names, not {}",
                    raw.get_ref().len()
                ),
            );
            return None;
        }
        let mut names: Vec<HeaderName> = Vec::with_capacity(raw.get_ref().len());
        let mut valid = true;
        for entry in raw.get_ref() {
            match self.guest_forward_header(entry, &names) {
                Some(name) => names.push(name),
                None => valid = false,
            }
        }
        valid.then_some(names)
    }

    fn guest_forward_header(
        &mut self,
        entry: &Spanned<String>,
        seen: &[HeaderName],
    ) -> Option<HeaderName> {
        let text = entry.get_ref();
        let why = match HeaderName::from_bytes(text.as_bytes()) {
            Err(_) => "is not a valid header name",
            Ok(name) if seen.contains(&name) => "is listed twice (header names ignore case)",
            Ok(name) if GUEST_REQUEST_HEADERS.contains(&name.as_str()) => {
                "is forwarded for guests already; remove it"
            }
            Ok(name) if is_guest_credential(name.as_str()) => {
                "is a credential; a guest acts only through its share (set a fixed value in \
                 [upstream.guest_headers] instead)"
            }
            Ok(name) if is_reserved_header(&name) || is_client_identity(name.as_str()) => {
                "claims an identity or is a header casegate or the connection controls; \
                 a guest may never set it"
            }
            Ok(name) => return Some(name),
        };
        self.diag.error(
            entry.span(),
            format_args!("upstream.guest_forward_headers: {text:?} {why}"),
        );
        None
    }
}
