//! What the gateway answers a request with: the response, and for a forwarded one the upstream's
//! fields passed on as they came, which the HTTP/1 writer writes from the upstream's own head.

use http::Response;

use crate::proxy::Body;
use crate::proxy::upstream_h1::PassedFields;

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
