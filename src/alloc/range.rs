//! Address range entries as users write them: Kube-OVN `a..b`, Spiderpool `a-b`, a CIDR, or one address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::family::{Family, from_u128, quote, to_u128};

/// The forms an entry may take, quoted in every range error.
const FORMS: &str = "an address such as 10.0.0.5, a CIDR such as 10.0.0.0/24, a range 10.0.0.1..10.0.0.9 or 10.0.0.1-10.0.0.9 (IPv6 alike)";

/// An inclusive range of addresses of one family, `start <= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

/// What is wrong with a range entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeProblem {
    #[error("it is empty")]
    Empty,
    #[error("{0} is not an IP address")]
    BadAddress(String),
    #[error("{0} is not a CIDR")]
    BadCidr(String),
    #[error("its start {start} is after its end {end}")]
    Reversed { start: IpAddr, end: IpAddr },
    #[error("it mixes families: {start} and {end} are not both IPv4 or both IPv6")]
    MixedFamilies { start: IpAddr, end: IpAddr },
}

/// A range entry that could not be parsed, naming the entry as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("range entry {entry} is not valid: {problem} (expected {FORMS})")]
pub struct RangeError {
    /// The entry, quoted and cut for display.
    pub entry: String,
    pub problem: RangeProblem,
}

impl IpRange {
    /// A range from its two ends; they must share a family and be in order.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<IpRange, RangeProblem> {
        if start.is_ipv4() != end.is_ipv4() {
            return Err(RangeProblem::MixedFamilies { start, end });
        }
        if to_u128(start) > to_u128(end) {
            return Err(RangeProblem::Reversed { start, end });
        }
        Ok(IpRange { start, end })
    }

    pub fn single(ip: IpAddr) -> IpRange {
        IpRange { start: ip, end: ip }
    }

    /// Every address of the network, network and broadcast included.
    pub fn from_net(net: IpNet) -> IpRange {
        IpRange {
            start: net.network(),
            end: net.broadcast(),
        }
    }

    pub fn start(&self) -> IpAddr {
        self.start
    }

    pub fn end(&self) -> IpAddr {
        self.end
    }

    pub fn family(&self) -> Family {
        Family::of(self.start)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family() && {
            let x = to_u128(ip);
            to_u128(self.start) <= x && x <= to_u128(self.end)
        }
    }

    /// The range as inclusive numbers.
    pub(crate) fn bounds(&self) -> (u128, u128) {
        (to_u128(self.start), to_u128(self.end))
    }

    pub(crate) fn from_bounds(family: Family, lo: u128, hi: u128) -> IpRange {
        IpRange {
            start: from_u128(family, lo),
            end: from_u128(family, hi),
        }
    }
}

impl fmt::Display for IpRange {
    /// Kube-OVN's form: `a` for one address, `a..b` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}..{}", self.start, self.end)
        }
    }
}

impl FromStr for IpRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<IpRange, RangeError> {
        parse_entry(s)
    }
}

/// Parses one entry. Surrounding whitespace is ignored; a CIDR with host bits set (`10.0.0.5/30`) means its
/// whole block, as Go's `net.ParseCIDR` (and so Kube-OVN) reads it.
pub fn parse_entry(entry: &str) -> Result<IpRange, RangeError> {
    let fail = |problem| RangeError {
        entry: quote(entry),
        problem,
    };
    let s = entry.trim();
    if s.is_empty() {
        return Err(fail(RangeProblem::Empty));
    }
    let addr = |part: &str| {
        let part = part.trim();
        part.parse::<IpAddr>()
            .map_err(|_| fail(RangeProblem::BadAddress(quote(part))))
    };
    // `..` first: IPv6 addresses never contain `-` or `..`, IPv4 addresses never contain `-`.
    let pair = s.split_once("..").or_else(|| s.split_once('-'));
    if let Some((a, b)) = pair {
        return IpRange::new(addr(a)?, addr(b)?).map_err(fail);
    }
    if s.contains('/') {
        let net: IpNet = s
            .parse()
            .map_err(|_| fail(RangeProblem::BadCidr(quote(s))))?;
        return Ok(IpRange::from_net(net.trunc()));
    }
    Ok(IpRange::single(addr(s)?))
}

/// Parses a list of entries; the first bad one is reported.
pub fn parse_entries<S: AsRef<str>>(entries: &[S]) -> Result<Vec<IpRange>, RangeError> {
    entries.iter().map(|e| parse_entry(e.as_ref())).collect()
}

