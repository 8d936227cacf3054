//! The free set of a range of up to 2^24 positions: a bitmap plus a Fenwick tree of free counts per 64-bit
//! word, so "the k-th free position" costs O(log n) however full the set is. A /16 takes 12 KiB.

/// Positions `0..len`; a set bit means unavailable (reserved or allocated).
#[derive(Clone, Debug)]
pub(crate) struct DenseSet {
    words: Vec<u64>,
    /// Fenwick tree (1-based layout stored 0-based) over the free count of each word.
    tree: Vec<u32>,
    free: u32,
}

impl DenseSet {
    /// A set of `len` positions with the merged intervals `taken` already unavailable.
    pub(crate) fn new(len: u32, taken: &[(u32, u32)]) -> DenseSet {
        let n = len.div_ceil(64) as usize;
        let mut words = vec![0u64; n];
        if !len.is_multiple_of(64) {
            // Bits past the end are never free.
            words[n - 1] = !0u64 << (len % 64);
        }
        for &(lo, hi) in taken {
            set_bits(&mut words, lo, hi);
        }
        let mut tree: Vec<u32> = words.iter().map(|w| w.count_zeros()).collect();
        let free = tree.iter().sum();
        for i in 1..=n {
            let j = i + lowbit(i);
            if j <= n {
                tree[j - 1] += tree[i - 1];
            }
        }
        DenseSet { words, tree, free }
    }

    pub(crate) fn free_count(&self) -> u32 {
        self.free
    }

    pub(crate) fn is_free(&self, i: u32) -> bool {
        self.words[(i / 64) as usize] & (1 << (i % 64)) == 0
    }

    /// Marks `i` unavailable; false when it already was.
    pub(crate) fn take(&mut self, i: u32) -> bool {
        let (w, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.words[w] & bit != 0 {
            return false;
        }
        self.words[w] |= bit;
        self.free -= 1;
        let mut k = w + 1;
        while k <= self.tree.len() {
            self.tree[k - 1] -= 1;
            k += lowbit(k);
        }
        true
    }

    /// Marks `i` free; false when it already was.
    pub(crate) fn put(&mut self, i: u32) -> bool {
        let (w, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.words[w] & bit == 0 {
            return false;
        }
        self.words[w] &= !bit;
        self.free += 1;
        let mut k = w + 1;
        while k <= self.tree.len() {
            self.tree[k - 1] += 1;
            k += lowbit(k);
        }
        true
    }

    /// How many free positions lie below `i` (`i <= len`).
    pub(crate) fn free_before(&self, i: u32) -> u32 {
        let (w, bits) = ((i / 64) as usize, i % 64);
        let mut sum = 0;
        let mut k = w;
        while k > 0 {
            sum += self.tree[k - 1];
            k -= lowbit(k);
        }
        if bits > 0 {
            sum += (!self.words[w] & ((1u64 << bits) - 1)).count_ones();
        }
        sum
    }

    /// The free position with exactly `k` free positions below it, if there are more than `k`.
    pub(crate) fn nth_free(&self, k: u32) -> Option<u32> {
        if k >= self.free {
            return None;
        }
        let n = self.tree.len();
        let (mut pos, mut rem) = (0usize, k);
        let mut step = if n == 0 { 0 } else { 1usize << n.ilog2() };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next - 1] <= rem {
                pos = next;
                rem -= self.tree[next - 1];
            }
            step >>= 1;
        }
        // `pos` words hold `k - rem` free positions; the answer is the rem-th free bit of word `pos`.
        let mut free_bits = !self.words[pos];
        for _ in 0..rem {
            free_bits &= free_bits - 1;
        }
        Some(pos as u32 * 64 + free_bits.trailing_zeros())
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.words.capacity() * 8 + self.tree.capacity() * 4
    }
}

fn lowbit(i: usize) -> usize {
    i & i.wrapping_neg()
}

fn set_bits(words: &mut [u64], lo: u32, hi: u32) {
    let (wl, wh) = ((lo / 64) as usize, (hi / 64) as usize);
    let low_mask = !0u64 << (lo % 64);
    let high_mask = !0u64 >> (63 - hi % 64);
    if wl == wh {
        words[wl] |= low_mask & high_mask;
        return;
    }
    words[wl] |= low_mask;
    for w in &mut words[wl + 1..wh] {
        *w = !0;
    }
    words[wh] |= high_mask;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_free(set: &DenseSet, len: u32) -> Vec<u32> {
        (0..len).filter(|&i| set.is_free(i)).collect()
    }

    #[test]
    fn nth_free_and_free_before_match_a_scan() {
        for len in [1u32, 63, 64, 65, 200, 1000] {
            let taken: Vec<(u32, u32)> = if len > 70 {
                vec![(0, 2), (60, 68), (len - 1, len - 1)]
            } else {
                vec![(0, 0)]
            };
            let mut s = DenseSet::new(len, &taken);
            for i in (0..len).step_by(7) {
                s.take(i);
            }
            let free = model_free(&s, len);
            assert_eq!(s.free_count() as usize, free.len());
            for (k, &pos) in free.iter().enumerate() {
                assert_eq!(s.nth_free(k as u32), Some(pos), "len {len} k {k}");
                assert_eq!(s.free_before(pos) as usize, k);
            }
            assert_eq!(s.nth_free(free.len() as u32), None);
            assert_eq!(s.free_before(len) as usize, free.len());
        }
    }

    #[test]
    fn take_and_put() {
        let mut s = DenseSet::new(130, &[(5, 9)]);
        assert_eq!(s.free_count(), 125);
        assert!(!s.is_free(5) && !s.is_free(9) && s.is_free(10));
        assert!(s.take(100));
        assert!(!s.take(100));
        assert_eq!(s.free_count(), 124);
        assert!(s.put(100));
        assert!(!s.put(100));
        assert_eq!(s.nth_free(0), Some(0));
        assert_eq!(s.nth_free(5), Some(10));
        for i in 0..130 {
            s.take(i);
        }
        assert_eq!((s.free_count(), s.nth_free(0)), (0, None));
        assert_eq!(s.memory_bytes(), 3 * 8 + 3 * 4);
    }

    #[test]
    fn slash_16_fits_in_12_kib() {
        let s = DenseSet::new(65534, &[]);
        assert_eq!(s.memory_bytes(), 1024 * 8 + 1024 * 4);
        assert_eq!(s.nth_free(65533), Some(65533));
    }
}
