//! Property tests: random subnets (both families, /24–/32 and /120–/128, random gateways and excludes,
//! dense and sparse free sets) driven by random operation sequences, checked against a `HashSet` model and an
//! independent computation of which addresses are assignable.

use std::collections::HashSet;
use std::net::IpAddr;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::family::{Family, from_u128};
use super::space::DENSE_MAX;
use super::{AllocError, Allocator, IpRange, Strategy as Pick, SubnetLayout, parse_entry};

#[derive(Debug, Clone)]
enum Op {
    Pick(bool),
    Reserve(u32),
    Release(u32),
    PickIn(u32, u32),
    ForeignFamily,
}

#[derive(Debug, Clone)]
struct Case {
    v6: bool,
    host_bits: u32,
    gateway: Option<u32>,
    excludes: Vec<(u32, u32, bool)>,
    sparse: bool,
    seed: u64,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    let op = prop_oneof![
        3 => any::<bool>().prop_map(Op::Pick),
        2 => (0u32..300).prop_map(Op::Reserve),
        2 => (0u32..300).prop_map(Op::Release),
        1 => (0u32..300, 0u32..40).prop_map(|(a, n)| Op::PickIn(a, a + n)),
        1 => Just(Op::ForeignFamily),
    ];
    (
        any::<bool>(),
        0u32..=8,
        proptest::option::of(any::<u32>()),
        proptest::collection::vec((0u32..270, 0u32..30, any::<bool>()), 0..4),
        any::<bool>(),
        any::<u64>(),
        proptest::collection::vec(op, 1..300),
    )
        .prop_map(|(v6, host_bits, gateway, ex, sparse, seed, ops)| Case {
            v6,
            host_bits,
            gateway,
            excludes: ex
                .into_iter()
                .map(|(a, n, dash)| (a, a + n, dash))
                .collect(),
            sparse,
            seed,
            ops,
        })
}

/// The model's view of a subnet, computed without the code under test.
struct Model {
    family: Family,
    base: u128,
    size: u32,
    first: u32,
    last: u32,
    gateway: u32,
    excluded: Vec<(u32, u32)>,
    used: HashSet<u32>,
}

impl Model {
    fn ip(&self, off: u32) -> IpAddr {
        from_u128(self.family, self.base + u128::from(off))
    }

    fn assignable(&self, off: u32) -> bool {
        off >= self.first
            && off <= self.last
            && off != self.gateway
            && !self.excluded.iter().any(|&(a, b)| a <= off && off <= b)
    }

    fn assignable_count(&self) -> usize {
        (0..self.size).filter(|&o| self.assignable(o)).count()
    }

    fn off(&self, ip: IpAddr) -> u32 {
        (super::family::to_u128(ip) - self.base) as u32
    }
}

fn build(c: &Case) -> (Allocator, Model) {
    let (family, base, bits) = if c.v6 {
        (Family::V6, 0xfd00u128 << 112, 128)
    } else {
        (Family::V4, 0x0a00_0000u128, 32)
    };
    let size = 1u32 << c.host_bits;
    let (first, last) = if c.host_bits >= 2 {
        (1, size - 2)
    } else {
        (0, size - 1)
    };
    let gateway = c.gateway.map_or(first, |g| first + g % (last - first + 1));
    let model = Model {
        family,
        base,
        size,
        first,
        last,
        gateway,
        excluded: c.excludes.iter().map(|&(a, b, _)| (a, b)).collect(),
        used: HashSet::new(),
    };
    let cidr = format!("{}/{}", model.ip(0), bits - c.host_bits);
    let gw = c.gateway.map(|_| model.ip(gateway).to_string());
    let excludes: Vec<String> = c
        .excludes
        .iter()
        .map(|&(a, b, dash)| {
            let sep = if dash { " - " } else { ".." };
            format!("{}{sep}{}", model.ip(a), model.ip(b))
        })
        .collect();
    let layout = SubnetLayout::parse("p", None, &cidr, gw.as_deref(), &excludes).unwrap();
    let dense_max = if c.sparse { 0 } else { DENSE_MAX };
    (Allocator::with_dense_max(&layout, dense_max), model)
}

fn expected_reserve(m: &Model, off: u32) -> Result<(), &'static str> {
    if off >= m.size {
        Err("outside")
    } else if off < m.first || off > m.last {
        Err("network")
    } else if off == m.gateway {
        Err("gateway")
    } else if !m.assignable(off) {
        Err("excluded")
    } else if m.used.contains(&off) {
        Err("in use")
    } else {
        Ok(())
    }
}

