//! What a recipient sees: kind, plain-worded HTML pages for people and a small JSON error for API
//! clients, in the recipient's language, from templates an operator can override; and the emails
//! sent to recipients, from the same templates.

mod catalog;
mod engine;
mod lang;
mod messages;
mod negotiate;
mod render;
mod specs;
mod style;
mod templates;

pub use catalog::{Entry, Page};
pub use engine::Vars;
pub use lang::Lang;
pub use negotiate::{PageChoice, wants_json};
pub use render::{render, respond};
pub use templates::Templates;
