//! IPLease names: `<subnet>.<address>`, one name per (subnet, address), so creating the lease is the reservation.
//!
//! IPv4 contributes exactly four dot-separated decimal labels (`macvlan.172.17.0.100`). IPv6 contributes one
//! label: the RFC 5952 text (lower case, longest zero run compressed, never the dotted IPv4 tail) with ':' written
//! as '-', plus a '0' where the text would start or end with '-' (DNS labels must start and end with an
//! alphanumeric): `fd00::5` → `fd00--5`, `::1` → `0--1`, `fd00::` → `fd00--0`. An IPv6 label always contains '-',
//! the last IPv4 label never does, so [`parse_lease_name`] can split any name back, which proves the mapping
//! injective. The IPLease CRD checks the same rule with CEL.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};

/// The IPLease name for `ip` in `subnet`. `subnet` is a Subnet name (a lower-case DNS subdomain of at most 63
/// characters), so the result is a valid DNS subdomain of at most 103 characters.
pub fn lease_name(subnet: &str, ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{subnet}.{v4}"),
        IpAddr::V6(v6) => format!("{subnet}.{}", v6_label(v6)),
    }
}

/// Splits a lease name back into its subnet and address; `None` if `name` is not a lease name.
pub fn parse_lease_name(name: &str) -> Option<(&str, IpAddr)> {
    let (subnet, last) = name.rsplit_once('.')?;
    if last.contains('-') {
        let text = last.replace('-', ":");
        let ip: Ipv6Addr = text.parse().ok()?;
        // Only the exact label lease_name would write counts, so each address has a single accepted spelling.
        return (v6_label(ip) == last && !subnet.is_empty()).then_some((subnet, IpAddr::V6(ip)));
    }
    let mut cut = name.len();
    for _ in 0..4 {
        cut = name[..cut].rfind('.')?;
    }
    let (subnet, v4) = (&name[..cut], &name[cut + 1..]);
    let ip: IpAddr = v4.parse().ok()?;
    (ip.to_string() == v4 && !subnet.is_empty()).then_some((subnet, ip))
}

