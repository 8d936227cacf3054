//! One family's free addresses: a dense bitmap for ranges up to 2^24 addresses, a sparse interval map
//! above that, behind one interface that picks uniformly among free addresses (dense) or from a uniform
//! point onwards (sparse), so picking never slows down as the subnet fills.

use rand::{Rng, RngExt};

use super::dense::DenseSet;
use super::layout::FamilyLayout;
use super::sparse::SparseSet;
use super::strategy::Strategy;

/// Ranges of at most this many usable addresses get a bitmap (2 MiB for a /8 with its tree: 3 MiB).
pub(crate) const DENSE_MAX: u128 = 1 << 24;

#[derive(Clone, Debug)]
pub(crate) struct Space {
    first: u128,
    last: u128,
    allocated: u128,
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    Dense(DenseSet),
    Sparse(SparseSet),
}

impl Space {
    /// A space with nothing allocated; gateway and excluded addresses start unavailable. Ranges of more
    /// than `dense_max` addresses are sparse (tests lower it to exercise the sparse form on small ranges).
    pub(crate) fn new(fam: &FamilyLayout, dense_max: u128) -> Space {
        let (first, last) = (fam.first, fam.last);
        let reserved = fam.reserved();
        let len = last - first + 1;
        let repr = if len <= dense_max.min(DENSE_MAX) {
            let taken: Vec<(u32, u32)> = reserved
                .iter()
                .map(|&(lo, hi)| ((lo - first) as u32, (hi - first) as u32))
                .collect();
            Repr::Dense(DenseSet::new(len as u32, &taken))
        } else {
            Repr::Sparse(SparseSet::new(first, last, &reserved))
        };
        Space {
            first,
            last,
            allocated: 0,
            repr,
        }
    }

    fn in_range(&self, x: u128) -> bool {
        self.first <= x && x <= self.last
    }

    /// True when `x` is in the usable range and neither reserved nor allocated.
    pub(crate) fn is_free(&self, x: u128) -> bool {
        self.in_range(x)
            && match &self.repr {
                Repr::Dense(d) => d.is_free((x - self.first) as u32),
                Repr::Sparse(s) => s.is_free(x),
            }
    }

    /// Allocates `x`; false when it is outside the range or unavailable.
    pub(crate) fn take(&mut self, x: u128) -> bool {
        let done = self.in_range(x)
            && match &mut self.repr {
                Repr::Dense(d) => d.take((x - self.first) as u32),
                Repr::Sparse(s) => s.take(x),
            };
        self.allocated += u128::from(done);
        done
    }

    /// Frees an allocated `x`. The caller must not pass reserved addresses (they would become free).
    pub(crate) fn put(&mut self, x: u128) -> bool {
        let done = self.in_range(x)
            && match &mut self.repr {
                Repr::Dense(d) => d.put((x - self.first) as u32),
                Repr::Sparse(s) => s.put(x),
            };
        self.allocated -= u128::from(done);
        done
    }

    pub(crate) fn allocated(&self) -> u128 {
        self.allocated
    }

    /// Addresses that could still be allocated.
    pub(crate) fn available(&self) -> u128 {
        match &self.repr {
            Repr::Dense(d) => u128::from(d.free_count()),
            Repr::Sparse(s) => s.free_count(),
        }
    }

    /// Picks and allocates a free address inside `ranges` (merged, inside the usable range).
    pub(crate) fn pick<R: Rng + ?Sized>(
        &mut self,
        ranges: &[(u128, u128)],
        strategy: Strategy,
        rng: &mut R,
    ) -> Option<u128> {
        let x = match &self.repr {
            Repr::Dense(d) => pick_dense(d, self.first, ranges, strategy, rng)?,
            Repr::Sparse(s) => pick_sparse(s, ranges, strategy, rng)?,
        };
        self.take(x).then_some(x)
    }

    /// Heap bytes of the free set.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Dense(d) => d.memory_bytes(),
            Repr::Sparse(s) => s.memory_bytes(),
        }
    }
}

/// Uniform over the free addresses of the ranges: count the free ones per range, draw k, find the k-th.
fn pick_dense<R: Rng + ?Sized>(
    d: &DenseSet,
    first: u128,
    ranges: &[(u128, u128)],
    strategy: Strategy,
    rng: &mut R,
) -> Option<u128> {
    let span = |&(lo, hi): &(u128, u128)| {
        let (lo, hi) = ((lo - first) as u32, (hi - first) as u32);
        let base = d.free_before(lo);
        (base, d.free_before(hi + 1) - base)
    };
    let total: u32 = ranges.iter().map(|r| span(r).1).sum();
    if total == 0 {
        return None;
    }
    let mut k = match strategy {
        Strategy::Random => rng.random_range(0..total),
        Strategy::Sequential => 0,
    };
    for r in ranges {
        let (base, count) = span(r);
        if k < count {
            return d.nth_free(base + k).map(|i| first + u128::from(i));
        }
        k -= count;
    }
    None
}

