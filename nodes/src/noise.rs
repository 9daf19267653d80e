//! Reproducible noise for the tests that feed decoders garbage (xorshift64: no `rand`,
//! the same bytes on every run).

/// The next `len` bytes of the xorshift64 stream in `state` (which must not be 0).
pub fn bytes(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}
