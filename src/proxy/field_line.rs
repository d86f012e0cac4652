//! One `name: value` line of an HTTP/1 head, as casegate writes them: to the upstream in a
//! guest's request head, to a client in a response head.

/// Appends `name: value` and CRLF to `out`. The caller vouches for the bytes: a token for the
/// name, a value without CR, LF or NUL.
pub fn write_field_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
