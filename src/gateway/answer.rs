//! What the gateway answers a request with: the response, and for a forwarded one the upstream's
//! fields passed on as they came, which the HTTP/1 writer writes from the upstream's own head.

use http::Response;

use crate::proxy::Body;
use crate::proxy::upstream_h1::PassedFields;

/// Travels boxed from `forward` (or the page that answers instead) up through `Gateway::handle`
/// to the connection: by value, each of those layers copied its couple of hundred bytes.
pub struct Answer {
    pub response: Response<Body>,
    /// `None` for the gateway's own pages, and for an HTTP/2 client, whose answer hyper writes
    /// from the map alone (`forward` moved the fields there).
    pub passed: Option<PassedFields>,
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Answer {
        Answer {
            response,
            passed: None,
        }
    }
}

impl Answer {
    /// A response of the gateway's own (a page, a redirect), boxed as every answer travels.
    pub fn boxed(response: Response<Body>) -> Box<Answer> {
        Box::new(Answer::from(response))
    }
}