/// The single DNS label for an IPv6 address (see the module docs).
fn v6_label(ip: Ipv6Addr) -> String {
    let seg = ip.segments();
    // Longest run of two or more zero segments, leftmost on a tie (RFC 5952 section 4.2).
    let (mut best, mut run) = ((0usize, 0usize), (0usize, 0usize));
    for (i, &s) in seg.iter().enumerate() {
        if s == 0 {
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run.1 = 0;
        }
    }
    let mut out = String::with_capacity(39);
    let join = |out: &mut String, part: &[u16]| {
        for (i, s) in part.iter().enumerate() {
            if i > 0 {
                out.push('-');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{s:x}");
        }
    };
    if best.1 < 2 {
        join(&mut out, &seg);
        return out;
    }
    let (start, end) = (best.0, best.0 + best.1);
    if start == 0 {
        out.push('0');
    }
    join(&mut out, &seg[..start]);
    out.push_str("--");
    join(&mut out, &seg[end..]);
    if end == 8 {
        out.push('0');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    /// The Kubernetes rule for object names (RFC 1123 subdomain).
    fn is_dns_subdomain(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                let b = label.as_bytes();
                !b.is_empty()
                    && b.len() <= 63
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                    && b[0] != b'-'
                    && b[b.len() - 1] != b'-'
            })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn examples() {
        assert_eq!(
            lease_name("macvlan", ip("172.17.0.100")),
            "macvlan.172.17.0.100"
        );
        assert_eq!(lease_name("macvlan", ip("fd00::5")), "macvlan.fd00--5");
        assert_eq!(lease_name("s", ip("::1")), "s.0--1");
        assert_eq!(lease_name("s", ip("fd00::")), "s.fd00--0");
        assert_eq!(lease_name("s", ip("::")), "s.0--0");
        assert_eq!(lease_name("s", ip("FD00:0:0:1::AB")), "s.fd00-0-0-1--ab");
        // A single zero segment is not compressed; the longest (then leftmost) run is.
        assert_eq!(lease_name("s", ip("1:0:2:3:4:5:6:7")), "s.1-0-2-3-4-5-6-7");
        assert_eq!(lease_name("s", ip("1:0:0:2:0:0:0:3")), "s.1-0-0-2--3");
        assert_eq!(lease_name("s", ip("1:0:0:2:3:0:0:4")), "s.1--2-3-0-0-4");
        // IPv4-mapped addresses stay hex (no dots inside the IPv6 label).
        assert_eq!(lease_name("s", ip("::ffff:1.2.3.4")), "s.0--ffff-102-304");
    }

    #[test]
    fn parse_round_trips_and_refuses_other_spellings() {
        for (subnet, addr) in [
            ("macvlan", "172.17.0.100"),
            ("a.b.1", "10.0.0.1"),
            ("a.b-1", "fd00::5"),
            ("x", "::"),
            ("sub.1.2.3", "1.2.3.4"),
        ] {
            let name = lease_name(subnet, ip(addr));
            assert_eq!(parse_lease_name(&name), Some((subnet, ip(addr))), "{name}");
        }
        for bad in [
            "macvlan",
            "1.2.3.4",
            "s.01.2.3.4",
            "s.fd00-0-0-0-0-0-0-5",
            "s.--1",
            "s.fd00--",
            "s.1.2.3",
            ".fd00--5",
            "s.zz--1",
        ] {
            assert_eq!(parse_lease_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn neighbouring_addresses_and_subnets_do_not_collide() {
        let subnets = ["a", "a.1", "a.1.2", "a-1", "1.2.3", "fd00--1", "b"];
        let mut ips: Vec<IpAddr> = Vec::new();
        for i in 0..=300u32 {
            ips.push(IpAddr::V4(Ipv4Addr::from(0x0102_0300 + i)));
            ips.push(IpAddr::V6(Ipv6Addr::from(
                0xfd00_u128 << 112 | u128::from(i),
            )));
            ips.push(IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64)));
        }
        let mut seen = HashSet::new();
        for s in subnets {
            for &a in &ips {
                let name = lease_name(s, a);
                assert!(is_dns_subdomain(&name), "{name}");
                assert!(seen.insert(name.clone()), "collision on {name}");
            }
        }
    }

    proptest! {
        #[test]
        fn injective_valid_and_matches_rfc5952(
            subnet in "[a-z0-9]([a-z0-9.-]{0,40}[a-z0-9])?",
            bits in any::<u128>(),
            zeros in any::<u8>(),
            v4 in any::<u32>(),
        ) {
            prop_assume!(subnet.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-')));
            // Zero some segments so compression paths are exercised.
            let mut seg = Ipv6Addr::from(bits).segments();
            for (i, s) in seg.iter_mut().enumerate() {
                if zeros & (1 << i) != 0 {
                    *s = 0;
                }
            }
            let v6 = Ipv6Addr::from(seg);
            for a in [IpAddr::V6(v6), IpAddr::V4(v4.into())] {
                let name = lease_name(&subnet, a);
                prop_assert!(is_dns_subdomain(&name), "{}", name);
                prop_assert_eq!(parse_lease_name(&name), Some((subnet.as_str(), a)));
            }
            // Outside IPv4-mapped addresses, the label is std's RFC 5952 text with ':' → '-' and the '0' padding,
            // which is what the CRD's CEL rule computes from spec.ip.
            if v6.to_ipv4_mapped().is_none() {
                let text = v6.to_string().replace(':', "-");
                let padded = format!(
                    "{}{text}{}",
                    if text.starts_with('-') { "0" } else { "" },
                    if text.ends_with('-') { "0" } else { "" }
                );
                prop_assert_eq!(lease_name(&subnet, IpAddr::V6(v6)), format!("{subnet}.{padded}"));
            }
        }
    }
}
