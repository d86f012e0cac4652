//! What the gateway answers a request with: the response, whose body the connection logs
//! ([`LoggedBody`], handed the request's record there) and, for a forwarded one, carries the
//! upstream's fields passed on as they came, which the HTTP/1 writer writes from the upstream's
//! own head.

use http::Response;

use crate::access_log::LoggedBody;
use crate::proxy::Body;

/// Travels boxed, made once, from `forward` (or the page that answers instead) up through
/// `Gateway::handle` and the connection to the HTTP/1 writer: by value, each of those layers
/// copied its couple of hundred bytes, and the connection made it anew to put the record in.
pub type Answer = Response<LoggedBody>;

/// A response of the gateway's own (a page, a redirect), boxed as every answer travels.
pub fn boxed_answer(response: Response<Body>) -> Box<Answer> {
    Box::new(response.map(|body| LoggedBody::new(body, None, None)))
}
