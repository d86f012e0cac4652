//! Comparing secrets (MAC tags, cookie values) in a time that depends on their lengths only, so
//! that how long a refusal takes says nothing of how many leading bytes a forgery got right.

use subtle::ConstantTimeEq;

/// Whether `a` and `b` are equal, in a time that depends on their lengths only. Eight bytes at a
/// time: `subtle`'s byte-wise comparison (an optimisation barrier per byte) cost a cookie's worth
/// of instructions per request.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_tail) = a.as_chunks::<8>();
    let (b_words, b_tail) = b.as_chunks::<8>();
    let mut difference = 0u64;
    for (x, y) in a_words.iter().zip(b_words) {
        difference |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
    }
    for (x, y) in a_tail.iter().zip(b_tail) {
        difference |= u64::from(x ^ y);
    }
    bool::from(difference.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_finds_a_difference_anywhere() {
        let value = b"v2.k1.0123456789abcdefghijklmnopqrstuvwxyz.tag";
        assert!(same_bytes(value, value));
        assert!(!same_bytes(value, &value[..value.len() - 1]));
        for at in 0..value.len() {
            let mut other = *value;
            other[at] ^= 0x01;
            assert!(!same_bytes(value, &other), "a difference at byte {at}");
        }
        assert!(same_bytes(b"", b""));
    }
}
