//! Arbitrary bytes as a request target, judged under every scope of config/casegate.toml for
//! one guest session: whatever is allowed is canonical, bound to the session's case, matched by
//! an allow rule and by no deny rule.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static FIXTURE: LazyLock<invariants::Fixture> = LazyLock::new(invariants::Fixture::new);

fuzz_target!(|data: &[u8]| {
    invariants::check_request_target(&FIXTURE, data);
});
