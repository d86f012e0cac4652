//! Arbitrary bytes as what a client sends on one connection (the first byte picks how the rest
//! is split): the same requests and bodies however split, each framed one way only, nothing read
//! past a request that ends the connection.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    invariants::check_client_requests(data);
});
