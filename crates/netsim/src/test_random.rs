//! A tiny deterministic generator for unit tests that compare a structure with a plain model
//! over many random steps; the simulator itself draws only from its named ChaCha streams.

/// Numbers below the bound each call is given, from xorshift64 seeded with `seed` (not zero).
pub(crate) fn below_generator(seed: u64) -> impl FnMut(u64) -> u64 {
    assert_ne!(seed, 0, "xorshift64 never leaves zero");
    let mut state = seed;
    move |below| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    }
}
