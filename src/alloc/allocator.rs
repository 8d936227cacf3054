//! A subnet's allocation state: which addresses are taken, and the operations the webhook performs on it
//! (reserve a requested address, pick a free one, release), with single- and dual-stack forms.

use std::net::IpAddr;

use rand::Rng;

use super::error::AllocError;
use super::family::{Family, to_u128};
use super::intervals;
use super::layout::{FamilyLayout, SubnetLayout};
use super::pair::IpPair;
use super::range::{IpRange, show_ranges};
use super::space::{DENSE_MAX, Space};
use super::strategy::Strategy;

/// Address usage per family, for Subnet status. Counts are `u128` because an IPv6 subnet wider than /64
/// holds more than `u64::MAX` addresses; a /64 and narrower fits `u64` (2^64 − 3 available at most), so a
/// status type may use `u64` and saturate. "available" excludes the gateway, excluded, network and broadcast
/// addresses and those in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    pub v4_using: u128,
    pub v4_available: u128,
    pub v6_using: u128,
    pub v6_available: u128,
}

/// The allocation state of one subnet.
#[derive(Clone, Debug)]
pub struct Allocator {
    layout: SubnetLayout,
    v4: Option<Space>,
    v6: Option<Space>,
}

impl Allocator {
    /// An allocator with nothing allocated.
    pub fn new(layout: &SubnetLayout) -> Allocator {
        Allocator::with_dense_max(layout, DENSE_MAX)
    }

    /// As `new`, with ranges above `dense_max` addresses kept sparse (tests use 0 to check both forms).
    pub(crate) fn with_dense_max(layout: &SubnetLayout, dense_max: u128) -> Allocator {
        let space = |f| layout.family(f).map(|fam| Space::new(fam, dense_max));
        Allocator {
            layout: layout.clone(),
            v4: space(Family::V4),
            v6: space(Family::V6),
        }
    }

    pub fn layout(&self) -> &SubnetLayout {
        &self.layout
    }

    fn space(&self, family: Family) -> Option<&Space> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    fn space_mut(&mut self, family: Family) -> Option<&mut Space> {
        match family {
            Family::V4 => self.v4.as_mut(),
            Family::V6 => self.v6.as_mut(),
        }
    }

    /// Everything that makes `ip` unassignable regardless of usage, in the order a user would fix it.
    fn validate(&self, ip: IpAddr) -> Result<u128, AllocError> {
        let subnet = || self.layout.describe();
        let Some(fam) = self
            .layout
            .family(Family::of(ip))
            .filter(|f| f.net.contains(&ip))
        else {
            return Err(AllocError::Outside {
                ip,
                subnet: subnet(),
            });
        };
        let x = to_u128(ip);
        if let Some(what) = fam.unusable_name(x) {
            return Err(AllocError::NetworkOrBroadcast {
                ip,
                what,
                subnet: subnet(),
            });
        }
        if x == fam.gateway {
            return Err(AllocError::Gateway {
                ip,
                subnet: subnet(),
            });
        }
        if let Some(entry) = fam.exclude_entry(x) {
            return Err(AllocError::Excluded {
                ip,
                subnet: subnet(),
                entry: entry.to_string(),
            });
        }
        Ok(x)
    }

    /// Whether `ip` could be reserved now, without reserving it.
    pub fn check(&self, ip: IpAddr) -> Result<(), AllocError> {
        let x = self.validate(ip)?;
        match self.space(Family::of(ip)) {
            Some(space) if space.is_free(x) => Ok(()),
            _ => Err(self.in_use(ip)),
        }
    }

    /// Takes a requested address (a fixed IP, or a lease found at start-up).
    pub fn reserve(&mut self, ip: IpAddr) -> Result<(), AllocError> {
        let x = self.validate(ip)?;
        if self.space_mut(Family::of(ip)).is_some_and(|s| s.take(x)) {
            Ok(())
        } else {
            Err(self.in_use(ip))
        }
    }

