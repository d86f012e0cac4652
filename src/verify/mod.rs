//! Verified shares: before a guest of a `verify_email` scope sees the case, they prove they read
//! the link's mailbox by typing a one-time code sent there.
//!
//! - [`code`]: making a 6-digit code and the MAC under which alone it is stored;
//! - [`csrf`]: the token the verification forms carry, bound to the guest's session;
//! - [`limits`]: the settings (`[verify]`) and what a refusal tells the guest;
//! - [`client`]: the key per-address counters are kept under (the client address the gateway
//!   resolved: the TCP peer, or what a trusted proxy says it forwarded);
//! - [`store`]: the [`CodeStore`] trait; [`MemoryCodeStore`] keeps it in the process,
//!   [`RedisCodeStore`] shares it between replicas;
//! - [`mask`]: the address as the landing page shows it (`j***@clinic.example`).
//!
//! The HTTP routes and the hook on the request path live in `gateway::verify_routes`.

pub mod client;
pub mod code;
pub mod csrf;
mod derive;
pub mod limits;
pub mod mask;
mod memory_store;
mod redis_store;
pub mod store;

pub use client::ClientKey;
pub use code::{Code, CodeMac};
pub use limits::{Limited, VerifySettings};
pub use memory_store::MemoryCodeStore;
pub use redis_store::RedisCodeStore;
pub use store::{
    Attempt, AttemptRefusal, CodeStatus, CodeStore, CodeStoreUnavailable, InviteReservation,
    PendingCode,
};

/// The key ring the module tests of codes and form tokens sign with: keys `k1` and `k2`, each its
/// own, `active` signing.
#[cfg(test)]
pub(crate) fn test_ring(active: &str) -> crate::share::keys::KeyRing {
    let keys = ["k1", "k2"]
        .iter()
        .map(|kid| {
            (
                (*kid).to_owned(),
                crate::share::Secret::from_bytes(vec![kid.as_bytes()[1]; 32]),
            )
        })
        .collect();
    crate::share::keys::KeyRing::new(active, keys).expect("test ring")
}
