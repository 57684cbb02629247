//! A small deterministic random number generator.
//!
//! Records are generated from `(seed, resource, index, revision)` whenever they are read, so the
//! same inputs must always give the same values on every platform and in every build. SplitMix64
//! is tiny, fast and has no state beyond one `u64`, which makes it a good fit.

/// SplitMix64 generator seeded from a set of keys.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// Creates a generator whose sequence depends on every key, in order.
    pub fn from_keys(keys: &[u64]) -> Self {
        let mut state = 0x853c_49e6_748f_ea9b;
        for key in keys {
            state = mix(state ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        Rng { state }
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Returns a value in `0..bound`, or 0 when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // The modulo bias is below 2^-40 for the bounds used here, which is irrelevant for
        // test data.
        self.next_u64() % bound
    }

    /// Returns true with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// Returns a value in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks one element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Scrambles 64 bits bijectively with the SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_keys_same_sequence() {
        let mut a = Rng::from_keys(&[1, 2, 3]);
        let mut b = Rng::from_keys(&[1, 2, 3]);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn key_order_matters() {
        let mut a = Rng::from_keys(&[1, 2]);
        let mut b = Rng::from_keys(&[2, 1]);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::from_keys(&[7]);
        for _ in 0..1000 {
            assert!(rng.below(13) < 13);
        }
        assert_eq!(rng.below(0), 0);
    }
}