    /// Frees an allocated address; false when it was not allocated (or is never allocatable).
    pub fn release(&mut self, ip: IpAddr) -> bool {
        let Ok(x) = self.validate(ip) else {
            return false;
        };
        self.space_mut(Family::of(ip))
            .is_some_and(|space| space.put(x))
    }

    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.validate(ip).is_ok_and(|x| {
            self.space(Family::of(ip))
                .is_some_and(|space| !space.is_free(x))
        })
    }

    fn in_use(&self, ip: IpAddr) -> AllocError {
        AllocError::InUse {
            ip,
            subnet: self.layout.describe(),
        }
    }

    fn family_parts(&mut self, family: Family) -> Result<(&FamilyLayout, &mut Space), AllocError> {
        let fam = self.layout.family(family);
        let space = match family {
            Family::V4 => self.v4.as_mut(),
            Family::V6 => self.v6.as_mut(),
        };
        match (fam, space) {
            (Some(fam), Some(space)) => Ok((fam, space)),
            _ => Err(AllocError::NoFamily {
                family,
                subnet: self.layout.describe(),
            }),
        }
    }

    /// Picks and takes a free address of `family`.
    pub fn pick<R: Rng + ?Sized>(
        &mut self,
        family: Family,
        strategy: Strategy,
        rng: &mut R,
    ) -> Result<IpAddr, AllocError> {
        self.pick_avoiding(family, &[], strategy, rng)
    }

    /// Picks and takes a free address of `family` outside `avoid` (the addresses IPPools keep for the Pods
    /// naming them, and their gateways).
    pub fn pick_avoiding<R: Rng + ?Sized>(
        &mut self,
        family: Family,
        avoid: &[IpRange],
        strategy: Strategy,
        rng: &mut R,
    ) -> Result<IpAddr, AllocError> {
        let cut = bounds_of(avoid, family);
        let (fam, space) = self.family_parts(family)?;
        let allowed = intervals::subtract(&[(fam.first, fam.last)], &cut);
        if let Some(x) = space.pick(&allowed, strategy, rng) {
            return Ok(fam.ip(x));
        }
        let (using, available) = (space.allocated(), space.available());
        let pooled = intervals::total(&intervals::subtract(
            &intervals::clamp(&cut, fam.first, fam.last),
            &fam.reserved(),
        ));
        let subnet = self.layout.describe();
        Err(if available > 0 && !cut.is_empty() {
            AllocError::ExhaustedOutsidePools {
                family,
                subnet,
                using,
                pooled,
                total: using + available,
            }
        } else {
            AllocError::Exhausted {
                family,
                subnet,
                using,
                total: using + available,
            }
        })
    }

    /// Picks and takes a free address of `family` inside `ranges` (an IPPool's ranges; other families'
    /// ranges are ignored). Random picks are uniform among the free addresses of the ranges.
    pub fn pick_in<R: Rng + ?Sized>(
        &mut self,
        ranges: &[IpRange],
        family: Family,
        strategy: Strategy,
        rng: &mut R,
    ) -> Result<IpAddr, AllocError> {
        self.pick_in_avoiding(ranges, &[], family, strategy, rng)
    }

    /// As [`Self::pick_in`], never choosing an address of `avoid` (an IPPool's gateway inside its ranges).
    pub fn pick_in_avoiding<R: Rng + ?Sized>(
        &mut self,
        ranges: &[IpRange],
        avoid: &[IpRange],
        family: Family,
        strategy: Strategy,
        rng: &mut R,
    ) -> Result<IpAddr, AllocError> {
        let subnet = self.layout.describe();
        let cut = bounds_of(avoid, family);
        let (fam, space) = self.family_parts(family)?;
        let wanted = bounds_of(ranges, family);
        let inside = intervals::subtract(&intervals::clamp(&wanted, fam.first, fam.last), &cut);
        if let Some(x) = space.pick(&inside, strategy, rng) {
            return Ok(fam.ip(x));
        }
        let reserved = fam.reserved();
        let assignable = inside
            .iter()
            .any(|&(lo, hi)| intervals::total(&intervals::clamp(&reserved, lo, hi)) < hi - lo + 1);
        let ranges = show_ranges(ranges);
        Err(if assignable {
            AllocError::RangesExhausted {
                family,
                ranges,
                subnet,
            }
        } else {
            AllocError::RangesOutside {
                family,
                ranges,
                subnet,
            }
        })
    }

    /// Picks one address per family of the subnet: both or none.
    pub fn pick_pair<R: Rng + ?Sized>(
        &mut self,
        strategy: Strategy,
        rng: &mut R,
    ) -> Result<IpPair, AllocError> {
        self.pick_pair_avoiding(&[], strategy, rng)
    }

    /// Picks one address per family of the subnet outside `avoid`: both or none.
    pub fn pick_pair_avoiding<R: Rng + ?Sized>(
        &mut self,
        avoid: &[IpRange],
        strategy: Strategy,
        rng: &mut R,
    ) -> Result<IpPair, AllocError> {
        self.per_family(|a, f| a.pick_avoiding(f, avoid, strategy, rng))
    }

    /// Picks one address per family of the subnet inside `ranges`: both or none.
    pub fn pick_pair_in<R: Rng + ?Sized>(
        &mut self,
        ranges: &[IpRange],
        strategy: Strategy,
        rng: &mut R,
    ) -> Result<IpPair, AllocError> {
        self.per_family(|a, f| a.pick_in(ranges, f, strategy, rng))
    }

    /// Reserves every address of `pair`: all or none.
    pub fn reserve_pair(&mut self, pair: &IpPair) -> Result<(), AllocError> {
        let mut done = Vec::new();
        for ip in pair.addrs() {
            if let Err(e) = self.reserve(ip) {
                for d in done {
                    self.release(d);
                }
                return Err(e);
            }
            done.push(ip);
        }
        Ok(())
    }

    fn per_family(
        &mut self,
        mut pick: impl FnMut(&mut Allocator, Family) -> Result<IpAddr, AllocError>,
    ) -> Result<IpPair, AllocError> {
        let mut got = Vec::new();
        for &family in self.layout.protocol().families() {
            match pick(self, family) {
                Ok(ip) => got.push(ip),
                Err(e) => {
                    for ip in got {
                        self.release(ip);
                    }
                    return Err(e);
                }
            }
        }
        Ok(IpPair::from_addrs(got).unwrap_or_default())
    }

    /// The families this subnet allocates, in pick order.
    pub fn families(&self) -> &'static [Family] {
        self.layout.protocol().families()
    }

    pub fn counts(&self) -> Counts {
        let of = |s: &Option<Space>| {
            s.as_ref()
                .map_or((0, 0), |s| (s.allocated(), s.available()))
        };
        let ((v4_using, v4_available), (v6_using, v6_available)) = (of(&self.v4), of(&self.v6));
        Counts {
            v4_using,
            v4_available,
            v6_using,
            v6_available,
        }
    }

    /// An estimate of the bytes this allocator holds (inline and heap), for capacity planning and tests.
    pub fn memory_bytes(&self) -> usize {
        let spaces: usize = [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .map(Space::heap_bytes)
            .sum();
        std::mem::size_of::<Allocator>() + self.layout.heap_bytes() + spaces
    }
}

