//! flagd's `fractional` operator, bucketing v2.
//!
//! `bucket = (murmur3_x86_32(key, seed 0) as u64 * total_weight) >> 32`; the buckets are
//! walked in order and the first whose running weight sum exceeds `bucket` wins. This is
//! integer arithmetic throughout, so every implementation agrees bit for bit. The key is
//! hashed as UTF-8 bytes, as flagd (Go) does.

/// flagd caps each weight and their sum at `i32::MAX` (`math.MaxInt32`).
pub(crate) const MAX_TOTAL_WEIGHT: u64 = i32::MAX as u64;

/// MurmurHash3 x86 32-bit (seed 0) as a resumable state.
///
/// flagd's default bucketing key is `flagKey + targetingKey`. The flag key is known when
/// the flag set is loaded, so its whole 4-byte blocks are hashed once then, and each
/// evaluation only hashes the targeting key. The `mur3` crate hashes a slice just as
/// fast but its streaming hasher cannot be copied, which this needs; the property tests
/// check this implementation against `mur3` on arbitrary input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Murmur3 {
    h: u32,
    /// Pending bytes (fewer than 4), little-endian in the low bits.
    tail: u32,
    tail_len: u32,
    /// Total length mod 2^32, as the reference implementation uses it.
    len: u32,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline]
fn mix_k(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline]
fn feed(h: u32, k: u32) -> u32 {
    (h ^ mix_k(k))
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

impl Murmur3 {
    pub(crate) const fn new() -> Self {
        Self {
            h: 0,
            tail: 0,
            tail_len: 0,
            len: 0,
        }
    }

    /// The state after also hashing `bytes`.
    #[inline]
    pub(crate) fn write(mut self, mut bytes: &[u8]) -> Self {
        self.len = self.len.wrapping_add(bytes.len() as u32);
        while self.tail_len > 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return self;
            };
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
            bytes = rest;
            if self.tail_len == 4 {
                self.h = feed(self.h, self.tail);
                self.tail = 0;
                self.tail_len = 0;
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in blocks.by_ref() {
            let k = block
                .first_chunk::<4>()
                .map_or(0, |c| u32::from_le_bytes(*c));
            self.h = feed(self.h, k);
        }
        for (i, &b) in blocks.remainder().iter().enumerate() {
            self.tail |= u32::from(b) << (8 * i);
        }
        self.tail_len = blocks.remainder().len() as u32;
        self
    }

    /// The hash of everything written.
    #[inline]
    pub(crate) fn finish(self) -> u32 {
        let mut h = self.h;
        if self.tail_len > 0 {
            h ^= mix_k(self.tail);
        }
        h ^= self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

/// MurmurHash3 x86 32-bit with seed 0 over the UTF-8 bytes of the key, as flagd's
/// `fractional` uses it.
pub fn murmur3_x86_32(key: &[u8]) -> u32 {
    Murmur3::new().write(key).finish()
}

/// The bucket a hash falls into, in `0..total`.
pub(crate) fn bucket(hash: u32, total: u64) -> u64 {
    (u64::from(hash) * total) >> 32
}

/// Index of the weight range that contains `bucket(hash, total)`; `None` only when the
/// weights are empty or sum to zero.
pub(crate) fn pick(hash: u32, weights: impl IntoIterator<Item = u64>, total: u64) -> Option<usize> {
    if total == 0 {
        return None;
    }
    let b = bucket(hash, total);
    let mut end = 0u64;
    for (i, w) in weights.into_iter().enumerate() {
        end += w;
        if b < end {
            return Some(i);
        }
    }
    None
}

/// Reads one weight as flagd does: a whole number up to `i32::MAX`; a negative one counts
/// as 0 (flagd clamps it: rollout arithmetic can produce one). `None` (the operator's null)
/// for a fraction, NaN, a weight above `i32::MAX`, or one below `i64::MIN`, which flagd's
/// conversion to `int64` does not keep whole.
pub(crate) fn weight_from_f64(w: f64) -> Option<u64> {
    if w.fract() != 0.0 || w > MAX_TOTAL_WEIGHT as f64 || w < i64::MIN as f64 {
        return None;
    }
    Some(if w < 0.0 { 0 } else { w as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Reference values of MurmurHash3_x86_32, seed 0 (Appleby's SMHasher, and the
        // flagd notes for the UTF-8 case).
        let cases: &[(&[u8], u32)] = &[
            (b"", 0),
            (b"a", 1_009_084_850),
            (b"abc", 3_017_643_002),
            (b"hello", 613_153_351),
            (b"Hello, world!", 3_224_780_355),
            (b"The quick brown fox jumps over the lazy dog", 776_992_547),
            ("héllo".as_bytes(), 3_164_577_896),
        ];
        for &(input, want) in cases {
            assert_eq!(
                murmur3_x86_32(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn resumed_hash_equals_hash_of_concatenation_for_any_split() {
        let text = "fractional-3wayuser-1234567-héllo-and-some-more-bytes";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let resumed = Murmur3::new().write(a).write(b).finish();
            assert_eq!(resumed, murmur3_x86_32(bytes), "split at {split}");
            assert_eq!(resumed, mur3::murmurhash3_x86_32(bytes, 0));
        }
    }

    #[test]
    fn bucket_walk_covers_the_boundaries() {
        // total 100: hash 0 → bucket 0; u32::MAX → bucket 99.
        assert_eq!(pick(0, [50, 50], 100), Some(0));
        assert_eq!(pick(u32::MAX, [50, 50], 100), Some(1));
        // Zero weights are skipped, never chosen.
        assert_eq!(pick(0, [0, 1], 1), Some(1));
        assert_eq!(pick(u32::MAX, [1, 0], 1), Some(0));
        assert_eq!(pick(123, [0, 0], 0), None);
    }

    #[test]
    fn weights_must_be_whole_and_at_most_i32_max_and_negative_ones_count_as_zero() {
        let cases: &[(f64, Option<u64>)] = &[
            (0.0, Some(0)),
            (-0.0, Some(0)),
            (25.0, Some(25)),
            (2_147_483_647.0, Some(2_147_483_647)),
            (2_147_483_648.0, None),
            (-1.0, Some(0)),
            (-50.0, Some(0)),
            (-2_147_483_649.0, Some(0)),
            (-9_223_372_036_854_775_808.0, Some(0)),
            (-1e19, None),
            (f64::NEG_INFINITY, None),
            (1.5, None),
            (-1.5, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
        ];
        for &(w, want) in cases {
            assert_eq!(weight_from_f64(w), want, "{w}");
        }
    }
}
