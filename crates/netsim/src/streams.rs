//! Named random streams derived from one root seed.
//!
//! Each stream is a ChaCha8 generator (version-stable, unlike `StdRng`) seeded from the root seed
//! and the stream's name, so adding draws to one stream (a new fault) never shifts another (the
//! network's delays).

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::outcome::mix64;

/// One named stream.
#[derive(Clone)]
pub struct Stream {
    rng: ChaCha8Rng,
}

impl Stream {
    /// How far the stream has been drawn, in 32-bit words: equal positions of one stream, equal
    /// streams.
    pub(crate) fn position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    pub fn new(root_seed: u64, name: &str) -> Self {
        let mut seed = mix64(root_seed);
        for byte in name.bytes() {
            seed = mix64(seed ^ u64::from(byte));
        }
        Stream {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift: no modulo bias worth the name at these sizes.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Exponentially distributed with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Standard normal, by Box-Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a: Vec<u64> = (0..4)
            .map(|_| Stream::new(7, "network").next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Stream::new(7, "network").next_u64(),
            Stream::new(7, "workload").next_u64()
        );
        assert_ne!(
            Stream::new(7, "network").next_u64(),
            Stream::new(8, "network").next_u64()
        );
    }

    #[test]
    fn draws_stay_in_range() {
        let mut s = Stream::new(1, "t");
        for _ in 0..1_000 {
            assert!(s.below(5) < 5);
            let u = s.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