/// The merged bounds of the `family` entries of `ranges`.
fn bounds_of(ranges: &[IpRange], family: Family) -> Vec<(u128, u128)> {
    intervals::merge(
        ranges
            .iter()
            .filter(|r| r.family() == family)
            .map(IpRange::bounds)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn alloc(cidr: &str, gw: Option<&str>, excludes: &[&str]) -> Allocator {
        Allocator::new(&SubnetLayout::parse("macvlan", None, cidr, gw, excludes).unwrap())
    }

    fn guide() -> Allocator {
        alloc(
            "172.17.0.0/16",
            Some("172.17.0.1"),
            &["172.17.0.0..172.17.0.10"],
        )
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    #[test]
    fn reserve_errors_read_well() {
        let mut a = guide();
        a.reserve(ip("172.17.0.100")).unwrap();
        let msg = |a: &Allocator, s: &str| a.check(ip(s)).unwrap_err().to_string();
        assert_eq!(
            msg(&a, "172.17.0.100"),
            "172.17.0.100 is already in use in subnet macvlan (172.17.0.0/16)"
        );
        assert_eq!(
            msg(&a, "172.18.0.100"),
            "172.18.0.100 is outside subnet macvlan (172.17.0.0/16)"
        );
        assert_eq!(
            msg(&a, "fd00::1"),
            "fd00::1 is outside subnet macvlan (172.17.0.0/16)"
        );
        assert_eq!(
            msg(&a, "172.17.0.1"),
            "172.17.0.1 is the gateway of subnet macvlan (172.17.0.0/16) and cannot be assigned to a Pod"
        );
        assert_eq!(
            msg(&a, "172.17.0.5"),
            "172.17.0.5 is excluded from subnet macvlan (172.17.0.0/16) by excludeIps entry 172.17.0.0..172.17.0.10"
        );
        assert_eq!(
            msg(&a, "172.17.0.0"),
            "172.17.0.0 is the network address of subnet macvlan (172.17.0.0/16) and cannot be assigned to a Pod"
        );
        assert_eq!(
            msg(&a, "172.17.255.255"),
            "172.17.255.255 is the broadcast address of subnet macvlan (172.17.0.0/16) and cannot be assigned to a Pod"
        );
        assert!(matches!(
            a.reserve(ip("172.17.0.100")),
            Err(AllocError::InUse { .. })
        ));
        assert!(matches!(
            a.reserve(ip("172.17.0.1")),
            Err(AllocError::Gateway { .. })
        ));
        assert!(matches!(
            a.reserve(ip("172.17.0.2")),
            Err(AllocError::Excluded { .. })
        ));
        assert!(matches!(
            a.reserve(ip("172.17.255.255")),
            Err(AllocError::NetworkOrBroadcast { .. })
        ));
        assert!(matches!(
            a.reserve(ip("10.0.0.1")),
            Err(AllocError::Outside { .. })
        ));
        assert!(a.check(ip("172.17.0.11")).is_ok());
        let unnamed = Allocator::new(
            &SubnetLayout::parse("", None, "172.17.0.0/16", None, &[] as &[&str]).unwrap(),
        );
        assert_eq!(
            unnamed.check(ip("172.18.0.1")).unwrap_err().to_string(),
            "172.18.0.1 is outside subnet 172.17.0.0/16"
        );
        let v6 = alloc("fd00::/64", None, &[]);
        assert_eq!(
            v6.check(ip("fd00::ffff:ffff:ffff:ffff"))
                .unwrap_err()
                .to_string(),
            "fd00::ffff:ffff:ffff:ffff is the last address of subnet macvlan (fd00::/64) and cannot be assigned to a Pod"
        );
    }

    #[test]
    fn reserve_release_and_counts() {
        let mut a = guide();
        let total = 65534 - 10;
        assert_eq!(
            a.counts(),
            Counts {
                v4_available: total,
                ..Counts::default()
            }
        );
        a.reserve(ip("172.17.3.3")).unwrap();
        assert!(a.is_allocated(ip("172.17.3.3")));
        assert!(!a.is_allocated(ip("172.17.3.4")));
        assert!(!a.is_allocated(ip("172.17.0.1")));
        assert_eq!(
            (a.counts().v4_using, a.counts().v4_available),
            (1, total - 1)
        );
        assert!(a.release(ip("172.17.3.3")));
        assert!(!a.release(ip("172.17.3.3")));
        assert!(
            !a.release(ip("172.17.0.1")),
            "the gateway is never released"
        );
        assert!(
            !a.release(ip("172.17.0.5")),
            "excluded addresses are never released"
        );
        assert!(!a.release(ip("9.9.9.9")));
        assert_eq!(
            a.check(ip("172.17.0.1")).unwrap_err(),
            AllocError::Gateway {
                ip: ip("172.17.0.1"),
                subnet: "macvlan (172.17.0.0/16)".into()
            }
        );
        assert_eq!(a.counts().v4_available, total);
    }

    #[test]
    fn exhaustion_message() {
        let mut a = alloc("192.168.9.0/24", None, &[]);
        let mut r = rng();
        for _ in 0..253 {
            a.pick(Family::V4, Strategy::Random, &mut r).unwrap();
        }
        assert_eq!(
            a.pick(Family::V4, Strategy::Random, &mut r)
                .unwrap_err()
                .to_string(),
            "subnet macvlan (192.168.9.0/24) has no free IPv4 address (253 of 253 in use)"
        );
        assert_eq!(
            a.pick(Family::V6, Strategy::Random, &mut r)
                .unwrap_err()
                .to_string(),
            "subnet macvlan (192.168.9.0/24) has no IPv6 CIDR"
        );
        assert!(a.release(ip("192.168.9.77")));
        assert_eq!(
            a.pick(Family::V4, Strategy::Random, &mut r).unwrap(),
            ip("192.168.9.77")
        );
    }

    #[test]
    fn edge_prefixes() {
        let mut r = rng();
        // /31: both addresses usable; the default gateway takes the first.
        let mut a = alloc("10.0.0.0/31", None, &[]);
        assert_eq!(
            a.pick(Family::V4, Strategy::Random, &mut r).unwrap(),
            ip("10.0.0.1")
        );
        assert!(a.pick(Family::V4, Strategy::Random, &mut r).is_err());
        let mut a = alloc("10.0.0.0/31", Some("10.0.0.1"), &[]);
        assert_eq!(
            a.pick(Family::V4, Strategy::Sequential, &mut r).unwrap(),
            ip("10.0.0.0")
        );
        // /32: the single address is the gateway, nothing is left.
        let mut a = alloc("10.0.0.7/32", None, &[]);
        assert_eq!(
            a.pick(Family::V4, Strategy::Random, &mut r)
                .unwrap_err()
                .to_string(),
            "subnet macvlan (10.0.0.7/32) has no free IPv4 address (0 of 0 in use)"
        );
        assert!(matches!(
            a.check(ip("10.0.0.7")),
            Err(AllocError::Gateway { .. })
        ));
        let mut a = alloc("fd00::/127", None, &[]);
        assert_eq!(
            a.pick(Family::V6, Strategy::Random, &mut r).unwrap(),
            ip("fd00::1")
        );
        let a = alloc("fd00::9/128", None, &[]);
        assert_eq!(a.counts().v6_available, 0);
        // /0 IPv6: the math spans all of u128.
        let mut a = alloc("::/0", Some("::1"), &[]);
        assert_eq!(a.counts().v6_available, u128::MAX - 2);
        a.reserve(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"))
            .unwrap();
        assert!(matches!(
            a.check(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Err(AllocError::NetworkOrBroadcast { .. })
        ));
        assert!(matches!(
            a.check(ip("::")),
            Err(AllocError::NetworkOrBroadcast { .. })
        ));
        assert_eq!(
            a.pick(Family::V6, Strategy::Sequential, &mut r).unwrap(),
            ip("::2")
        );
        for _ in 0..100 {
            let x = a.pick(Family::V6, Strategy::Random, &mut r).unwrap();
            assert!(!a.layout().is_reserved(x));
        }
        assert_eq!(a.counts().v6_using, 102);
        assert_eq!(a.counts().v6_available, u128::MAX - 2 - 102);
        // /0 IPv4 is sparse too.
        let mut a = alloc("0.0.0.0/0", None, &[]);
        assert_eq!(
            a.pick(Family::V4, Strategy::Sequential, &mut r).unwrap(),
            ip("0.0.0.2")
        );
    }

    #[test]
    fn pick_in_ranges() {
        let mut a = guide();
        let mut r = rng();
        let pool = crate::alloc::parse_entries(&["172.17.0.200-172.17.0.202", "fd00::1"]).unwrap();
        let mut got: Vec<IpAddr> = (0..3)
            .map(|_| {
                a.pick_in(&pool, Family::V4, Strategy::Random, &mut r)
                    .unwrap()
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [ip("172.17.0.200"), ip("172.17.0.201"), ip("172.17.0.202")]
        );
        assert_eq!(
            a.pick_in(&pool, Family::V4, Strategy::Random, &mut r)
                .unwrap_err()
                .to_string(),
            "no free IPv4 address is left in 172.17.0.200..172.17.0.202,fd00::1 of subnet macvlan (172.17.0.0/16)"
        );
        let outside = crate::alloc::parse_entries(&["10.0.0.1..10.0.0.9"]).unwrap();
        assert_eq!(
            a.pick_in(&outside, Family::V4, Strategy::Random, &mut r)
                .unwrap_err()
                .to_string(),
            "the ranges 10.0.0.1..10.0.0.9 hold no usable IPv4 address of subnet macvlan (172.17.0.0/16)"
        );
        let excluded = crate::alloc::parse_entries(&["172.17.0.0/29"]).unwrap();
        assert!(matches!(
            a.pick_in(&excluded, Family::V4, Strategy::Random, &mut r),
            Err(AllocError::RangesOutside { .. })
        ));
        assert!(matches!(
            a.pick_in(&pool, Family::V6, Strategy::Random, &mut r),
            Err(AllocError::NoFamily { .. })
        ));
    }

    #[test]
    fn dual_stack_is_all_or_nothing() {
        // fd00::/126: fd00::1 and fd00::2 usable, fd00::1 the gateway: one IPv6 address to give.
        let mut a = alloc("10.0.0.0/24,fd00::/126", None, &[]);
        let mut r = rng();
        let p = a.pick_pair(Strategy::Sequential, &mut r).unwrap();
        assert_eq!(p.to_string(), "10.0.0.2,fd00::2");
        let e = a.pick_pair(Strategy::Sequential, &mut r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet macvlan (10.0.0.0/24,fd00::/126) has no free IPv6 address (1 of 1 in use)"
        );
        assert_eq!(
            a.counts(),
            Counts {
                v4_using: 1,
                v4_available: 252,
                v6_using: 1,
                v6_available: 0
            }
        );
        let pair = IpPair::from_addrs([ip("10.0.0.9"), ip("fd00::2")]).unwrap();
        assert!(matches!(
            a.reserve_pair(&pair),
            Err(AllocError::InUse { .. })
        ));
        assert!(
            !a.is_allocated(ip("10.0.0.9")),
            "the IPv4 half is rolled back"
        );
        assert!(a.release(ip("fd00::2")));
        a.reserve_pair(&pair).unwrap();
        assert!(a.is_allocated(ip("10.0.0.9")) && a.is_allocated(ip("fd00::2")));
        let pool = crate::alloc::parse_entries(&["10.0.0.50", "fd00::2"]).unwrap();
        assert!(a.pick_pair_in(&pool, Strategy::Random, &mut r).is_err());
        assert!(!a.is_allocated(ip("10.0.0.50")));
        assert!(a.release(ip("fd00::2")));
        assert_eq!(
            a.pick_pair_in(&pool, Strategy::Random, &mut r)
                .unwrap()
                .to_string(),
            "10.0.0.50,fd00::2"
        );
        let single = alloc("10.0.0.0/24", None, &[])
            .pick_pair(Strategy::Sequential, &mut r)
            .unwrap();
        assert_eq!(single.to_string(), "10.0.0.2");
    }

    #[test]
    fn memory_targets() {
        let mut a = alloc("10.0.0.0/16", None, &[]);
        let mut r = rng();
        for _ in 0..60000 {
            a.pick(Family::V4, Strategy::Random, &mut r).unwrap();
        }
        let bytes = a.memory_bytes();
        assert!(bytes <= 16 * 1024, "a /16 takes {bytes} bytes");
        assert!(
            bytes >= 12 * 1024,
            "the estimate must count the bitmap and tree: {bytes}"
        );

        let mut v6 = alloc("fd00::/64", None, &[]);
        let empty = v6.memory_bytes();
        assert!(empty < 1024, "an empty /64 takes {empty} bytes");
        for _ in 0..10_000 {
            v6.pick(Family::V6, Strategy::Random, &mut r).unwrap();
        }
        let per = (v6.memory_bytes() - empty) / 10_000;
        assert!((40..=64).contains(&per), "{per} bytes per IPv6 allocation");
        assert_eq!(v6.counts().v6_using, 10_000);
    }
}
