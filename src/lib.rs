//! casegate: an edge gateway that lets a legacy case application share one case, read-only,
//! through a signed link. See README.md for the request path and a map of the code.

pub mod share;
