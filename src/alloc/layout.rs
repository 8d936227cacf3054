//! A subnet's static shape: CIDRs, gateways, excluded addresses, and which addresses may ever be handed out.
//!
//! Parsed once from a Subnet's spec (`protocol`, `cidrBlock`, `gateway`, `excludeIps`); every allocator of the
//! subnet starts from it. Network and broadcast addresses are unusable, except in /31 and /127 (both ends
//! usable, as RFC 3021 allows) and /32 and /128 (the one address). IPv6 drops its first and last address
//! too, as Kube-OVN does, so both families follow one rule.

use std::net::IpAddr;

use ipnet::IpNet;

use super::family::{Family, Protocol, from_u128, quote, to_u128};
use super::intervals;
use super::pair::IpPair;
use super::range::{IpRange, RangeError, parse_entry};

const CIDR_HINT: &str =
    "a CIDR such as 10.0.0.0/24, or v4cidr,v6cidr such as 10.0.0.0/24,fd00::/64 for Dual";

/// A subnet's usable address space, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetLayout {
    name: String,
    protocol: Protocol,
    cidr_block: String,
    v4: Option<FamilyLayout>,
    v6: Option<FamilyLayout>,
    ignored_excludes: Vec<String>,
}

/// One family of a subnet, as numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FamilyLayout {
    pub(crate) family: Family,
    pub(crate) net: IpNet,
    /// First and last addresses that may be handed out (network and broadcast already dropped).
    pub(crate) first: u128,
    pub(crate) last: u128,
    pub(crate) gateway: u128,
    /// Excluded addresses inside `first..=last`, merged.
    pub(crate) excluded: Vec<(u128, u128)>,
    /// The excludeIps entries as written, with their clamped bounds, to name the entry in denials.
    entries: Vec<(String, (u128, u128))>,
}

/// Why a subnet spec cannot be used, naming the subnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subnet {subnet}: {problem}")]
pub struct LayoutError {
    pub subnet: String,
    pub problem: LayoutProblem,
}

/// What is wrong in a subnet spec; each message names the field, the value and what is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutProblem {
    #[error("cidrBlock is empty (expected {CIDR_HINT})")]
    CidrEmpty,
    #[error("cidrBlock entry {value} is not a CIDR (expected {CIDR_HINT})")]
    CidrMalformed { value: String },
    #[error("cidrBlock {value} is not in network form; use {canonical}")]
    CidrNotCanonical { value: String, canonical: IpNet },
    #[error("cidrBlock {value} has two {family} CIDRs (expected {CIDR_HINT})")]
    CidrDuplicateFamily { value: String, family: Family },
    #[error("protocol {protocol} does not match cidrBlock {value}, which holds {found}; {hint}")]
    ProtocolMismatch {
        protocol: Protocol,
        value: String,
        found: &'static str,
        hint: &'static str,
    },
    #[error("gateway {value} is not an IP address (expected {hint})")]
    GatewayMalformed { value: String, hint: &'static str },
    #[error("gateway {value} gives two {family} addresses (expected {hint})")]
    GatewayDuplicateFamily {
        value: String,
        family: Family,
        hint: &'static str,
    },
    #[error("gateway {gateway} is {family} but cidrBlock {cidr_block} has no {family} CIDR")]
    GatewayFamily {
        gateway: IpAddr,
        family: Family,
        cidr_block: String,
    },
    #[error(
        "gateway {value} has no {family} address; a Dual subnet needs both (expected v4,v6 such as 10.0.0.1,fd00::1, or no gateway for the first address of each CIDR)"
    )]
    GatewayMissingFamily { value: String, family: Family },
    #[error("gateway {gateway} is outside {cidr} (expected an address from {first} to {last})")]
    GatewayOutside {
        gateway: IpAddr,
        cidr: IpNet,
        first: IpAddr,
        last: IpAddr,
    },
    #[error(
        "gateway {gateway} is the {what} of {cidr} (expected an address from {first} to {last})"
    )]
    GatewayUnusable {
        gateway: IpAddr,
        what: &'static str,
        cidr: IpNet,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("excludeIps[{index}]: {source}")]
    Exclude { index: usize, source: RangeError },
}

