//! Arbitrary bytes as a guest cookie value, or as a payload under a valid MAC (the first byte
//! picks): opening never panics, and whatever opens seals and opens again unchanged.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static FIXTURE: LazyLock<invariants::Fixture> = LazyLock::new(invariants::Fixture::new);

fuzz_target!(|data: &[u8]| {
    if let Some(value) = invariants::guest_cookie_input(&FIXTURE, data) {
        invariants::check_guest_cookie(&FIXTURE, &value);
    }
});
