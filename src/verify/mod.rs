//! Verified shares: before a guest of a `verify_email` scope sees the case, they prove they read
//! the link's mailbox by typing a one-time code sent there.
//!
//! - [`code`]: making a 6-digit code and the MAC under which alone it is stored;
//! - [`csrf`]: the token the verification forms carry, bound to the guest's session;
//! - [`limits`]: the settings (`[verify]`) and what a refusal tells the guest;
//! - [`client`]: the key per-address counters are kept under (the TCP peer, never a header);
//! - [`store`]: the [`CodeStore`] trait and [`MemoryCodeStore`], its in-process implementation;
//! - [`mask`]: the address as the landing page shows it (`j***@clinic.example`).
//!
//! The HTTP routes and the hook on the request path live in `gateway::verify_routes`.

pub mod client;
pub mod code;
pub mod csrf;
mod derive;
pub mod limits;
pub mod mask;
pub mod store;

pub use client::ClientKey;
pub use code::{Code, CodeMac};
pub use limits::{Limited, VerifySettings};
pub use store::{AttemptRefusal, CodeStatus, CodeStore, MemoryCodeStore, PendingCode};
