//! Arbitrary bytes as what an upstream sends for one request (the first byte picks the method
//! and how the rest is split): read the same however split, framed soundly, never more than sent.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    invariants::check_upstream_response(data);
});
