//! The free set of a range too large for a bitmap (IPv6 /64, IPv4 wider than /8): only the unavailable
//! addresses are stored, as maximal intervals, so memory grows with allocations, not with the range.
//! Because intervals are maximal, the first free address at or after any point is one lookup away.

use std::collections::BTreeMap;

/// Bytes one interval costs in a `BTreeMap<u128, u128>`: 32 bytes of key and value, plus node overhead
/// with nodes about two-thirds full.
const BYTES_PER_INTERVAL: usize = 48;

#[derive(Clone, Debug)]
pub(crate) struct SparseSet {
    /// start → end (inclusive) of unavailable intervals; never overlapping, never adjacent.
    taken: BTreeMap<u128, u128>,
    taken_count: u128,
    size: u128,
}

impl SparseSet {
    /// A set over `lo..=hi` with the merged intervals `taken` (inside that range) already unavailable.
    pub(crate) fn new(lo: u128, hi: u128, taken: &[(u128, u128)]) -> SparseSet {
        SparseSet {
            taken: taken.iter().copied().collect(),
            taken_count: super::intervals::total(taken),
            size: hi - lo + 1,
        }
    }

    pub(crate) fn free_count(&self) -> u128 {
        self.size - self.taken_count
    }

    /// The interval holding `x`, if `x` is unavailable.
    fn holding(&self, x: u128) -> Option<(u128, u128)> {
        self.taken
            .range(..=x)
            .next_back()
            .filter(|&(_, &end)| end >= x)
            .map(|(&s, &e)| (s, e))
    }

    pub(crate) fn is_free(&self, x: u128) -> bool {
        self.holding(x).is_none()
    }

    /// Marks `x` unavailable; false when it already was.
    pub(crate) fn take(&mut self, x: u128) -> bool {
        if !self.is_free(x) {
            return false;
        }
        let left = x
            .checked_sub(1)
            .and_then(|p| self.holding(p))
            .map(|(s, _)| s);
        let right_end = x.checked_add(1).and_then(|n| self.taken.remove(&n));
        let start = left.unwrap_or(x);
        self.taken.insert(start, right_end.unwrap_or(x));
        self.taken_count += 1;
        true
    }

    /// Marks `x` free; false when it already was.
    pub(crate) fn put(&mut self, x: u128) -> bool {
        let Some((s, e)) = self.holding(x) else {
            return false;
        };
        self.taken.remove(&s);
        if s < x {
            self.taken.insert(s, x - 1);
        }
        if x < e {
            self.taken.insert(x + 1, e);
        }
        self.taken_count -= 1;
        true
    }

    /// The first free value in `from..=to`.
    pub(crate) fn next_free(&self, from: u128, to: u128) -> Option<u128> {
        if from > to {
            return None;
        }
        let candidate = match self.holding(from) {
            Some((_, end)) => end.checked_add(1)?,
            None => from,
        };
        (candidate <= to).then_some(candidate)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.taken.len() * BYTES_PER_INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_split() {
        let mut s = SparseSet::new(0, 99, &[(10, 12)]);
        assert_eq!(s.free_count(), 97);
        assert!(s.take(13));
        assert!(s.take(9));
        assert!(!s.take(11));
        assert_eq!(s.taken.len(), 1);
        assert_eq!(s.next_free(9, 99), Some(14));
        assert!(s.put(11));
        assert!(!s.put(11));
        assert_eq!(s.taken.len(), 2);
        assert_eq!(s.next_free(0, 99), Some(0));
        assert_eq!(s.next_free(9, 99), Some(11));
        assert_eq!(s.next_free(12, 13), None);
        assert_eq!(s.free_count(), 96);
        assert!(s.put(9) && s.put(10) && s.put(12) && s.put(13));
        assert!(s.taken.is_empty());
        assert_eq!(s.memory_bytes(), 0);
    }

    #[test]
    fn whole_u128_edges() {
        let mut s = SparseSet::new(1, u128::MAX - 1, &[]);
        assert_eq!(s.free_count(), u128::MAX - 1);
        assert!(s.take(u128::MAX - 1));
        assert_eq!(s.next_free(u128::MAX - 1, u128::MAX - 1), None);
        assert!(s.take(1));
        assert_eq!(s.next_free(1, 5), Some(2));
        assert_eq!(s.free_count(), u128::MAX - 3);
    }
}
