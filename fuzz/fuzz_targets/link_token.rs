//! Arbitrary bytes as a link token, as claims signed under k1, or as a header and claims signed
//! under the retired k0 (the first byte picks): verifying never panics, and whatever verifies
//! re-mints to the same claims and fails with any signature bit flipped.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static FIXTURE: LazyLock<invariants::Fixture> = LazyLock::new(invariants::Fixture::new);

fuzz_target!(|data: &[u8]| {
    if let Some(token) = invariants::link_token_input(data) {
        invariants::check_link_token(&FIXTURE, &token);
    }
});
