//! Deterministic seed derivation.
//!
//! A [`Chaos`](crate::Chaos) has one seed. Every random choice below it (which
//! connections a toxic affects, latency jitter, slicer cut points) comes from a
//! seed derived from it by name and position, never from the clock, so the
//! same scenario with the same seed makes the same choices.

/// SplitMix64's finaliser: a fast, well-mixed 64-bit bijection.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives a child seed from a parent seed and a discriminator.
pub(crate) fn mix(parent: u64, child: u64) -> u64 {
    splitmix64(parent ^ splitmix64(child))
}

/// FNV-1a over a string: stable across runs and platforms (unlike `std`'s
/// `DefaultHasher`, whose output is not guaranteed to be).
pub(crate) fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Maps a 64-bit value to a float uniform in `[0, 1)`.
pub(crate) fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_stays_in_range() {
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }

    #[test]
    fn derivation_is_stable_and_spreads() {
        assert_eq!(hash_str("a"), 0xAF63_DC4C_8601_EC8C);
        assert_ne!(mix(1, 2), mix(2, 1));
        let below_half = (0..1000u64).filter(|i| unit(mix(7, *i)) < 0.5).count();
        assert!((400..600).contains(&below_half), "{below_half}");
    }
}
