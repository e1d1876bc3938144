//! Fast exact-match lookup of string keys (flag keys, variant names, context fields).
//!
//! Ordered comparisons of strings go through `memcmp`, which dominated evaluation time
//! when flags were found by binary search (about 10 ns per comparison on the reference
//! machine). Flags are therefore found through a small open-addressing hash index, and
//! short lists (variants, small context objects) by a linear scan that compares lengths
//! before bytes.

use serde_json::{Map, Value};

/// Lists up to this long are scanned linearly.
const SCAN_LIMIT: usize = 12;

/// A multiplicative hash over 8-byte words (the FxHash construction): quick for the
/// short keys flags have, and deterministic (no random seed), which suits a core that
/// must not read randomness. Flag keys come from the operator, not from requests, so
/// hash flooding is not a concern.
fn hash(key: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in words.by_ref() {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // Shifting the bytes in (rather than copying them into a buffer and reading a
        // word back) avoids a store-forwarding stall.
        let w = rest
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    h
}

/// Slot for a hash in a table of `1 << bits` slots: the top bits, which the
/// multiplication mixes best.
fn slot(h: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (h >> (64 - bits)) as usize
    }
}

/// The bytes of a slice of at most 8 bytes as one little-endian word.
#[inline]
fn word(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// The first and the last 8 bytes of a slice of 8 to 16 bytes (they overlap below 16).
#[inline]
fn ends(b: &[u8]) -> (u64, u64) {
    let first = b.first_chunk::<8>().map_or(0, |c| u64::from_le_bytes(*c));
    let last = b.last_chunk::<8>().map_or(0, |c| u64::from_le_bytes(*c));
    (first, last)
}

/// String equality without a `memcmp` call for short strings (the library call costs
/// more than comparing a flag key or a context field name word by word).
#[inline]
pub(crate) fn fast_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0..=7 => word(a) == word(b),
        8..=16 => ends(a) == ends(b),
        _ => a == b,
    }
}

/// Maps keys to their position in a slice of unique keys.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    /// Position + 1 of the key hashing here, 0 for an empty slot; length a power of two.
    slots: Box<[u32]>,
}

impl KeyIndex {
    /// Builds an index over unique `keys`.
    pub(crate) fn new<'k>(keys: impl ExactSizeIterator<Item = &'k str>) -> Self {
        let n = keys.len();
        let size = (n * 2).max(4).next_power_of_two();
        let bits = size.trailing_zeros();
        let mut slots = vec![0u32; size];
        let mask = size - 1;
        for (pos, key) in keys.enumerate() {
            let mut i = slot(hash(key.as_bytes()), bits);
            // The table is at most half full, so an empty slot is always found.
            for _ in 0..size {
                match slots.get_mut(i) {
                    Some(slot) if *slot == 0 => {
                        *slot = u32::try_from(pos + 1).unwrap_or(u32::MAX);
                        break;
                    }
                    _ => i = (i + 1) & mask,
                }
            }
        }
        Self {
            slots: slots.into(),
        }
    }

    /// Position of `key`, confirmed with `key_at` (which returns the key stored at a
    /// position).
    pub(crate) fn find<'k>(
        &self,
        key: &str,
        key_at: impl Fn(usize) -> Option<&'k str>,
    ) -> Option<usize> {
        let size = self.slots.len();
        if size == 0 {
            return None;
        }
        let mask = size - 1;
        let mut i = slot(hash(key.as_bytes()), size.trailing_zeros());
        for _ in 0..size {
            let slot = *self.slots.get(i)?;
            if slot == 0 {
                return None;
            }
            let pos = slot as usize - 1;
            if key_at(pos).is_some_and(|k| fast_eq(k, key)) {
                return Some(pos);
            }
            i = (i + 1) & mask;
        }
        None
    }
}

/// Looks a field up in a JSON object, scanning small objects linearly.
pub(crate) fn get_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() <= SCAN_LIMIT {
        map.iter().find(|(k, _)| fast_eq(k, key)).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// Position of `key` in a slice sorted by key: linear scan when short, binary search
/// otherwise.
pub(crate) fn find_sorted<T>(items: &[T], key: &str, key_of: impl Fn(&T) -> &str) -> Option<usize> {
    if items.len() <= SCAN_LIMIT {
        items.iter().position(|t| fast_eq(key_of(t), key))
    } else {
        items.binary_search_by(|t| key_of(t).cmp(key)).ok()
    }
}

/// Sorts `items` by a string key (byte order), stably. Input that is already in order —
/// anything read from a JSON object, whose keys serde_json keeps sorted — is left as it is
/// after one pass. Every sort in the crate goes through the one non-generic [`sort_keyed`],
/// so the wasm builds hold one sort implementation instead of one per element type.
pub(crate) fn sort_by_str_key<T>(items: &mut Vec<T>, key_of: impl Fn(&T) -> &str) {
    if items.is_sorted_by(|a, b| key_of(a) <= key_of(b)) {
        return;
    }
    let mut keyed: Vec<(&str, usize)> = items.iter().map(&key_of).zip(0..).collect();
    sort_keyed(&mut keyed);
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take)),
    );
}

fn sort_keyed(keyed: &mut [(&str, usize)]) {
    keyed.sort_by(|a, b| a.0.cmp(b.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<String> = (0..300).map(|i| format!("flag-{i}")).collect();
        let index = KeyIndex::new(keys.iter().map(String::as_str));
        let key_at = |i: usize| keys.get(i).map(String::as_str);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.find(k, key_at), Some(i));
        }
        for miss in ["", "flag-300", "flag-", "flag-1x", "x".repeat(40).as_str()] {
            assert_eq!(index.find(miss, key_at), None, "{miss}");
        }
        assert_eq!(KeyIndex::default().find("a", key_at), None);
    }

    #[test]
    fn fast_eq_agrees_with_eq() {
        let words = [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "targetingKey",
            "targetingKez",
            &"x".repeat(40),
            &"x".repeat(41),
        ];
        for a in words {
            for b in words {
                assert_eq!(fast_eq(a, b), a == b, "{a} {b}");
            }
        }
    }

    #[test]
    fn sorting_by_key_is_stable_and_keeps_every_item() {
        let mut items = vec![("b", 1), ("a", 2), ("c", 3), ("a", 4), ("b", 5)];
        sort_by_str_key(&mut items, |t| t.0);
        assert_eq!(items, [("a", 2), ("a", 4), ("b", 1), ("b", 5), ("c", 3)]);
        let mut sorted = vec!["x".to_owned(), "y".to_owned()];
        sort_by_str_key(&mut sorted, String::as_str);
        assert_eq!(sorted, ["x", "y"]);
        let mut empty: Vec<&str> = Vec::new();
        sort_by_str_key(&mut empty, |s| s);
        assert!(empty.is_empty());
    }

    #[test]
    fn sorted_lookup_agrees_for_short_and_long_lists() {
        for n in [0, 3, 12, 13, 50] {
            let mut keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            keys.sort();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(find_sorted(&keys, k, String::as_str), Some(i));
            }
            assert_eq!(find_sorted(&keys, "zz", String::as_str), None);
        }
    }
}
