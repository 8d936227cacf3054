//! Address families and subnet protocols, and the u128 arithmetic both families share.
//!
//! Every address is handled as a `u128` inside the allocation core so IPv4 and IPv6 run through the same
//! code; IPv4 values simply stay below 2^32.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A subnet's `protocol`, spelled as Kube-OVN spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    IPv4,
    IPv6,
    Dual,
}

impl Protocol {
    /// The families a subnet of this protocol has, IPv4 first.
    pub fn families(self) -> &'static [Family] {
        match self {
            Protocol::IPv4 => &[Family::V4],
            Protocol::IPv6 => &[Family::V6],
            Protocol::Dual => &[Family::V4, Family::V6],
        }
    }

    pub fn has(self, family: Family) -> bool {
        self.families().contains(&family)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::IPv4 => "IPv4",
            Protocol::IPv6 => "IPv6",
            Protocol::Dual => "Dual",
        })
    }
}

/// A `protocol` value that is not one of the three Kube-OVN spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("protocol {0} is not valid (expected exactly IPv4, IPv6 or Dual)")]
pub struct ProtocolError(pub String);

impl FromStr for Protocol {
    type Err = ProtocolError;

    /// Exact spellings only: Kube-OVN compares them case-sensitively, so accepting `ipv4` here would let a
    /// Subnet through that Kube-OVN tooling rejects.
    fn from_str(s: &str) -> Result<Protocol, ProtocolError> {
        match s {
            "IPv4" => Ok(Protocol::IPv4),
            "IPv6" => Ok(Protocol::IPv6),
            "Dual" => Ok(Protocol::Dual),
            other => Err(ProtocolError(quote(other))),
        }
    }
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of `family` numbered `value`; IPv4 values are below 2^32 by construction everywhere in
/// this module, the truncation only guards the type.
pub(crate) fn from_u128(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Values longer than this are cut in messages, so a huge field cannot flood an admission response.
const SHOWN_CHARS: usize = 100;

/// A user-supplied value as it appears in an error message: quoted, escaped, cut to about 100 characters.
pub(crate) fn quote(raw: &str) -> String {
    if raw.chars().count() <= SHOWN_CHARS {
        return format!("{raw:?}");
    }
    let head: String = raw.chars().take(SHOWN_CHARS).collect();
    format!("{:?} ({} bytes in total)", format!("{head}…"), raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_spellings() {
        assert_eq!("IPv4".parse::<Protocol>().unwrap(), Protocol::IPv4);
        assert_eq!("IPv6".parse::<Protocol>().unwrap(), Protocol::IPv6);
        assert_eq!("Dual".parse::<Protocol>().unwrap(), Protocol::Dual);
        for p in [Protocol::IPv4, Protocol::IPv6, Protocol::Dual] {
            assert_eq!(p.to_string().parse::<Protocol>().unwrap(), p);
        }
        assert_eq!(
            "ipv4".parse::<Protocol>().unwrap_err().to_string(),
            "protocol \"ipv4\" is not valid (expected exactly IPv4, IPv6 or Dual)"
        );
        assert!("".parse::<Protocol>().is_err());
        assert!(" IPv4".parse::<Protocol>().is_err());
        assert!(Protocol::Dual.has(Family::V6));
        assert!(!Protocol::IPv4.has(Family::V6));
    }

    #[test]
    fn u128_round_trip() {
        for s in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "::",
            "fd00::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(from_u128(Family::of(ip), to_u128(ip)), ip);
        }
        assert_eq!(Family::V4.to_string(), "IPv4");
    }

    #[test]
    fn quote_cuts_long_values() {
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        let long = "x".repeat(300);
        let q = quote(&long);
        assert!(q.ends_with("(300 bytes in total)"), "{q}");
        assert!(q.len() < 130);
    }
}