impl FamilyLayout {
    fn new(net: IpNet) -> FamilyLayout {
        let family = Family::of(net.addr());
        let (network, broadcast) = (to_u128(net.network()), to_u128(net.broadcast()));
        let host_bits = net.max_prefix_len() - net.prefix_len();
        let (first, last) = if host_bits >= 2 {
            (network + 1, broadcast - 1)
        } else {
            (network, broadcast)
        };
        FamilyLayout {
            family,
            net,
            first,
            last,
            gateway: first,
            excluded: Vec::new(),
            entries: Vec::new(),
        }
    }

    pub(crate) fn ip(&self, x: u128) -> IpAddr {
        from_u128(self.family, x)
    }

    /// Gateway and excluded addresses: what a fresh free set starts without.
    pub(crate) fn reserved(&self) -> Vec<(u128, u128)> {
        let mut v = self.excluded.clone();
        v.push((self.gateway, self.gateway));
        intervals::merge(v)
    }

    /// For an address of the CIDR outside the usable range: what it is, for messages.
    pub(crate) fn unusable_name(&self, x: u128) -> Option<&'static str> {
        let v4 = self.family == Family::V4;
        if x < self.first {
            Some(if v4 {
                "network address"
            } else {
                "subnet-router anycast address"
            })
        } else if x > self.last {
            Some(if v4 {
                "broadcast address"
            } else {
                "last address"
            })
        } else {
            None
        }
    }

    /// The excludeIps entry (as written) that excludes `x`, if any.
    pub(crate) fn exclude_entry(&self, x: u128) -> Option<&str> {
        if !intervals::contains(&self.excluded, x) {
            return None;
        }
        self.entries
            .iter()
            .find(|(_, (lo, hi))| *lo <= x && x <= *hi)
            .map(|(text, _)| text.as_str())
    }
}

