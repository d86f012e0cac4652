//! What a recipient sees when something is wrong: kind, plain-worded HTML pages for people and
//! a small JSON error for API clients, both free of anything the request carried.

mod catalog;
mod negotiate;
mod render;

pub use catalog::{Entry, Page};
pub use negotiate::wants_json;
pub use render::render;
