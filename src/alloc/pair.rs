//! A dual-stack address request or result: at most one address of each family.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address per family. Single-stack values have one side empty; dual-stack values have both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpPair {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl IpPair {
    /// Builds a pair from up to two addresses of different families; `None` when two share a family.
    pub fn from_addrs(addrs: impl IntoIterator<Item = IpAddr>) -> Option<IpPair> {
        let mut pair = IpPair::default();
        for a in addrs {
            match a {
                IpAddr::V4(v4) if pair.v4.is_none() => pair.v4 = Some(v4),
                IpAddr::V6(v6) if pair.v6.is_none() => pair.v6 = Some(v6),
                _ => return None,
            }
        }
        Some(pair)
    }

    /// The addresses, IPv4 first.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

impl fmt::Display for IpPair {
    /// Kube-OVN's form: `v4`, `v6` or `v4,v6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.addrs().map(|a| a.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let p =
            IpPair::from_addrs(["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()]).unwrap();
        assert_eq!(p.to_string(), "10.0.0.1,fd00::1");
        assert!(
            IpPair::from_addrs(["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()])
                .is_none()
        );
        assert!(IpPair::default().is_empty());
    }
}
