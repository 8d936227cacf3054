//! Addresses as users write them: bare IPs, `v4,v6` dual-stack pairs, and the checks that make them usable.

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{AnnotationError, Shown};
use crate::alloc::IpPair;

/// What a fixed-address value may look like.
pub(crate) const PAIR_RULE: &str =
    "a bare address such as 10.0.0.1 or fd00::1, or v4,v6 for dual stack";

/// Why an address can never be an interface address, or `None` when it can.
pub(crate) fn unusable(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("is the unspecified address")
    } else if ip.is_loopback() {
        Some("is a loopback address")
    } else if ip.is_multicast() {
        Some("is a multicast address")
    } else if ip == IpAddr::from([255, 255, 255, 255]) {
        Some("is the broadcast address")
    } else {
        None
    }
}

pub(crate) fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// One bare host address. A CIDR gets its own message because writing one is the most common mistake.
pub(crate) fn parse_host(key: &str, part: &str) -> Result<IpAddr, AnnotationError> {
    if let Ok(ip) = part.parse::<IpAddr>() {
        return match unusable(ip) {
            Some(why) => Err(AnnotationError::Invalid {
                key: key.into(),
                value: Shown::new(part),
                problem: format!("{why}; expected a unicast host address such as 10.0.0.1").into(),
            }),
            None => Ok(ip),
        };
    }
    if let Ok(net) = part.parse::<IpNet>() {
        return Err(AnnotationError::Cidr {
            key: key.into(),
            value: net.to_string().into(),
            addr: net.addr(),
        });
    }
    Err(AnnotationError::Invalid {
        key: key.into(),
        value: Shown::new(part),
        problem: format!("is not an IP address (expected {PAIR_RULE})").into(),
    })
}

/// `v4`, `v6` or `v4,v6` (either order; whitespace around entries tolerated).
pub(crate) fn parse_pair(key: &str, raw: &str) -> Result<IpPair, AnnotationError> {
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    let invalid = |problem: String| AnnotationError::Invalid {
        key: key.into(),
        value: Shown::new(raw),
        problem: problem.into(),
    };
    if parts.len() > 2 {
        return Err(invalid(format!(
            "lists {} addresses (expected {PAIR_RULE})",
            parts.len()
        )));
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(format!(
            "has an empty entry (expected {PAIR_RULE})"
        )));
    }
    let addrs = parts
        .iter()
        .map(|p| parse_host(key, p))
        .collect::<Result<Vec<_>, _>>()?;
    IpPair::from_addrs(addrs.iter().copied()).ok_or_else(|| {
        invalid(format!(
            "has two {} addresses; dual stack is one IPv4 and one IPv6 address (e.g. 10.0.0.1,fd00::1)",
            family(addrs[0])
        ))
    })
}

/// An address that may carry a `/prefix` (Multus `ips`); the prefix is dropped because the subnet decides it.
pub(crate) fn parse_maybe_prefixed(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<IpNet>().ok().map(|n| n.addr()))
        .filter(|ip| unusable(*ip).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "macvlan.default.kubernetes.io/ip_address";

    #[test]
    fn pairs() {
        assert_eq!(
            parse_pair(K, "172.17.0.100").unwrap().to_string(),
            "172.17.0.100"
        );
        assert_eq!(parse_pair(K, "fd00::5").unwrap().to_string(), "fd00::5");
        assert_eq!(
            parse_pair(K, "fd00::5 , 10.0.0.5").unwrap().to_string(),
            "10.0.0.5,fd00::5"
        );
    }

    #[test]
    fn messages() {
        let e = |v: &str| parse_pair(K, v).unwrap_err().to_string();
        assert_eq!(
            e("10.0.0.1/24"),
            "annotation macvlan.default.kubernetes.io/ip_address: 10.0.0.1/24 is a CIDR; give the bare address (e.g. 10.0.0.1) or v4,v6 for dual stack"
        );
        assert_eq!(
            e("10.0.0.1,10.0.0.2"),
            "annotation macvlan.default.kubernetes.io/ip_address: \"10.0.0.1,10.0.0.2\" has two IPv4 addresses; dual stack is one IPv4 and one IPv6 address (e.g. 10.0.0.1,fd00::1)"
        );
        assert!(e("0.0.0.0").contains("\"0.0.0.0\" is the unspecified address"));
        assert!(e("224.0.0.1").contains("is a multicast address"));
        assert!(e("127.0.0.1").contains("is a loopback address"));
        assert!(e("255.255.255.255").contains("is the broadcast address"));
        assert!(e("10.0.0.1,").contains("has an empty entry"));
        assert!(e("1.1.1.1,fd00::1,2.2.2.2").contains("lists 3 addresses"));
        assert!(e("10.0.0.256").contains("\"10.0.0.256\" is not an IP address"));
    }

    #[test]
    fn prefixed() {
        assert_eq!(parse_maybe_prefixed("10.0.0.5/24"), "10.0.0.5".parse().ok());
        assert_eq!(parse_maybe_prefixed("fd00::5"), "fd00::5".parse().ok());
        assert_eq!(parse_maybe_prefixed("10.0.0.0/33"), None);
        assert_eq!(parse_maybe_prefixed("0.0.0.0/0"), None);
    }
}
