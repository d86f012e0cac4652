//! The upstream as the proxy sees it: where to send requests, what it calls itself, and the extra
//! headers guests carry to it.

use std::sync::Arc;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Uri};

use super::pool::Destination;

/// The resolved upstream origin plus the guest headers configured for it.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// `Host` sent upstream: the upstream's own authority, so that the legacy app builds URLs on its
    /// own origin, which [`crate::proxy::response`] then rewrites to the public one.
    pub host: HeaderValue,
    /// Headers added to every guest request, e.g. a read-only service login. Values may be secret.
    pub guest_headers: Vec<(HeaderName, HeaderValue)>,
    /// Client headers forwarded for guests beyond [`super::guest_allowlist::GUEST_REQUEST_HEADERS`]
    /// (`[upstream] guest_forward_headers`).
    pub guest_forward_headers: Vec<HeaderName>,
    /// [`Upstream::destination`], worked out once: parsing the authority again for every
    /// request cost about 400 instructions each time.
    destination: Destination,
}

/// What makes a URL unusable as the upstream. Validation refuses these first; seeing one is a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    NoScheme,
    NoHost,
    HostNotAHeaderValue,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamError::NoScheme => "upstream url has no scheme",
            UpstreamError::NoHost => "upstream url has no host",
            UpstreamError::HostNotAHeaderValue => "upstream host is not a valid header value",
        })
    }
}

impl std::error::Error for UpstreamError {}

impl Upstream {
    /// Builds the upstream from a validated `http://host[:port]` URI.
    pub fn new(
        url: &Uri,
        guest_headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, UpstreamError> {
        let scheme = url.scheme().cloned().ok_or(UpstreamError::NoScheme)?;
        let authority = url.authority().cloned().ok_or(UpstreamError::NoHost)?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| UpstreamError::HostNotAHeaderValue)?;
        let connect_host = authority.host();
        let connect_host: Arc<str> = connect_host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(connect_host)
            .into();
        let connect_port = authority.port_u16().or(default_port(&scheme)).unwrap_or(80);
        Ok(Upstream {
            scheme,
            authority,
            host,
            guest_headers,
            guest_forward_headers: Vec::new(),
            destination: Destination {
                host: connect_host,
                port: connect_port,
            },
        })
    }

    /// Forwards these client headers for guests too, beyond the built-in allowlist.
    pub fn forwarding(mut self, guest_forward_headers: Vec<HeaderName>) -> Self {
        self.guest_forward_headers = guest_forward_headers;
        self
    }

    /// The host (without IPv6 brackets) and port to open a TCP connection to.
    pub fn connect_address(&self) -> (&str, u16) {
        (&self.destination.host, self.destination.port)
    }

    /// The same, as the upstream pool names it.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// Whether an absolute URL points at this upstream's origin (same scheme, host and port).
    pub fn is_own_origin(&self, url: &Uri) -> bool {
        url.scheme() == Some(&self.scheme)
            && url.authority().is_some_and(|authority| {
                authority.host().eq_ignore_ascii_case(self.authority.host())
                    && authority.port_u16().or(default_port(&self.scheme))
                        == self.authority.port_u16().or(default_port(&self.scheme))
            })
    }
}

fn default_port(scheme: &Scheme) -> Option<u16> {
    if *scheme == Scheme::HTTP {
        Some(80)
    } else if *scheme == Scheme::HTTPS {
        Some(443)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_address_is_the_host_without_brackets_and_the_port_or_its_default() {
        let cases = [
            ("http://127.0.0.1:8080", ("127.0.0.1", 8080)),
            ("http://app.internal", ("app.internal", 80)),
            ("https://app.internal", ("app.internal", 443)),
            ("http://[::1]:9000", ("::1", 9000)),
            ("https://[2001:db8::7]", ("2001:db8::7", 443)),
        ];
        for (url, expected) in cases {
            let upstream = Upstream::new(&Uri::from_static(url), vec![]).unwrap();
            assert_eq!(upstream.connect_address(), expected, "{url}");
        }
    }

    #[test]
    fn own_origin_is_recognised_with_and_without_default_port() {
        let upstream = Upstream::new(&Uri::from_static("http://App.internal:80"), vec![]).unwrap();
        let cases = [
            ("http://app.internal/cases/42", true),
            ("http://APP.internal:80/cases/42", true),
            ("http://app.internal:8080/cases/42", false),
            ("https://app.internal/cases/42", false),
            ("http://other.internal/cases/42", false),
        ];
        for (url, expected) in cases {
            assert_eq!(
                upstream.is_own_origin(&Uri::from_static(url)),
                expected,
                "{url}"
            );
        }
    }
}
