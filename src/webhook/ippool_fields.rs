//! The IPPool fields that say who gets the pool's addresses and how: `excludeIPs` (inside `ips`), `routes`
//! (well-formed, of the Subnet's families), `podAffinity`/`namespaceAffinity` (readable selectors) and
//! `default` (one per Subnet). Pure: the IPPool webhook calls them with what it read.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use kube::ResourceExt;

use crate::alloc::{Family, IpRange, SubnetLayout, parse_entry};
use crate::annotations::Shown;
use crate::api::IPPool;
use crate::webhook::addresses::{addr, first_uncovered, num};
use crate::webhook::ippool::PoolRefusal;

/// Every `spec.excludeIPs` entry parses and lies inside `spec.ips` (`ranges`, already checked).
pub(crate) fn check_excludes(pool: &IPPool, ranges: &[IpRange]) -> Result<(), PoolRefusal> {
    let name = pool.name_any();
    for (index, raw) in pool.spec.exclude_ips.iter().enumerate() {
        let refuse = |why: String| PoolRefusal::Exclude {
            pool: name.clone(),
            index,
            entry: Shown::new(raw),
            why,
        };
        let range = parse_entry(raw).map_err(|e| refuse(e.to_string()))?;
        let family = range.family();
        let covers: Vec<(u128, u128)> = ranges
            .iter()
            .filter(|r| r.family() == family)
            .map(|r| (num(r.start()), num(r.end())))
            .collect();
        if let Some(x) = first_uncovered(num(range.start()), num(range.end()), &covers) {
            return Err(refuse(format!(
                "has {}, which is not in spec.ips; exclude only addresses of the pool",
                addr(family, x)
            )));
        }
    }
    Ok(())
}

/// Every `spec.routes` entry: `dst` a CIDR, `gw` an address, of one family the Subnet has.
pub(crate) fn check_routes(pool: &IPPool, shape: &SubnetLayout) -> Result<(), PoolRefusal> {
    let name = pool.name_any();
    for (index, route) in pool.spec.routes.iter().enumerate() {
        let refuse = |problem: String| PoolRefusal::Route {
            pool: name.clone(),
            index,
            problem,
        };
        let dst = match route.dst.as_deref() {
            Some(d) => Some(d.parse::<IpNet>().map_err(|_| {
                refuse(format!(
                    "dst {} is not a CIDR (expected e.g. 10.0.0.0/8, or no dst for the default route)",
                    Shown::new(d)
                ))
            })?),
            None => None,
        };
        let gw = match route.gw.as_deref() {
            Some(g) => Some(g.parse::<IpAddr>().map_err(|_| {
                refuse(format!(
                    "gw {} is not an IP address (expected e.g. 172.17.0.254, or no gw for an on-link route)",
                    Shown::new(g)
                ))
            })?),
            None => None,
        };
        if dst.is_none() && gw.is_none() {
            return Err(refuse(
                "has neither dst nor gw; give a dst, a gw, or both".to_string(),
            ));
        }
        let families: Vec<Family> = dst
            .map(|d| Family::of(d.addr()))
            .into_iter()
            .chain(gw.map(Family::of))
            .collect();
        if families.windows(2).any(|w| w[0] != w[1]) {
            return Err(refuse(
                "dst and gw are of different address families; use one family per route"
                    .to_string(),
            ));
        }
        if let Some(&family) = families.first()
            && shape.cidr(family).is_none()
        {
            return Err(refuse(format!(
                "is {family} but Subnet {} has no {family} CIDR",
                shape.describe()
            )));
        }
    }
    Ok(())
}

/// `podAffinity` and `namespaceAffinity` are selectors nadipam can evaluate.
pub(crate) fn check_selectors(pool: &IPPool) -> Result<(), PoolRefusal> {
    pool.selectors()
        .map(|_| ())
        .map_err(|source| PoolRefusal::NodeScope {
            pool: pool.name_any(),
            source,
        })
}

/// A second default pool of a Subnet is refused, naming the first. `others`: the Subnet's other pools.
pub(crate) fn check_default(
    pool: &IPPool,
    subnet: &str,
    others: &[&Arc<IPPool>],
) -> Result<(), PoolRefusal> {
    if !pool.is_default() {
        return Ok(());
    }
    match others.iter().find(|p| p.is_default()) {
        Some(first) => Err(PoolRefusal::SecondDefault {
            pool: pool.name_any(),
            subnet: subnet.to_string(),
            other: first.name_any(),
        }),
        None => Ok(()),
    }
}
