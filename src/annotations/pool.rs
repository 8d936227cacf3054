//! Kube-OVN's `ip_pool`: a list of addresses (or dual-stack pairs) to pick from, or the name of an IPPool.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::address::{family, parse_host};
use super::error::{AnnotationError, Shown};
use super::names::is_dns1123_subdomain;
use crate::alloc::IpPair;

const POOL_RULE: &str = "addresses such as 10.0.0.1,10.0.0.2, dual-stack pairs such as 10.0.0.1,fd00::1;10.0.0.2,fd00::2, or the name of an IPPool";

/// What a workload's `ip_pool` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolRequest {
    /// An IPPool object, by name.
    Named(String),
    /// Candidate addresses in order; each entry is one Pod's address (one per family).
    List(Vec<IpPair>),
}

/// Parses the value by Kube-OVN's rules: with `;`, entries are split on `;` and each may be `v4,v6`;
/// otherwise on `,`, where exactly two entries of different families are one dual-stack pair; a single
/// value that is not an address names an IPPool.
pub(crate) fn parse_pool(key: &str, raw: &str) -> Result<PoolRequest, AnnotationError> {
    let invalid = |problem: String| AnnotationError::Invalid {
        key: key.into(),
        value: Shown::new(raw),
        problem: problem.into(),
    };
    let pairs = if raw.contains(';') {
        raw.split(';')
            .map(|entry| {
                let parts: Vec<&str> = entry.split(',').map(str::trim).collect();
                if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(invalid(format!(
                        "has entry {:?}, which is not an address or a v4,v6 pair (expected {POOL_RULE})",
                        entry.trim()
                    )));
                }
                let addrs = parts
                    .iter()
                    .map(|p| parse_host(key, p))
                    .collect::<Result<Vec<_>, _>>()?;
                IpPair::from_addrs(addrs).ok_or_else(|| {
                    invalid(format!(
                        "has entry {:?} with two addresses of one family (expected {POOL_RULE})",
                        entry.trim()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid(format!(
                "has an empty entry (expected {POOL_RULE})"
            )));
        }
        if let [single] = parts.as_slice()
            && single.parse::<IpAddr>().is_err()
            && !single.contains('/')
        {
            return named(key, raw, single);
        }
        let addrs = parts
            .iter()
            .map(|p| parse_host(key, p))
            .collect::<Result<Vec<_>, _>>()?;
        let mixed = addrs.iter().any(|a| a.is_ipv4() != addrs[0].is_ipv4());
        match addrs.as_slice() {
            [a, b] if mixed => vec![IpPair::from_addrs([*a, *b]).unwrap_or_default()],
            _ if mixed => {
                return Err(invalid(format!(
                    "mixes IPv4 and IPv6 addresses; separate dual-stack pairs with ';' (expected {POOL_RULE})"
                )));
            }
            _ => addrs
                .iter()
                .map(|a| IpPair::from_addrs([*a]).unwrap_or_default())
                .collect(),
        }
    };
    check_pairs(&pairs).map_err(invalid)?;
    Ok(PoolRequest::List(pairs))
}

fn named(key: &str, raw: &str, name: &str) -> Result<PoolRequest, AnnotationError> {
    let looks_numeric = name.chars().all(|c| c.is_ascii_digit() || c == '.') || name.contains(':');
    if looks_numeric || !is_dns1123_subdomain(name) {
        return Err(AnnotationError::Invalid {
            key: key.into(),
            value: Shown::new(raw),
            problem: format!("is neither an IP address nor an IPPool name (expected {POOL_RULE})")
                .into(),
        });
    }
    Ok(PoolRequest::Named(name.to_string()))
}

/// Every entry must have the same families (a list of dual pairs, or of one family), and no address may
/// appear twice (two Pods would be promised the same one).
fn check_pairs(pairs: &[IpPair]) -> Result<(), String> {
    let shape = |p: &IpPair| (p.v4.is_some(), p.v6.is_some());
    if let Some(first) = pairs.first()
        && let Some(odd) = pairs.iter().find(|p| shape(p) != shape(first))
    {
        return Err(format!(
            "mixes entry {first} with entry {odd}; every entry needs the same address families (expected {POOL_RULE})"
        ));
    }
    let mut seen = BTreeSet::new();
    for ip in pairs.iter().flat_map(|p| p.addrs().collect::<Vec<_>>()) {
        if !seen.insert(ip) {
            return Err(format!(
                "lists {} address {ip} twice; each address can be given to one Pod only",
                family(ip)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "macvlan.default.kubernetes.io/ip_pool";

    fn list(v: &str) -> Vec<String> {
        match parse_pool(K, v).unwrap() {
            PoolRequest::List(l) => l.iter().map(|p| p.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            list("172.17.0.200,172.17.0.201,172.17.0.202"),
            ["172.17.0.200", "172.17.0.201", "172.17.0.202"]
        );
        assert_eq!(list("10.0.0.1, fd00::1"), ["10.0.0.1,fd00::1"]);
        assert_eq!(
            list("10.0.0.1,fd00::1;10.0.0.2,fd00::2"),
            ["10.0.0.1,fd00::1", "10.0.0.2,fd00::2"]
        );
        assert_eq!(list("fd00::1;fd00::2"), ["fd00::1", "fd00::2"]);
        assert_eq!(list("10.0.0.9"), ["10.0.0.9"]);
        assert_eq!(
            parse_pool(K, "my-pool").unwrap(),
            PoolRequest::Named("my-pool".into())
        );
    }

    #[test]
    fn errors() {
        let e = |v: &str| parse_pool(K, v).unwrap_err().to_string();
        assert!(e("10.0.0.1,fd00::1,10.0.0.2").contains("mixes IPv4 and IPv6"));
        assert!(
            e("10.0.0.1,fd00::1;10.0.0.2")
                .contains("mixes entry 10.0.0.1,fd00::1 with entry 10.0.0.2")
        );
        assert!(e("10.0.0.1,10.0.0.1").contains("lists IPv4 address 10.0.0.1 twice"));
        assert!(e("10.0.0.1,10.0.0.2;10.0.0.3").contains("two addresses of one family"));
        assert!(e("10.0.0.0/24").contains("10.0.0.0/24 is a CIDR"));
        assert!(e("10.0.0").contains("is neither an IP address nor an IPPool name"));
        assert!(e("My_Pool").contains("is neither an IP address nor an IPPool name"));
        assert!(e("10.0.0.1,,10.0.0.2").contains("has an empty entry"));
        assert!(e("10.0.0.1;").contains("which is not an address or a v4,v6 pair"));
    }
}
