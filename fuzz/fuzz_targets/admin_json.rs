//! Arbitrary bytes as the body of `POST /v1/shares` and, as text, as an admin request line
//! (`METHOD /path?query`): nothing panics, and every refusal is a 4xx JSON document.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    invariants::check_admin_body(data);
    if let Ok(line) = std::str::from_utf8(data) {
        invariants::check_admin_request_line(line);
    }
});