fn kind(r: &Result<(), AllocError>) -> Result<(), &'static str> {
    match r {
        Ok(()) => Ok(()),
        Err(AllocError::Outside { .. }) => Err("outside"),
        Err(AllocError::NetworkOrBroadcast { .. }) => Err("network"),
        Err(AllocError::Gateway { .. }) => Err("gateway"),
        Err(AllocError::Excluded { .. }) => Err("excluded"),
        Err(AllocError::InUse { .. }) => Err("in use"),
        Err(_) => Err("other"),
    }
}

fn run(c: &Case) -> Result<(), TestCaseError> {
    let (mut a, mut m) = build(c);
    let mut rng = StdRng::seed_from_u64(c.seed);
    let total = m.assignable_count();
    for op in &c.ops {
        match *op {
            Op::Pick(random) => {
                let strategy = if random {
                    Pick::Random
                } else {
                    Pick::Sequential
                };
                match a.pick(m.family, strategy, &mut rng) {
                    Ok(ip) => {
                        let off = m.off(ip);
                        prop_assert!(off < m.size && m.assignable(off), "{ip} is not assignable");
                        prop_assert!(m.used.insert(off), "{ip} handed out twice");
                        if !random {
                            let lowest = (0..m.size)
                                .find(|&o| o != off && m.assignable(o) && !m.used.contains(&o));
                            prop_assert!(
                                lowest.is_none_or(|l| l > off),
                                "sequential gave {ip}, not the lowest free"
                            );
                        }
                    }
                    Err(e) => {
                        prop_assert!(matches!(e, AllocError::Exhausted { .. }), "{e}");
                        prop_assert_eq!(m.used.len(), total);
                    }
                }
            }
            Op::Reserve(off) => {
                let want = expected_reserve(&m, off);
                let got = a.reserve(m.ip(off));
                prop_assert_eq!(kind(&got), want, "reserve {}", m.ip(off));
                if got.is_ok() {
                    m.used.insert(off);
                }
            }
            Op::Release(off) => {
                let released = a.release(m.ip(off));
                prop_assert_eq!(released, m.used.remove(&off), "release {}", m.ip(off));
                if released {
                    prop_assert!(
                        a.check(m.ip(off)).is_ok(),
                        "released {} is not available",
                        m.ip(off)
                    );
                }
            }
            Op::PickIn(lo, hi) => {
                let range = IpRange::new(m.ip(lo), m.ip(hi)).unwrap();
                let free_in = (lo..=hi.min(m.size.saturating_sub(1)))
                    .filter(|&o| o < m.size && m.assignable(o) && !m.used.contains(&o))
                    .count();
                match a.pick_in(&[range], m.family, Pick::Random, &mut rng) {
                    Ok(ip) => {
                        let off = m.off(ip);
                        prop_assert!((lo..=hi).contains(&off) && m.assignable(off));
                        prop_assert!(m.used.insert(off), "{ip} handed out twice");
                    }
                    Err(e) => prop_assert_eq!(free_in, 0, "{}", e),
                }
            }
            Op::ForeignFamily => {
                let foreign: IpAddr = if c.v6 {
                    "10.0.0.2".parse().unwrap()
                } else {
                    "fd00::2".parse().unwrap()
                };
                prop_assert_eq!(kind(&a.reserve(foreign)), Err("outside"));
                prop_assert!(!a.release(foreign));
            }
        }
        let counts = a.counts();
        let (using, available) = match m.family {
            Family::V4 => (counts.v4_using, counts.v4_available),
            Family::V6 => (counts.v6_using, counts.v6_available),
        };
        prop_assert_eq!(using, m.used.len() as u128);
        prop_assert_eq!(available, (total - m.used.len()) as u128);
    }
    for off in 0..m.size + 2 {
        prop_assert_eq!(a.is_allocated(m.ip(off)), m.used.contains(&off));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn allocator_matches_model(c in case()) {
        run(&c)?;
    }

    #[test]
    fn range_forms_agree(a in any::<u32>(), b in any::<u32>()) {
        let (x, y) = (IpAddr::from(a.to_be_bytes()), IpAddr::from(b.to_be_bytes()));
        let dots = parse_entry(&format!("{x}..{y}")).map_err(|e| e.problem);
        let dash = parse_entry(&format!(" {x} - {y} ")).map_err(|e| e.problem);
        prop_assert_eq!(&dots, &dash);
        prop_assert_eq!(dots.is_ok(), a <= b);
    }
}