/// A list of ranges for messages: `a..b,c`.
pub(crate) fn show_ranges(ranges: &[IpRange]) -> String {
    const MAX_SHOWN: usize = 8;
    let mut parts: Vec<String> = ranges
        .iter()
        .take(MAX_SHOWN)
        .map(|r| r.to_string())
        .collect();
    if ranges.len() > MAX_SHOWN {
        parts.push(format!("… ({} ranges in total)", ranges.len()));
    }
    if parts.is_empty() {
        return "(no ranges)".to_string();
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn r(s: &str) -> (IpAddr, IpAddr) {
        let range = parse_entry(s).unwrap();
        (range.start(), range.end())
    }

    #[test]
    fn every_form() {
        assert_eq!(r("10.0.0.1..10.0.0.9"), (ip("10.0.0.1"), ip("10.0.0.9")));
        assert_eq!(
            r(" 10.0.0.1 .. 10.0.0.9 "),
            (ip("10.0.0.1"), ip("10.0.0.9"))
        );
        assert_eq!(r("10.0.0.1-10.0.0.9"), (ip("10.0.0.1"), ip("10.0.0.9")));
        assert_eq!(
            r("172.18.30.131 - 172.18.30.140"),
            (ip("172.18.30.131"), ip("172.18.30.140"))
        );
        assert_eq!(r("10.0.0.0/30"), (ip("10.0.0.0"), ip("10.0.0.3")));
        assert_eq!(r("10.0.0.5/30"), (ip("10.0.0.4"), ip("10.0.0.7")));
        assert_eq!(r("\t10.0.0.7\n"), (ip("10.0.0.7"), ip("10.0.0.7")));
        assert_eq!(r("fd00::1..fd00::ff"), (ip("fd00::1"), ip("fd00::ff")));
        assert_eq!(r("fd00::1-fd00::ff"), (ip("fd00::1"), ip("fd00::ff")));
        assert_eq!(r("fd00::/120"), (ip("fd00::"), ip("fd00::ff")));
        assert_eq!(r("fd00::5"), (ip("fd00::5"), ip("fd00::5")));
        assert_eq!(
            r("::/0"),
            (ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(r("10.0.0.3..10.0.0.3"), (ip("10.0.0.3"), ip("10.0.0.3")));
        assert_eq!(r("::ffff:1.2.3.4..::ffff:1.2.3.9").1, ip("::ffff:1.2.3.9"));
        assert_eq!(
            "10.0.0.1..10.0.0.9".parse::<IpRange>().unwrap().family(),
            Family::V4
        );
    }

    #[test]
    fn display_and_contains() {
        let range = parse_entry("10.0.0.0/30").unwrap();
        assert_eq!(range.to_string(), "10.0.0.0..10.0.0.3");
        assert_eq!(parse_entry("fd00::5").unwrap().to_string(), "fd00::5");
        assert!(range.contains(ip("10.0.0.3")));
        assert!(!range.contains(ip("10.0.0.4")));
        assert!(!range.contains(ip("::a00:1")));
        let list = parse_entries(&["10.0.0.1", "10.0.0.5-10.0.0.6"]).unwrap();
        assert_eq!(show_ranges(&list), "10.0.0.1,10.0.0.5..10.0.0.6");
        assert_eq!(show_ranges(&[]), "(no ranges)");
        let many = vec![range; 10];
        assert!(show_ranges(&many).ends_with("… (10 ranges in total)"));
    }

    #[test]
    fn errors_name_the_entry_the_value_and_the_forms() {
        let msg = |s: &str| parse_entry(s).unwrap_err().to_string();
        assert_eq!(
            msg("10.0.0.9..10.0.0.1"),
            format!(
                "range entry \"10.0.0.9..10.0.0.1\" is not valid: its start 10.0.0.9 is after its end 10.0.0.1 (expected {FORMS})"
            )
        );
        assert_eq!(
            msg("10.0.0.1..fd00::1"),
            format!(
                "range entry \"10.0.0.1..fd00::1\" is not valid: it mixes families: 10.0.0.1 and fd00::1 are not both IPv4 or both IPv6 (expected {FORMS})"
            )
        );
        assert_eq!(
            msg("10.0.0.1-10.0.0.x"),
            format!(
                "range entry \"10.0.0.1-10.0.0.x\" is not valid: \"10.0.0.x\" is not an IP address (expected {FORMS})"
            )
        );
        assert_eq!(
            msg("10.0.0.0/33"),
            format!(
                "range entry \"10.0.0.0/33\" is not valid: \"10.0.0.0/33\" is not a CIDR (expected {FORMS})"
            )
        );
        assert_eq!(
            msg("  "),
            format!("range entry \"  \" is not valid: it is empty (expected {FORMS})")
        );
        assert!(matches!(
            parse_entry("fd00::9-fd00::1").unwrap_err().problem,
            RangeProblem::Reversed { .. }
        ));
        assert!(matches!(
            parse_entry("a..b..c").unwrap_err().problem,
            RangeProblem::BadAddress(_)
        ));
        assert!(matches!(
            parse_entry("10.0.0.1..").unwrap_err().problem,
            RangeProblem::BadAddress(_)
        ));
        assert!(matches!(
            parse_entry("fe80::1%eth0").unwrap_err().problem,
            RangeProblem::BadAddress(_)
        ));
        assert!(matches!(
            parse_entry("10.0.0.1-10.0.0.5/24").unwrap_err().problem,
            RangeProblem::BadAddress(_)
        ));
        let err = parse_entries(&["10.0.0.1", "bogus"]).unwrap_err();
        assert_eq!(err.entry, "\"bogus\"");
        assert!(IpRange::new(ip("10.0.0.2"), ip("10.0.0.1")).is_err());
    }
}