/// From a uniform point of the ranges, the next free address (wrapping round the ranges).
fn pick_sparse<R: Rng + ?Sized>(
    s: &SparseSet,
    ranges: &[(u128, u128)],
    strategy: Strategy,
    rng: &mut R,
) -> Option<u128> {
    if strategy == Strategy::Sequential {
        return ranges.iter().find_map(|&(lo, hi)| s.next_free(lo, hi));
    }
    let total = super::intervals::total(ranges);
    if total == 0 {
        return None;
    }
    let mut p = rng.random_range(0..total);
    let mut start = 0;
    while p > ranges[start].1 - ranges[start].0 {
        p -= ranges[start].1 - ranges[start].0 + 1;
        start += 1;
    }
    let (lo, hi) = ranges[start];
    let x = lo + p;
    s.next_free(x, hi)
        .or_else(|| {
            ranges[start + 1..]
                .iter()
                .chain(&ranges[..start])
                .find_map(|&(a, b)| s.next_free(a, b))
        })
        .or_else(|| s.next_free(lo, x.checked_sub(1)?))
}

#[cfg(test)]
mod tests {
    use super::super::family::Family;
    use super::super::layout::SubnetLayout;
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::HashSet;

    fn space(cidr: &str, dense_max: u128) -> Space {
        let l = SubnetLayout::parse("s", None, cidr, None, &["10.0.0.10..10.0.0.19"]).unwrap();
        let f = if cidr.contains(':') {
            Family::V6
        } else {
            Family::V4
        };
        Space::new(l.family(f).unwrap(), dense_max)
    }

    #[test]
    fn dense_and_sparse_hand_out_everything_once() {
        for dense_max in [DENSE_MAX, 0] {
            for strategy in [Strategy::Random, Strategy::Sequential] {
                let mut s = space("10.0.0.0/24", dense_max);
                let mut rng = StdRng::seed_from_u64(7);
                let whole = [(s.first, s.last)];
                let mut seen = HashSet::new();
                while let Some(x) = s.pick(&whole, strategy, &mut rng) {
                    assert!(seen.insert(x));
                    assert!(!(0x0a00000a..=0x0a000013).contains(&x) && x != 0x0a000001);
                }
                assert_eq!(seen.len(), 254 - 11);
                assert_eq!((s.allocated(), s.available()), (243, 0));
            }
        }
    }

    #[test]
    fn sequential_is_lowest_free_and_ranges_are_respected() {
        for dense_max in [DENSE_MAX, 0] {
            let mut s = space("10.0.0.0/24", dense_max);
            let mut rng = StdRng::seed_from_u64(1);
            let whole = [(s.first, s.last)];
            assert_eq!(
                s.pick(&whole, Strategy::Sequential, &mut rng),
                Some(0x0a000002)
            );
            assert!(s.take(0x0a000003));
            assert_eq!(
                s.pick(&whole, Strategy::Sequential, &mut rng),
                Some(0x0a000004)
            );
            let pool = [(0x0a000005, 0x0a000006), (0x0a000010, 0x0a000020)];
            let mut got: Vec<u128> = (0..3)
                .filter_map(|_| s.pick(&pool, Strategy::Random, &mut rng))
                .collect();
            got.sort();
            // 10.0.0.16..19 are excluded, so the pool has 5,6 and 20..32.
            assert!(got.iter().all(|&x| x == 5 + 0x0a000000
                || x == 6 + 0x0a000000
                || (0x0a000014..=0x0a000020).contains(&x)));
            let small = [(0x0a000005, 0x0a000006)];
            while s.pick(&small, Strategy::Random, &mut rng).is_some() {}
            assert!(!s.is_free(0x0a000005) && !s.is_free(0x0a000006));
            assert_eq!(s.pick(&small, Strategy::Random, &mut rng), None);
            assert!(s.put(0x0a000006));
            assert_eq!(s.pick(&small, Strategy::Random, &mut rng), Some(0x0a000006));
        }
    }

    #[test]
    fn random_dense_is_roughly_uniform() {
        let mut s = space("10.0.1.0/29", DENSE_MAX); // 6 usable, gateway reserved: 5 free
        let mut rng = StdRng::seed_from_u64(3);
        let whole = [(s.first, s.last)];
        let mut hits = [0u32; 8];
        for _ in 0..5000 {
            let x = s.pick(&whole, Strategy::Random, &mut rng).unwrap();
            hits[(x & 7) as usize] += 1;
            assert!(s.put(x));
        }
        for &h in &hits[2..7] {
            assert!((800..1200).contains(&h), "{hits:?}");
        }
        assert_eq!(hits[0] + hits[1] + hits[7], 0);
    }
}