impl SubnetLayout {
    /// Validates a subnet spec. `protocol: None` infers it from `cidrBlock` (as Kube-OVN defaults it);
    /// `gateway: None` or empty takes the first usable address of each CIDR. `name` is used in messages
    /// only; when empty, the cidrBlock stands in for it.
    pub fn parse<S: AsRef<str>>(
        name: &str,
        protocol: Option<Protocol>,
        cidr_block: &str,
        gateway: Option<&str>,
        exclude_ips: &[S],
    ) -> Result<SubnetLayout, LayoutError> {
        let subnet = if name.is_empty() {
            cidr_block.trim().to_string()
        } else {
            name.to_string()
        };
        let fail = |problem| LayoutError {
            subnet: subnet.clone(),
            problem,
        };
        let (v4, v6) = parse_cidrs(cidr_block).map_err(fail)?;
        let mut v4 = v4.map(FamilyLayout::new);
        let mut v6 = v6.map(FamilyLayout::new);
        let inferred = match (&v4, &v6) {
            (Some(_), Some(_)) => Protocol::Dual,
            (None, Some(_)) => Protocol::IPv6,
            _ => Protocol::IPv4,
        };
        let protocol = protocol.unwrap_or(inferred);
        if protocol != inferred {
            return Err(fail(LayoutProblem::ProtocolMismatch {
                protocol,
                value: quote(cidr_block),
                found: match inferred {
                    Protocol::IPv4 => "only an IPv4 CIDR",
                    Protocol::IPv6 => "only an IPv6 CIDR",
                    Protocol::Dual => "an IPv4 and an IPv6 CIDR",
                },
                hint: match protocol {
                    Protocol::IPv4 => "IPv4 needs one IPv4 CIDR such as 10.0.0.0/24",
                    Protocol::IPv6 => "IPv6 needs one IPv6 CIDR such as fd00::/64",
                    Protocol::Dual => {
                        "Dual needs an IPv4 and an IPv6 CIDR such as 10.0.0.0/24,fd00::/64"
                    }
                },
            }));
        }
        let canonical_block = [&v4, &v6]
            .into_iter()
            .flatten()
            .map(|f| f.net.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if let Some(raw) = gateway.map(str::trim).filter(|g| !g.is_empty()) {
            set_gateways(raw, protocol, &canonical_block, &mut v4, &mut v6).map_err(fail)?;
        }
        let mut ignored_excludes = Vec::new();
        for (index, entry) in exclude_ips.iter().enumerate() {
            let entry = entry.as_ref();
            let range = parse_entry(entry)
                .map_err(|source| fail(LayoutProblem::Exclude { index, source }))?;
            let target = match range.family() {
                Family::V4 => v4.as_mut(),
                Family::V6 => v6.as_mut(),
            };
            let (lo, hi) = range.bounds();
            let Some(fam) = target.filter(|f| {
                let (net_lo, net_hi) = IpRange::from_net(f.net).bounds();
                hi >= net_lo && lo <= net_hi
            }) else {
                ignored_excludes.push(entry.trim().to_string());
                continue;
            };
            if let Some(&clamped) = intervals::clamp(&[(lo, hi)], fam.first, fam.last).first() {
                fam.excluded.push(clamped);
                // A valid entry has whitespace only around its separator: dropping it keeps messages short.
                fam.entries
                    .push((entry.split_whitespace().collect(), clamped));
            }
        }
        for fam in [&mut v4, &mut v6].into_iter().flatten() {
            fam.excluded = intervals::merge(std::mem::take(&mut fam.excluded));
        }
        Ok(SubnetLayout {
            name: name.to_string(),
            protocol,
            cidr_block: canonical_block,
            v4,
            v6,
            ignored_excludes,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subnet as messages name it: its name, followed by its CIDRs when it has a name.
    pub fn describe(&self) -> String {
        if self.name.is_empty() {
            self.cidr_block.clone()
        } else {
            format!("{} ({})", self.name, self.cidr_block)
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The CIDRs in canonical form, `v4,v6` for Dual: what nadipam writes back as the `cidr` annotation.
    pub fn cidr_block(&self) -> &str {
        &self.cidr_block
    }

    pub fn cidr(&self, family: Family) -> Option<IpNet> {
        self.family(family).map(|f| f.net)
    }

    pub fn gateway(&self, family: Family) -> Option<IpAddr> {
        self.family(family).map(|f| f.ip(f.gateway))
    }

    /// Both gateways, as written back in the `gateway` annotation.
    pub fn gateways(&self) -> IpPair {
        IpPair::from_addrs(
            self.protocol
                .families()
                .iter()
                .filter_map(|&f| self.gateway(f)),
        )
        .unwrap_or_default()
    }

    /// The addresses that may be handed out or reserved, network and broadcast excluded.
    pub fn usable(&self, family: Family) -> Option<IpRange> {
        self.family(family)
            .map(|f| IpRange::from_bounds(family, f.first, f.last))
    }

    /// The effective excluded ranges of a family: merged and clamped to the usable range.
    pub fn excluded(&self, family: Family) -> Vec<IpRange> {
        self.family(family)
            .map(|f| {
                f.excluded
                    .iter()
                    .map(|&(lo, hi)| IpRange::from_bounds(family, lo, hi))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// excludeIps entries that lie wholly outside every CIDR of the subnet and so have no effect; worth a
    /// warning in status, not an error (Kube-OVN clamps them silently too).
    pub fn ignored_excludes(&self) -> &[String] {
        &self.ignored_excludes
    }

    /// True when `ip` lies in one of the subnet's CIDRs.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.family(Family::of(ip))
            .is_some_and(|f| f.net.contains(&ip))
    }

    /// True for addresses of the subnet that are never handed out: network, broadcast, gateway, excluded.
    /// False for addresses outside the subnet (see [`SubnetLayout::contains`]).
    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        let x = to_u128(ip);
        self.family(Family::of(ip)).is_some_and(|f| {
            f.net.contains(&ip)
                && (x < f.first
                    || x > f.last
                    || x == f.gateway
                    || intervals::contains(&f.excluded, x))
        })
    }

    /// Heap bytes, for [`super::Allocator::memory_bytes`].
    pub(crate) fn heap_bytes(&self) -> usize {
        let strings = self.name.capacity()
            + self.cidr_block.capacity()
            + self
                .ignored_excludes
                .iter()
                .map(|s| s.capacity() + 24)
                .sum::<usize>();
        let families: usize = [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .map(|f| {
                f.excluded.capacity() * 32
                    + f.entries
                        .iter()
                        .map(|(t, _)| t.capacity() + 56)
                        .sum::<usize>()
            })
            .sum();
        strings + families
    }

    pub(crate) fn family(&self, family: Family) -> Option<&FamilyLayout> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }
}

fn parse_cidrs(raw: &str) -> Result<(Option<IpNet>, Option<IpNet>), LayoutProblem> {
    if raw.trim().is_empty() {
        return Err(LayoutProblem::CidrEmpty);
    }
    let (mut v4, mut v6) = (None, None);
    for part in raw.split(',').map(str::trim) {
        let net: IpNet = part
            .parse()
            .map_err(|_| LayoutProblem::CidrMalformed { value: quote(part) })?;
        if net.addr() != net.network() {
            return Err(LayoutProblem::CidrNotCanonical {
                value: part.to_string(),
                canonical: net.trunc(),
            });
        }
        let family = Family::of(net.addr());
        let slot = match family {
            Family::V4 => &mut v4,
            Family::V6 => &mut v6,
        };
        if slot.replace(net).is_some() {
            return Err(LayoutProblem::CidrDuplicateFamily {
                value: quote(raw),
                family,
            });
        }
    }
    Ok((v4, v6))
}

fn set_gateways(
    raw: &str,
    protocol: Protocol,
    cidr_block: &str,
    v4: &mut Option<FamilyLayout>,
    v6: &mut Option<FamilyLayout>,
) -> Result<(), LayoutProblem> {
    let hint = if protocol == Protocol::Dual {
        "v4,v6 such as 10.0.0.1,fd00::1, or no gateway for the first address of each CIDR"
    } else {
        "one address inside the CIDR such as 10.0.0.1, or no gateway for the first usable address"
    };
    let mut seen: Vec<Family> = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let gateway: IpAddr = part.parse().map_err(|_| LayoutProblem::GatewayMalformed {
            value: quote(part),
            hint,
        })?;
        let family = Family::of(gateway);
        if seen.contains(&family) {
            return Err(LayoutProblem::GatewayDuplicateFamily {
                value: quote(raw),
                family,
                hint,
            });
        }
        seen.push(family);
        let slot = match family {
            Family::V4 => v4.as_mut(),
            Family::V6 => v6.as_mut(),
        };
        let Some(fam) = slot else {
            return Err(LayoutProblem::GatewayFamily {
                gateway,
                family,
                cidr_block: cidr_block.to_string(),
            });
        };
        let (first, last) = (fam.ip(fam.first), fam.ip(fam.last));
        if !fam.net.contains(&gateway) {
            return Err(LayoutProblem::GatewayOutside {
                gateway,
                cidr: fam.net,
                first,
                last,
            });
        }
        let x = to_u128(gateway);
        if let Some(what) = fam.unusable_name(x) {
            return Err(LayoutProblem::GatewayUnusable {
                gateway,
                what,
                cidr: fam.net,
                first,
                last,
            });
        }
        fam.gateway = x;
    }
    if let Some(&missing) = protocol.families().iter().find(|f| !seen.contains(f)) {
        return Err(LayoutProblem::GatewayMissingFamily {
            value: quote(raw),
            family: missing,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: &[&str] = &[];

    /// How many addresses may ever be handed out: the usable range minus gateway and excludes.
    fn assignable(f: &FamilyLayout) -> u128 {
        f.last - f.first + 1 - intervals::total(&f.reserved())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn layout(cidr: &str, gw: Option<&str>, excludes: &[&str]) -> SubnetLayout {
        SubnetLayout::parse("macvlan", None, cidr, gw, excludes).unwrap()
    }

    fn err(protocol: Option<Protocol>, cidr: &str, gw: Option<&str>, excludes: &[&str]) -> String {
        SubnetLayout::parse("macvlan", protocol, cidr, gw, excludes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_guide_subnet() {
        let l = layout(
            "172.17.0.0/16",
            Some("172.17.0.1"),
            &["172.17.0.0..172.17.0.10"],
        );
        assert_eq!(l.protocol(), Protocol::IPv4);
        assert_eq!(l.cidr_block(), "172.17.0.0/16");
        assert_eq!(l.describe(), "macvlan (172.17.0.0/16)");
        assert_eq!(l.name(), "macvlan");
        assert_eq!(l.gateway(Family::V4), Some(ip("172.17.0.1")));
        assert_eq!(l.gateway(Family::V6), None);
        assert_eq!(l.gateways().to_string(), "172.17.0.1");
        assert_eq!(
            l.usable(Family::V4).unwrap().to_string(),
            "172.17.0.1..172.17.255.254"
        );
        assert_eq!(
            l.excluded(Family::V4)[0].to_string(),
            "172.17.0.1..172.17.0.10"
        );
        assert!(l.is_reserved(ip("172.17.0.0")));
        assert!(l.is_reserved(ip("172.17.0.1")));
        assert!(l.is_reserved(ip("172.17.0.10")));
        assert!(l.is_reserved(ip("172.17.255.255")));
        assert!(!l.is_reserved(ip("172.17.0.11")));
        assert!(!l.is_reserved(ip("10.0.0.1")));
        assert!(l.contains(ip("172.17.200.1")));
        assert!(!l.contains(ip("172.18.0.1")));
        assert!(!l.contains(ip("fd00::1")));
        let f = l.family(Family::V4).unwrap();
        assert_eq!(
            f.exclude_entry(to_u128(ip("172.17.0.5"))),
            Some("172.17.0.0..172.17.0.10")
        );
        assert_eq!(assignable(f), 65534 - 10);
    }

    #[test]
    fn defaults_and_inference() {
        let l = layout("10.0.0.0/24", None, NONE);
        assert_eq!(l.gateway(Family::V4), Some(ip("10.0.0.1")));
        let l = layout(" 10.0.0.0/24 , fd00::/64 ", Some(""), NONE);
        assert_eq!(l.protocol(), Protocol::Dual);
        assert_eq!(l.cidr_block(), "10.0.0.0/24,fd00::/64");
        assert_eq!(l.gateways().to_string(), "10.0.0.1,fd00::1");
        let l = layout("fd00::/64,10.0.0.0/24", Some("fd00::ff, 10.0.0.254"), NONE);
        assert_eq!(l.cidr_block(), "10.0.0.0/24,fd00::/64");
        assert_eq!(l.gateways().to_string(), "10.0.0.254,fd00::ff");
        let l = SubnetLayout::parse("v6", Some(Protocol::IPv6), "fd00::/64", None, NONE).unwrap();
        assert_eq!(
            l.usable(Family::V6).unwrap().to_string(),
            "fd00::1..fd00::ffff:ffff:ffff:fffe"
        );
        let unnamed = SubnetLayout::parse("", None, "10.0.0.0/24", None, NONE).unwrap();
        assert_eq!(unnamed.describe(), "10.0.0.0/24");
    }

    #[test]
    fn edge_prefixes() {
        let l = layout("10.0.0.0/31", None, NONE);
        assert_eq!(
            l.usable(Family::V4).unwrap().to_string(),
            "10.0.0.0..10.0.0.1"
        );
        assert_eq!(l.gateway(Family::V4), Some(ip("10.0.0.0")));
        assert_eq!(assignable(l.family(Family::V4).unwrap()), 1);
        let l = layout("10.0.0.0/31", Some("10.0.0.1"), NONE);
        assert!(!l.is_reserved(ip("10.0.0.0")));
        let l = layout("10.0.0.7/32", None, NONE);
        assert_eq!(l.usable(Family::V4).unwrap().to_string(), "10.0.0.7");
        assert_eq!(assignable(l.family(Family::V4).unwrap()), 0);
        let l = layout("fd00::/127", None, NONE);
        assert_eq!(l.usable(Family::V6).unwrap().to_string(), "fd00::..fd00::1");
        let l = layout("fd00::9/128", None, NONE);
        assert_eq!(l.usable(Family::V6).unwrap().to_string(), "fd00::9");
        let l = layout("::/0", None, &["::/1"]);
        let f = l.family(Family::V6).unwrap();
        assert_eq!((f.first, f.last), (1, u128::MAX - 1));
        assert_eq!(assignable(f), (1u128 << 127) - 1);
        let l = layout("0.0.0.0/0", None, NONE);
        assert_eq!(assignable(l.family(Family::V4).unwrap()), (1u128 << 32) - 3);
    }

    #[test]
    fn excludes_are_clamped_merged_and_ignored_when_outside() {
        let l = layout(
            "10.0.0.0/24",
            None,
            &[
                "10.0.0.0/28",
                "10.0.0.10-10.0.0.20",
                "9.0.0.0..10.0.0.0",
                "10.0.0.250..10.0.1.5",
                "11.0.0.1",
                "fd00::1",
            ],
        );
        let shown: Vec<String> = l
            .excluded(Family::V4)
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(shown, ["10.0.0.1..10.0.0.20", "10.0.0.250..10.0.0.254"]);
        assert_eq!(l.ignored_excludes(), ["11.0.0.1", "fd00::1"]);
        let f = l.family(Family::V4).unwrap();
        assert_eq!(
            f.exclude_entry(to_u128(ip("10.0.0.15"))),
            Some("10.0.0.0/28")
        );
        assert_eq!(
            f.exclude_entry(to_u128(ip("10.0.0.18"))),
            Some("10.0.0.10-10.0.0.20")
        );
        assert_eq!(f.exclude_entry(to_u128(ip("10.0.0.100"))), None);
        // Only the network address: overlapping the CIDR, so not "ignored", yet nothing to exclude.
        let l = layout("10.0.0.0/24", None, &["10.0.0.0"]);
        assert!(l.excluded(Family::V4).is_empty());
        assert!(l.ignored_excludes().is_empty());
    }

    #[test]
    fn cidr_errors() {
        assert_eq!(
            err(None, "10.0.0.5/24", None, NONE),
            "subnet macvlan: cidrBlock 10.0.0.5/24 is not in network form; use 10.0.0.0/24"
        );
        assert_eq!(
            err(None, "fd00::1/64", None, NONE),
            "subnet macvlan: cidrBlock fd00::1/64 is not in network form; use fd00::/64"
        );
        assert_eq!(
            err(None, " ", None, NONE),
            format!("subnet macvlan: cidrBlock is empty (expected {CIDR_HINT})")
        );
        assert_eq!(
            err(None, "10.0.0.0", None, NONE),
            format!(
                "subnet macvlan: cidrBlock entry \"10.0.0.0\" is not a CIDR (expected {CIDR_HINT})"
            )
        );
        assert_eq!(
            err(None, "10.0.0.0/24,", None, NONE),
            format!("subnet macvlan: cidrBlock entry \"\" is not a CIDR (expected {CIDR_HINT})")
        );
        assert_eq!(
            err(None, "10.0.0.0/24,10.1.0.0/24", None, NONE),
            format!(
                "subnet macvlan: cidrBlock \"10.0.0.0/24,10.1.0.0/24\" has two IPv4 CIDRs (expected {CIDR_HINT})"
            )
        );
        let unnamed = SubnetLayout::parse("", None, "10.0.0.5/24", None, NONE).unwrap_err();
        assert_eq!(unnamed.subnet, "10.0.0.5/24");
    }

    #[test]
    fn protocol_must_match() {
        assert_eq!(
            err(Some(Protocol::Dual), "10.0.0.0/24", None, NONE),
            "subnet macvlan: protocol Dual does not match cidrBlock \"10.0.0.0/24\", which holds only an IPv4 CIDR; Dual needs an IPv4 and an IPv6 CIDR such as 10.0.0.0/24,fd00::/64"
        );
        assert_eq!(
            err(Some(Protocol::IPv4), "fd00::/64", None, NONE),
            "subnet macvlan: protocol IPv4 does not match cidrBlock \"fd00::/64\", which holds only an IPv6 CIDR; IPv4 needs one IPv4 CIDR such as 10.0.0.0/24"
        );
        assert_eq!(
            err(Some(Protocol::IPv6), "10.0.0.0/24,fd00::/64", None, NONE),
            "subnet macvlan: protocol IPv6 does not match cidrBlock \"10.0.0.0/24,fd00::/64\", which holds an IPv4 and an IPv6 CIDR; IPv6 needs one IPv6 CIDR such as fd00::/64"
        );
        assert!(
            SubnetLayout::parse(
                "s",
                Some(Protocol::Dual),
                "10.0.0.0/24,fd00::/64",
                None,
                NONE
            )
            .is_ok()
        );
    }

    #[test]
    fn gateway_errors() {
        assert_eq!(
            err(None, "10.0.0.0/24", Some("10.0.1.1"), NONE),
            "subnet macvlan: gateway 10.0.1.1 is outside 10.0.0.0/24 (expected an address from 10.0.0.1 to 10.0.0.254)"
        );
        assert_eq!(
            err(None, "10.0.0.0/24", Some("10.0.0.255"), NONE),
            "subnet macvlan: gateway 10.0.0.255 is the broadcast address of 10.0.0.0/24 (expected an address from 10.0.0.1 to 10.0.0.254)"
        );
        assert_eq!(
            err(None, "10.0.0.0/24", Some("10.0.0.0"), NONE),
            "subnet macvlan: gateway 10.0.0.0 is the network address of 10.0.0.0/24 (expected an address from 10.0.0.1 to 10.0.0.254)"
        );
        assert_eq!(
            err(None, "fd00::/64", Some("fd00::"), NONE),
            "subnet macvlan: gateway fd00:: is the subnet-router anycast address of fd00::/64 (expected an address from fd00::1 to fd00::ffff:ffff:ffff:fffe)"
        );
        assert_eq!(
            err(None, "10.0.0.0/24", Some("gw"), NONE),
            "subnet macvlan: gateway \"gw\" is not an IP address (expected one address inside the CIDR such as 10.0.0.1, or no gateway for the first usable address)"
        );
        assert_eq!(
            err(None, "10.0.0.0/24", Some("fd00::1"), NONE),
            "subnet macvlan: gateway fd00::1 is IPv6 but cidrBlock 10.0.0.0/24 has no IPv6 CIDR"
        );
        assert_eq!(
            err(None, "10.0.0.0/24,fd00::/64", Some("10.0.0.1"), NONE),
            "subnet macvlan: gateway \"10.0.0.1\" has no IPv6 address; a Dual subnet needs both (expected v4,v6 such as 10.0.0.1,fd00::1, or no gateway for the first address of each CIDR)"
        );
        assert_eq!(
            err(
                None,
                "10.0.0.0/24,fd00::/64",
                Some("10.0.0.1,10.0.0.2"),
                NONE
            ),
            "subnet macvlan: gateway \"10.0.0.1,10.0.0.2\" gives two IPv4 addresses (expected v4,v6 such as 10.0.0.1,fd00::1, or no gateway for the first address of each CIDR)"
        );
        // /31 and /32 have no network or broadcast address to refuse.
        assert!(SubnetLayout::parse("s", None, "10.0.0.0/31", Some("10.0.0.1"), NONE).is_ok());
        assert!(SubnetLayout::parse("s", None, "10.0.0.0/32", Some("10.0.0.0"), NONE).is_ok());
    }

    #[test]
    fn exclude_errors_name_the_index() {
        assert_eq!(
            err(
                None,
                "10.0.0.0/24",
                None,
                &["10.0.0.1", "10.0.0.9..10.0.0.2"]
            ),
            "subnet macvlan: excludeIps[1]: range entry \"10.0.0.9..10.0.0.2\" is not valid: its start 10.0.0.9 is after its end 10.0.0.2 (expected an address such as 10.0.0.5, a CIDR such as 10.0.0.0/24, a range 10.0.0.1..10.0.0.9 or 10.0.0.1-10.0.0.9 (IPv6 alike))"
        );
        let e = SubnetLayout::parse("s", None, "10.0.0.0/24", None, &["x"]).unwrap_err();
        assert!(matches!(e.problem, LayoutProblem::Exclude { index: 0, .. }));
    }
}
