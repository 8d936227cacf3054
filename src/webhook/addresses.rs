//! Address arithmetic the validators need: addresses as ordered numbers, the first gap in a cover, and
//! whether an address could ever be given to a Pod.

use std::net::IpAddr;

use crate::alloc::{Allocator, Family, IpRange, SubnetLayout};

/// An allocator of `layout` with nothing allocated, kept sparse so that building it costs nothing for a
/// large subnet: its `check` says whether an address could ever be given to a Pod, with the same message Pod
/// admission would give.
pub(crate) fn static_checker(layout: &SubnetLayout) -> Allocator {
    Allocator::with_dense_max(layout, 0)
}

/// An address as a number, ordered within its family.
pub(crate) fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of a number (the inverse of [`num`]).
pub(crate) fn addr(family: Family, x: u128) -> IpAddr {
    IpRange::from_bounds(family, x, x).start()
}

/// The lowest number in `lo..=hi` that no interval of `covers` contains.
pub(crate) fn first_uncovered(lo: u128, hi: u128, covers: &[(u128, u128)]) -> Option<u128> {
    let mut sorted = covers.to_vec();
    sorted.sort_unstable();
    let mut cur = lo;
    for (a, b) in sorted {
        if b < cur {
            continue;
        }
        if a > cur {
            break;
        }
        if b >= hi {
            return None;
        }
        cur = b + 1;
    }
    (cur <= hi).then_some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncovered() {
        assert_eq!(first_uncovered(5, 10, &[]), Some(5));
        assert_eq!(first_uncovered(5, 10, &[(0, 6), (7, 7)]), Some(8));
        assert_eq!(first_uncovered(5, 10, &[(8, 12), (5, 7)]), None);
        assert_eq!(first_uncovered(5, 10, &[(6, 12)]), Some(5));
        assert_eq!(first_uncovered(0, u128::MAX, &[(0, u128::MAX)]), None);
        assert_eq!(first_uncovered(0, u128::MAX, &[(1, u128::MAX)]), Some(0));
    }
}
