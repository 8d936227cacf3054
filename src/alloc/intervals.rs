//! Sorted, disjoint, non-adjacent lists of inclusive `u128` intervals: the shape excludes, reserved sets and
//! pool ranges are normalized to before the free sets use them.

/// Sorts and merges overlapping or adjacent intervals.
pub(crate) fn merge(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The parts of merged intervals inside `[lo, hi]`.
pub(crate) fn clamp(v: &[(u128, u128)], lo: u128, hi: u128) -> Vec<(u128, u128)> {
    v.iter()
        .filter(|&&(a, b)| b >= lo && a <= hi)
        .map(|&(a, b)| (a.max(lo), b.min(hi)))
        .collect()
}

/// True when `x` lies in one of the merged intervals.
pub(crate) fn contains(v: &[(u128, u128)], x: u128) -> bool {
    let i = v.partition_point(|&(lo, _)| lo <= x);
    i > 0 && v[i - 1].1 >= x
}

/// The parts of merged intervals `v` not covered by merged intervals `cut`.
pub(crate) fn subtract(v: &[(u128, u128)], cut: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::with_capacity(v.len());
    for &(lo, hi) in v {
        let mut start = lo;
        let mut open = true;
        for &(a, b) in cut.iter().filter(|&&(a, b)| b >= lo && a <= hi) {
            if a > start {
                out.push((start, a - 1));
            }
            match b.checked_add(1) {
                Some(next) if next <= hi => start = start.max(next),
                _ => {
                    open = false;
                    break;
                }
            }
        }
        if open && start <= hi {
            out.push((start, hi));
        }
    }
    out
}

/// How many values the merged intervals hold; they must fit in a `u128` (any intervals inside one
/// usable range do, since no range holds all 2^128 values).
pub(crate) fn total(v: &[(u128, u128)]) -> u128 {
    v.iter()
        .fold(0u128, |acc, &(lo, hi)| acc.saturating_add(hi - lo + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_cuts_holes_and_ends() {
        let v = [(10, 20), (30, 40)];
        assert_eq!(subtract(&v, &[]), v.to_vec());
        assert_eq!(
            subtract(&v, &[(12, 13), (20, 31)]),
            vec![(10, 11), (14, 19), (32, 40)]
        );
        assert_eq!(subtract(&v, &[(0, 100)]), vec![]);
        assert_eq!(
            subtract(&v, &[(10, 10), (40, 40)]),
            vec![(11, 20), (30, 39)]
        );
        assert_eq!(subtract(&[(0, u128::MAX)], &[(5, u128::MAX)]), vec![(0, 4)]);
    }

    #[test]
    fn merges_overlaps_and_neighbours() {
        assert_eq!(
            merge(vec![(10, 12), (1, 3), (4, 5), (11, 20), (30, 30)]),
            vec![(1, 5), (10, 20), (30, 30)]
        );
        assert_eq!(merge(vec![(0, u128::MAX), (5, 6)]), vec![(0, u128::MAX)]);
        assert_eq!(merge(vec![]), vec![]);
    }

    #[test]
    fn clamps_contains_and_totals() {
        let v = merge(vec![(1, 5), (10, 20)]);
        assert_eq!(clamp(&v, 3, 12), vec![(3, 5), (10, 12)]);
        assert_eq!(clamp(&v, 6, 9), vec![]);
        assert!(contains(&v, 1) && contains(&v, 5) && contains(&v, 15));
        assert!(!contains(&v, 0) && !contains(&v, 6) && !contains(&v, 21));
        assert_eq!(total(&v), 16);
        assert_eq!(total(&[(1, u128::MAX - 1)]), u128::MAX - 1);
    }
}
