//! Validating IPPools. Every address of a pool must be one a Pod can get from its Subnet, and belong to no other
//! pool of the Subnet (else two pools would promise it). An update may not drop addresses Pods hold from the
//! pool, and a pool is not deleted while leases name it.

use std::net::IpAddr;
use std::sync::Arc;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, ResourceExt};

use crate::alloc::{
    AllocError, Family, IpPair, IpRange, LayoutProblem, RangeError, SubnetLayout, parse_entry,
};
use crate::annotations::Shown;
use crate::api::{IPLease, IPPool, NetworkAttachmentDefinition, Subnet, set_fields};
use crate::cache::layout;
use crate::context::Context;
use crate::placement::SelectorError;
use crate::webhook::addresses::{addr, first_uncovered, num, static_checker};
use crate::webhook::codes::{CONFLICT, INVALID};
use crate::webhook::in_use::{InUse, by_address, more};
use crate::webhook::ippool_fields::{check_default, check_excludes, check_routes, check_selectors};
use crate::webhook::names::is_dns1123_label;
use crate::webhook::node_scope::warn_unmatched;
use crate::webhook::pool_subnet::{PoolSubnetError, pool_subnet};
use crate::webhook::respond;
use crate::webhook::respond::{Refusal, answer, ignored_field};

pub async fn validate(ctx: Arc<Context>, req: AdmissionRequest<IPPool>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let outcome = match (&req.operation, &req.object) {
        (Operation::Create | Operation::Update, Some(new)) => {
            let old = req.old_object.as_ref();
            let subnets = match find_subnets(&ctx, new).await {
                Ok(s) => s,
                Err(e) => {
                    return respond::error(
                        &ctx,
                        resp,
                        &format!("reading Subnets for IPPool {}: {e}", new.name_any()),
                    );
                }
            };
            let names: Vec<String> = [Some(new), old]
                .into_iter()
                .flatten()
                .filter_map(|p| pool_subnet(p, &subnets).ok())
                .map(|s| s.name_any())
                .collect();
            let pools = ctx.cache.pools.state();
            let leases = ctx
                .cache
                .leases
                .state_filter(|l| names.contains(&l.spec.subnet));
            let nads = ctx.cache.nads.state();
            let scope = Scope {
                subnets: &subnets,
                pools: &pools,
                leases: &leases,
                nads: &nads,
            };
            check_pool(new, old, &scope).map(|mut warnings| {
                if old.is_none_or(|o| o.spec != new.spec) {
                    let scope = new.node_scope().ok().flatten();
                    warnings.extend(warn_unmatched(&ctx.cache, "IPPool", &new.name_any(), scope));
                }
                warnings
            })
        }
        (Operation::Delete, _) => {
            let leases = ctx
                .cache
                .leases
                .state_filter(|l| l.spec.pool.as_deref() == Some(req.name.as_str()));
            check_delete(&req.name, &leases).map(|()| Vec::new())
        }
        _ => return resp,
    };
    answer(&ctx, resp, outcome)
}

/// The Subnets from the cache, else from the apiserver when the cache has none the pool names: a Subnet
/// applied together with the pool may not have reached the cache yet.
async fn find_subnets(ctx: &Context, pool: &IPPool) -> Result<Vec<Arc<Subnet>>, kube::Error> {
    let cached = ctx.cache.subnets.state();
    if pool_subnet(pool, &cached).is_ok() {
        return Ok(cached);
    }
    let listed = Api::<Subnet>::all(ctx.client.clone())
        .list(&Default::default())
        .await?;
    Ok(listed.items.into_iter().map(Arc::new).collect())
}

/// What an IPPool is checked against.
pub(crate) struct Scope<'a> {
    /// Every Subnet; the pool's is the one `spec.subnet` names ([`pool_subnet`]).
    pub subnets: &'a [Arc<Subnet>],
    /// Every IPPool (the pool itself is skipped by name).
    pub pools: &'a [Arc<IPPool>],
    /// Leases of the pool's Subnet (and of its old Subnet on UPDATE).
    pub leases: &'a [Arc<IPLease>],
    pub nads: &'a [Arc<NetworkAttachmentDefinition>],
}

/// Why an IPPool is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolRefusal {
    #[error(transparent)]
    Subnet(#[from] PoolSubnetError),
    #[error("IPPool {pool}: {source}")]
    NodeScope { pool: String, source: SelectorError },
    #[error("IPPool {pool}: Subnet {subnet} is invalid ({problem}); fix the Subnet first")]
    BadSubnet {
        pool: String,
        subnet: String,
        problem: Box<LayoutProblem>,
    },
    #[error("IPPool {pool}: spec.ips[{index}]: {source}")]
    Entry {
        pool: String,
        index: usize,
        source: Box<RangeError>,
    },
    #[error(
        "IPPool {pool}: spec.ips[{index}] {entry} is {family} but Subnet {subnet} has no {family} CIDR"
    )]
    EntryFamily {
        pool: String,
        index: usize,
        entry: Shown,
        family: Family,
        subnet: String,
    },
    #[error(
        "IPPool {pool}: spec.ips[{index}] {entry} is not inside Subnet {subnet}; every entry must lie inside the \
         Subnet's cidrBlock"
    )]
    EntryOutside {
        pool: String,
        index: usize,
        entry: Shown,
        subnet: String,
    },
    #[error("IPPool {pool}: spec.ips[{index}] {entry} holds no address a Pod can get: {why}")]
    EntryUnusable {
        pool: String,
        index: usize,
        entry: Shown,
        why: String,
    },
    #[error(
        "IPPool {pool}: spec.ips[{index}] {entry} overlaps IPPool {other} (spec.ips[{other_index}] {other_entry}) at \
         {ip}; an address may belong to one IPPool only"
    )]
    Overlap {
        pool: String,
        index: usize,
        entry: Shown,
        other: String,
        other_index: usize,
        other_entry: Shown,
        ip: IpAddr,
    },
    #[error("IPPool {pool}: spec.gateway {value} {problem}")]
    Gateway {
        pool: String,
        value: Shown,
        problem: String,
    },
    #[error(
        "IPPool {pool}: spec.multusName[{index}] {value} is not <namespace>/<nad> (e.g. default/macvlan)"
    )]
    MultusName {
        pool: String,
        index: usize,
        value: Shown,
    },
    #[error(
        "IPPool {pool}: this change removes {ip} from spec.ips, but {holder} holds it from this pool (IPLease \
         {lease}); keep the address or delete that Pod first{}",
        more(*others)
    )]
    Removes {
        pool: String,
        ip: IpAddr,
        holder: String,
        lease: String,
        others: usize,
    },
    #[error("IPPool {pool} is in use by {in_use}")]
    InUse { pool: String, in_use: InUse },
    #[error("IPPool {pool}: spec.excludeIPs[{index}] {entry} {why}")]
    Exclude {
        pool: String,
        index: usize,
        entry: Shown,
        why: String,
    },
    #[error("IPPool {pool}: spec.routes[{index}] {problem}")]
    Route {
        pool: String,
        index: usize,
        problem: String,
    },
    #[error(
        "IPPool {pool}: spec.default is true, but IPPool {other} is already the default pool of Subnet {subnet}; a \
         Subnet has at most one default pool: set spec.default to false here, or on IPPool {other} first"
    )]
    SecondDefault {
        pool: String,
        subnet: String,
        other: String,
    },
}

impl Refusal for PoolRefusal {
    fn reason(&self) -> &'static str {
        match self {
            PoolRefusal::Subnet(e) => e.reason(),
            PoolRefusal::BadSubnet { .. } => "bad_subnet",
            PoolRefusal::Overlap { .. } => "pool_overlap",
            PoolRefusal::Removes { .. } | PoolRefusal::InUse { .. } => "in_use",
            PoolRefusal::SecondDefault { .. } => "second_default",
            _ => "bad_pool",
        }
    }

    fn code(&self) -> u16 {
        match self {
            PoolRefusal::Subnet(e) => e.code(),
            PoolRefusal::Overlap { .. }
            | PoolRefusal::Removes { .. }
            | PoolRefusal::InUse { .. }
            | PoolRefusal::SecondDefault { .. } => CONFLICT,
            _ => INVALID,
        }
    }
}

/// One parsed `spec.ips` entry, with its index and spelling for messages.
struct Entry<'a> {
    index: usize,
    raw: &'a str,
    range: IpRange,
}

/// The entries that parse (other pools, and the old version of this one, are only read, not judged).
fn readable(pool: &IPPool) -> Vec<Entry<'_>> {
    pool.spec
        .ips
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| {
            parse_entry(raw)
                .ok()
                .map(|range| Entry { index, raw, range })
        })
        .collect()
}

fn covers(entries: &[Entry<'_>], ip: IpAddr) -> bool {
    entries.iter().any(|e| e.range.contains(ip))
}

/// CREATE or UPDATE of `new` (`old` on UPDATE). Ok carries warnings. An UPDATE that leaves the spec alone is
/// always allowed, so a pool that predates these rules can still be relabelled and deleted.
pub(crate) fn check_pool(
    new: &IPPool,
    old: Option<&IPPool>,
    scope: &Scope<'_>,
) -> Result<Vec<String>, PoolRefusal> {
    if old.is_some_and(|o| o.spec == new.spec) {
        return Ok(Vec::new());
    }
    let pool = new.name_any();
    let subnet: &Subnet = pool_subnet(new, scope.subnets)?;
    let subnet_name = &subnet.name_any();
    let shape = layout(subnet).map_err(|e| PoolRefusal::BadSubnet {
        pool: pool.clone(),
        subnet: subnet_name.clone(),
        problem: Box::new(e.problem),
    })?;
    let mut warnings: Vec<String> = set_fields(&new.spec.spiderpool)
        .iter()
        .map(|field| spiderpool_warning(&pool, field))
        .collect();
    new.node_scope().map_err(|source| PoolRefusal::NodeScope {
        pool: pool.clone(),
        source,
    })?;
    let entries = check_entries(&pool, &new.spec.ips, &shape)?;
    let ranges: Vec<IpRange> = entries.iter().map(|e| e.range).collect();
    check_excludes(new, &ranges)?;
    check_routes(new, &shape)?;
    check_selectors(new)?;
    let siblings: Vec<&Arc<IPPool>> = scope
        .pools
        .iter()
        .filter(|p| p.name_any() != pool && in_subnet(p, scope.subnets, subnet_name))
        .collect();
    check_default(new, subnet_name, &siblings)?;
    if let Some(value) = new.spec.gateway.as_deref().filter(|g| !g.trim().is_empty()) {
        check_gateway(&shape, value).map_err(|problem| PoolRefusal::Gateway {
            pool: pool.clone(),
            value: Shown::new(value),
            problem,
        })?;
    }
    check_multus_names(&pool, &new.spec.multus_name, scope, &mut warnings)?;

    // What this version adds: the old version's addresses (same Subnet) were accepted before.
    let old_entries: Vec<Entry<'_>> = old
        .filter(|o| in_subnet(o, scope.subnets, subnet_name))
        .map(readable)
        .unwrap_or_default();
    check_overlaps(&pool, subnet, &entries, &old_entries, scope, &mut warnings)?;
    if let Some(old) = old {
        check_removed(&pool, old, subnet_name, &entries, scope)?;
    }
    warnings.extend(outsiders_warning(
        &pool,
        subnet_name,
        &entries,
        &old_entries,
        scope,
    ));
    Ok(warnings)
}

/// Every `spec.ips` entry parses, lies in the Subnet's CIDR of its family and holds an address Pods may get.
fn check_entries<'a>(
    pool: &str,
    ips: &'a [String],
    shape: &SubnetLayout,
) -> Result<Vec<Entry<'a>>, PoolRefusal> {
    let checker = static_checker(shape);
    let desc = shape.describe();
    let mut entries = Vec::with_capacity(ips.len());
    for (index, raw) in ips.iter().enumerate() {
        let range = parse_entry(raw).map_err(|e| PoolRefusal::Entry {
            pool: pool.to_string(),
            index,
            source: Box::new(e),
        })?;
        let family = range.family();
        let Some(cidr) = shape.cidr(family) else {
            return Err(PoolRefusal::EntryFamily {
                pool: pool.to_string(),
                index,
                entry: Shown::new(raw),
                family,
                subnet: desc,
            });
        };
        if !(cidr.contains(&range.start()) && cidr.contains(&range.end())) {
            return Err(PoolRefusal::EntryOutside {
                pool: pool.to_string(),
                index,
                entry: Shown::new(raw),
                subnet: desc,
            });
        }
        let why = if range.start() == range.end() {
            checker.check(range.start()).err().map(|e| e.to_string())
        } else {
            (!has_assignable(shape, &range)).then(|| {
                format!(
                    "each of its addresses is the gateway, excluded by excludeIps, or the network or broadcast \
                     address of subnet {desc}"
                )
            })
        };
        if let Some(why) = why {
            return Err(PoolRefusal::EntryUnusable {
                pool: pool.to_string(),
                index,
                entry: Shown::new(raw),
                why,
            });
        }
        entries.push(Entry { index, raw, range });
    }
    Ok(entries)
}

/// Every `spec.multusName` is `<namespace>/<nad>`; one naming no NAD yet is warned about.
fn check_multus_names(
    pool: &str,
    names: &[String],
    scope: &Scope<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), PoolRefusal> {
    for (index, value) in names.iter().enumerate() {
        let Some((ns, nad)) = value.split_once('/').filter(|(ns, nad)| {
            is_dns1123_label(ns) && nad.len() <= 253 && nad.split('.').all(is_dns1123_label)
        }) else {
            return Err(PoolRefusal::MultusName {
                pool: pool.to_string(),
                index,
                value: Shown::new(value),
            });
        };
        let known = scope.nads.iter().any(|n| {
            n.metadata.namespace.as_deref() == Some(ns) && n.metadata.name.as_deref() == Some(nad)
        });
        if !known {
            warnings.push(format!(
                "IPPool {pool}: spec.multusName[{index}] {value} names no NetworkAttachmentDefinition yet; the pool \
                 serves only the networks listed there"
            ));
        }
    }
    Ok(())
}

/// An UPDATE may not take from the pool an address one of its leases holds.
fn check_removed(
    pool: &str,
    old: &IPPool,
    subnet_name: &str,
    entries: &[Entry<'_>],
    scope: &Scope<'_>,
) -> Result<(), PoolRefusal> {
    let before = readable(old);
    let old_subnet =
        pool_subnet(old, scope.subnets).map_or_else(|_| old.spec.subnet.clone(), |s| s.name_any());
    let removed: Vec<(IpAddr, &IPLease)> = by_address(
        scope
            .leases
            .iter()
            .filter(|l| l.spec.subnet == old_subnet && l.spec.pool.as_deref() == Some(pool)),
    )
    .into_iter()
    .filter(|(ip, l)| {
        covers(&before, *ip) && !(l.spec.subnet == subnet_name && covers(entries, *ip))
    })
    .collect();
    match removed.first() {
        Some((ip, lease)) => Err(PoolRefusal::Removes {
            pool: pool.to_string(),
            ip: *ip,
            holder: lease.holder(),
            lease: lease.name_any(),
            others: removed.len() - 1,
        }),
        None => Ok(()),
    }
}

/// The warning for addresses this version adds that leases outside the pool already hold.
fn outsiders_warning(
    pool: &str,
    subnet_name: &str,
    entries: &[Entry<'_>],
    old_entries: &[Entry<'_>],
    scope: &Scope<'_>,
) -> Option<String> {
    let outsiders: Vec<(IpAddr, &IPLease)> = by_address(
        scope
            .leases
            .iter()
            .filter(|l| l.spec.subnet == subnet_name && l.spec.pool.as_deref() != Some(pool)),
    )
    .into_iter()
    .filter(|(ip, _)| covers(entries, *ip) && !covers(old_entries, *ip))
    .collect();
    let (ip, lease) = outsiders.first()?;
    Some(format!(
        "IPPool {pool}: {ip} in spec.ips is held by {} (IPLease {}), which did not get it from this pool; it \
         joins the pool when released{}",
        lease.holder(),
        lease.name_any(),
        more(outsiders.len() - 1)
    ))
}

/// Whether `pool` belongs to Subnet `name`: its spec.subnet resolves to it among `subnets`. A CIDR held by
/// Subnets of other providers too resolves to one of them only, so another Subnet's pool does not count.
fn in_subnet(pool: &IPPool, subnets: &[Arc<Subnet>], name: &str) -> bool {
    pool_subnet(pool, subnets).is_ok_and(|s| s.name_any() == name)
}

/// The warning for a SpiderIPPool field nadipam keeps but does not act on.
fn spiderpool_warning(pool: &str, field: &str) -> String {
    ignored_field("IPPool", pool, field)
}

/// True when `range` (inside the Subnet) holds an address that is neither network, broadcast, gateway nor
/// excluded.
fn has_assignable(shape: &SubnetLayout, range: &IpRange) -> bool {
    let family = range.family();
    let Some(usable) = shape.usable(family) else {
        return false;
    };
    let lo = num(range.start()).max(num(usable.start()));
    let hi = num(range.end()).min(num(usable.end()));
    if lo > hi {
        return false;
    }
    let mut reserved: Vec<(u128, u128)> = shape
        .excluded(family)
        .iter()
        .map(|r| (num(r.start()), num(r.end())))
        .collect();
    if let Some(gw) = shape.gateway(family) {
        reserved.push((num(gw), num(gw)));
    }
    first_uncovered(lo, hi, &reserved).is_some()
}

/// The gateway override: one address per family of the Subnet, inside it and not its network or broadcast
/// address. Err is the problem, worded to follow the quoted value.
fn check_gateway(shape: &SubnetLayout, value: &str) -> Result<(), String> {
    let expected = format!(
        "expected one address of Subnet {} per family, written v4,v6 for dual stack",
        shape.describe()
    );
    let addrs: Vec<IpAddr> = value
        .split(',')
        .map(|p| p.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("is not an IP address ({expected})"))?;
    if IpPair::from_addrs(addrs.iter().copied()).is_none() {
        return Err(format!("gives two addresses of one family ({expected})"));
    }
    for ip in addrs {
        match static_checker(shape).check(ip) {
            Err(AllocError::Outside { .. }) => {
                return Err(format!(
                    "has {ip}, which is outside Subnet {}; use an address inside it",
                    shape.describe()
                ));
            }
            Err(AllocError::NetworkOrBroadcast { what, .. }) => {
                let usable = shape
                    .usable(Family::of(ip))
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "has {ip}, which is the {what} of Subnet {}; use an address in {usable}",
                    shape.describe()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses addresses this version adds that another pool of the Subnet already has; overlaps that were
/// already there only warn, so the pool can still be edited (e.g. to remove them).
fn check_overlaps(
    pool: &str,
    subnet: &Subnet,
    entries: &[Entry<'_>],
    old_entries: &[Entry<'_>],
    scope: &Scope<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), PoolRefusal> {
    let mut others: Vec<&Arc<IPPool>> = scope
        .pools
        .iter()
        .filter(|p| p.name_any() != pool && in_subnet(p, scope.subnets, &subnet.name_any()))
        .collect();
    others.sort_by_key(|p| p.name_any());
    let old_bounds = |family: Family| -> Vec<(u128, u128)> {
        old_entries
            .iter()
            .filter(|o| o.range.family() == family)
            .map(|o| (num(o.range.start()), num(o.range.end())))
            .collect()
    };
    for other in others {
        let theirs = readable(other);
        let mut warned = false;
        for mine in entries {
            for t in theirs
                .iter()
                .filter(|t| t.range.family() == mine.range.family())
            {
                let lo = num(mine.range.start()).max(num(t.range.start()));
                let hi = num(mine.range.end()).min(num(t.range.end()));
                if lo > hi {
                    continue;
                }
                let (at, added) = match first_uncovered(lo, hi, &old_bounds(mine.range.family())) {
                    Some(x) => (x, true),
                    None => (lo, false),
                };
                let refusal = PoolRefusal::Overlap {
                    pool: pool.to_string(),
                    index: mine.index,
                    entry: Shown::new(mine.raw),
                    other: other.name_any(),
                    other_index: t.index,
                    other_entry: Shown::new(t.raw),
                    ip: addr(mine.range.family(), at),
                };
                if added {
                    return Err(refusal);
                }
                if !warned {
                    warned = true;
                    warnings.push(refusal.to_string());
                }
            }
        }
    }
    Ok(())
}

/// DELETE of IPPool `name`, refused while leases taken from it remain.
pub(crate) fn check_delete(name: &str, leases: &[Arc<IPLease>]) -> Result<(), PoolRefusal> {
    match InUse::of(leases) {
        Some(in_use) => Err(PoolRefusal::InUse {
            pool: name.to_string(),
            in_use,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IPPoolSpec, Protocol, SubnetSpec};
    use crate::webhook::in_use::tests::lease;

    /// The seed guide's Subnet.
    fn macvlan() -> Subnet {
        Subnet::new(
            "macvlan",
            SubnetSpec {
                protocol: Some(Protocol::Ipv4),
                cidr_block: "172.17.0.0/16".into(),
                gateway: Some("172.17.0.1".into()),
                exclude_ips: vec!["172.17.0.0..172.17.0.10".into()],
                provider: "macvlan.default".into(),
                namespaces: Vec::new(),
                routes: Vec::new(),
                node_selector: None,
                kube_ovn: Default::default(),
            },
        )
    }

    fn pool(name: &str, subnet: &str, ips: &[&str]) -> IPPool {
        IPPool::new(
            name,
            IPPoolSpec {
                subnet: subnet.into(),
                ips: ips.iter().map(|s| s.to_string()).collect(),
                ..IPPoolSpec::default()
            },
        )
    }

    fn check(
        new: &IPPool,
        old: Option<&IPPool>,
        pools: &[Arc<IPPool>],
        leases: &[Arc<IPLease>],
    ) -> Result<Vec<String>, PoolRefusal> {
        let subnet = macvlan();
        let nads = vec![Arc::new(NetworkAttachmentDefinition::new(
            "default", "macvlan", "{}",
        ))];
        check_pool(
            new,
            old,
            &Scope {
                subnets: &[Arc::new(subnet)],
                pools,
                leases,
                nads: &nads,
            },
        )
    }

    /// The message of refusing `ips` in a fresh pool `p`.
    fn refused(ips: &[&str]) -> String {
        check(&pool("p", "macvlan", ips), None, &[], &[])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_guide_pool_is_accepted() {
        let mut p = pool(
            "ippool-test",
            "macvlan",
            &["172.17.0.200-172.17.0.210", "172.17.0.220", "172.17.0.0/28"],
        );
        p.spec.gateway = Some("172.17.0.254".into());
        p.spec.multus_name = vec!["default/macvlan".into()];
        assert_eq!(check(&p, None, &[], &[]).unwrap(), Vec::<String>::new());
        p.spec.multus_name = vec!["kube-system/ovs-conf".into()];
        assert_eq!(
            check(&p, None, &[], &[]).unwrap(),
            [
                "IPPool ippool-test: spec.multusName[0] kube-system/ovs-conf names no NetworkAttachmentDefinition yet; \
              the pool serves only the networks listed there"
            ]
        );
    }

    /// The Spiderpool guide's pool (tests/fixtures/spiderippool.yaml), checked against `subnets` and the guide's NAD.
    fn check_guide_pool(
        edit: impl FnOnce(&mut IPPool),
        subnets: &[Arc<Subnet>],
        pools: &[Arc<IPPool>],
    ) -> Result<Vec<String>, PoolRefusal> {
        let mut p: IPPool =
            serde_saphyr::from_str(include_str!("../../tests/fixtures/spiderippool.yaml")).unwrap();
        edit(&mut p);
        let nads = vec![Arc::new(NetworkAttachmentDefinition::new(
            "kube-system",
            "ovs-conf",
            "{}",
        ))];
        let scope = Scope {
            subnets,
            pools,
            leases: &[],
            nads: &nads,
        };
        check_pool(&p, None, &scope)
    }

    fn underlay() -> Arc<Subnet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": "underlay"},
                "spec": {"cidrBlock": "172.18.0.0/16", "gateway": "172.18.0.1", "provider": "ovs-conf.kube-system"}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_spiderpool_guide_pool_names_its_subnet_by_cidr() {
        let subnets = [Arc::new(macvlan()), underlay()];
        assert_eq!(
            check_guide_pool(|_| {}, &subnets, &[]).unwrap(),
            Vec::<String>::new()
        );
        // Refused with pool_subnet's error (its messages are asserted in rules.rs).
        let e = check_guide_pool(|_| {}, &subnets[..1], &[]).unwrap_err();
        assert!(
            matches!(&e, PoolRefusal::Subnet(PoolSubnetError::NoCidr { provider, .. }) if provider == "ovs-conf.kube-system"),
            "{e}"
        );
        assert_eq!((e.reason(), e.code()), ("no_subnet", 404));
        // A pool of another provider's Subnet with the same CIDR does not share the addresses.
        let mut other = (*underlay()).clone();
        other.metadata.name = Some("other".into());
        other.spec.provider = "macvlan.default".into();
        let with_other = [underlay(), Arc::new(other)];
        let theirs = Arc::new(pool("b", "other", &["172.18.30.135"]));
        assert_eq!(
            check_guide_pool(|_| {}, &with_other, &[theirs]).unwrap(),
            Vec::<String>::new()
        );
        // A pool naming the same Subnet by name shares its addresses.
        let a = Arc::new(pool("a", "underlay", &["172.18.30.135"]));
        assert_eq!(
            check_guide_pool(|_| {}, &subnets, &[a])
                .unwrap_err()
                .to_string(),
            "IPPool ippool-test: spec.ips[0] \"172.18.30.131-172.18.30.140\" overlaps IPPool a (spec.ips[0] \
             \"172.18.30.135\") at 172.18.30.135; an address may belong to one IPPool only"
        );
    }

    #[test]
    fn spiderpool_fields_apply_and_only_ipversion_and_vlan_warn() {
        let subnets = [underlay()];
        let warnings = check_guide_pool(
            |p| {
                let spider: serde_json::Value = serde_json::json!({
                    "apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": "ippool-test"},
                    "spec": {"subnet": "172.18.0.0/16", "ips": ["172.18.30.131-172.18.30.140"],
                        "excludeIPs": ["172.18.30.135"], "default": true, "disable": false,
                        "routes": [{"dst": "10.0.0.0/8", "gw": "172.18.0.254"}], "vlan": 0, "ipVersion": 4,
                        "podAffinity": {"matchLabels": {"app": "test-app"}},
                        "namespaceAffinity": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}
                });
                *p = serde_json::from_value(spider).unwrap();
            },
            &subnets,
            &[],
        )
        .unwrap();
        assert_eq!(
            warnings,
            [
                "IPPool ippool-test: spec.ipVersion has no effect in nadipam (secondary-network IPAM): kept, ignored",
                "IPPool ippool-test: spec.vlan has no effect in nadipam (secondary-network IPAM): kept, ignored",
            ]
        );
    }

    /// The message refusing the guide pool edited by `edit`, against `others`.
    fn refused_guide(
        edit: impl FnOnce(&mut IPPool),
        others: &[Arc<IPPool>],
    ) -> (String, &'static str, u16) {
        let e = check_guide_pool(edit, &[underlay()], others).unwrap_err();
        (e.to_string(), e.reason(), e.code())
    }

    #[test]
    fn exclude_ips_lie_inside_the_pool() {
        assert_eq!(
            refused_guide(|p| p.spec.exclude_ips = vec!["172.18.30.139-172.18.30.141".into()], &[]),
            (
                "IPPool ippool-test: spec.excludeIPs[0] \"172.18.30.139-172.18.30.141\" has 172.18.30.141, which is \
                 not in spec.ips; exclude only addresses of the pool"
                    .to_string(),
                "bad_pool",
                422
            )
        );
        let (text, _, _) = refused_guide(|p| p.spec.exclude_ips = vec!["x".into()], &[]);
        assert!(
            text.starts_with("IPPool ippool-test: spec.excludeIPs[0] \"x\" "),
            "{text}"
        );
        assert!(
            check_guide_pool(
                |p| p.spec.exclude_ips = vec!["172.18.30.131..172.18.30.133".into()],
                &[underlay()],
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn routes_are_well_formed() {
        fn route(dst: Option<&'static str>, gw: Option<&'static str>) -> impl FnOnce(&mut IPPool) {
            move |p: &mut IPPool| {
                p.spec.routes = vec![crate::api::RouteSpec {
                    dst: dst.map(str::to_string),
                    gw: gw.map(str::to_string),
                }]
            }
        }
        assert_eq!(
            refused_guide(route(Some("10.0.0.0/33"), Some("172.18.0.254")), &[]),
            (
                "IPPool ippool-test: spec.routes[0] dst \"10.0.0.0/33\" is not a CIDR (expected e.g. 10.0.0.0/8, or \
                 no dst for the default route)"
                    .to_string(),
                "bad_pool",
                422
            )
        );
        assert_eq!(
            refused_guide(route(None, Some("gw")), &[]).0,
            "IPPool ippool-test: spec.routes[0] gw \"gw\" is not an IP address (expected e.g. 172.18.0.254, or no gw \
             for an on-link route)"
                .replace("172.18.0.254", "172.17.0.254")
        );
        assert_eq!(
            refused_guide(route(Some("fd00::/64"), Some("172.18.0.254")), &[]).0,
            "IPPool ippool-test: spec.routes[0] dst and gw are of different address families; use one family per \
             route"
        );
        assert_eq!(
            refused_guide(route(Some("fd00::/64"), None), &[]).0,
            "IPPool ippool-test: spec.routes[0] is IPv6 but Subnet underlay (172.18.0.0/16) has no IPv6 CIDR"
        );
        assert_eq!(
            refused_guide(route(None, None), &[]).0,
            "IPPool ippool-test: spec.routes[0] has neither dst nor gw; give a dst, a gw, or both"
        );
        assert!(check_guide_pool(route(None, Some("172.18.0.254")), &[underlay()], &[]).is_ok());
    }

    #[test]
    fn selectors_must_be_readable() {
        assert_eq!(
            refused_guide(
                |p| {
                    p.spec.pod_affinity = serde_json::from_value(serde_json::json!({"matchExpressions": [
                        {"key": "app", "operator": "In", "values": []}]}))
                    .unwrap()
                },
                &[]
            ),
            (
                "IPPool ippool-test: spec.podAffinity.matchExpressions[0]: operator In needs at least one value in \
                 values"
                    .to_string(),
                "bad_pool",
                422
            )
        );
    }

    #[test]
    fn one_default_pool_per_subnet() {
        let mut first = pool("first", "underlay", &["172.18.31.1-172.18.31.9"]);
        first.spec.default = Some(true);
        let first = Arc::new(first);
        assert_eq!(
            refused_guide(|p| p.spec.default = Some(true), std::slice::from_ref(&first)),
            (
                "IPPool ippool-test: spec.default is true, but IPPool first is already the default pool of Subnet \
                 underlay; a Subnet has at most one default pool: set spec.default to false here, or on IPPool \
                 first first"
                    .to_string(),
                "second_default",
                409
            )
        );
        // Not a default itself, or the other is not: fine.
        assert!(check_guide_pool(|_| {}, &[underlay()], std::slice::from_ref(&first)).is_ok());
        let plain = Arc::new(pool("first", "underlay", &["172.18.31.1-172.18.31.9"]));
        assert!(check_guide_pool(|p| p.spec.default = Some(true), &[underlay()], &[plain]).is_ok());
    }

    #[test]
    fn the_subnet_must_exist_and_be_valid() {
        let p = pool("p", "nope", &["172.17.0.200"]);
        let scope = Scope {
            subnets: &[],
            pools: &[],
            leases: &[],
            nads: &[],
        };
        let e = check_pool(&p, None, &scope).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPPool p: spec.subnet nope names no Subnet; create Subnet nope first or fix spec.subnet"
        );
        assert_eq!((e.reason(), e.code()), ("no_subnet", 404));
        let mut bad = macvlan();
        bad.spec.gateway = Some("10.0.0.1".into());
        let bad = [Arc::new(bad)];
        let scope = Scope {
            subnets: &bad,
            pools: &[],
            leases: &[],
            nads: &[],
        };
        let e = check_pool(&pool("p", "macvlan", &["172.17.0.200"]), None, &scope).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPPool p: Subnet macvlan is invalid (gateway 10.0.0.1 is outside 172.17.0.0/16 (expected an address \
             from 172.17.0.1 to 172.17.255.254)); fix the Subnet first"
        );
        assert_eq!((e.reason(), e.code()), ("bad_subnet", 422));
    }

    #[test]
    fn entries_must_be_assignable_addresses_of_the_subnet() {
        assert_eq!(
            refused(&["172.17.0.200", "172.17.0.9..x"]),
            "IPPool p: spec.ips[1]: range entry \"172.17.0.9..x\" is not valid: \"x\" is not an IP address (expected \
             an address such as 10.0.0.5, a CIDR such as 10.0.0.0/24, a range 10.0.0.1..10.0.0.9 or \
             10.0.0.1-10.0.0.9 (IPv6 alike))"
        );
        assert_eq!(
            refused(&["fd00::1"]),
            "IPPool p: spec.ips[0] \"fd00::1\" is IPv6 but Subnet macvlan (172.17.0.0/16) has no IPv6 CIDR"
        );
        assert_eq!(
            refused(&["172.17.255.250..172.18.0.5"]),
            "IPPool p: spec.ips[0] \"172.17.255.250..172.18.0.5\" is not inside Subnet macvlan (172.17.0.0/16); \
             every entry must lie inside the Subnet's cidrBlock"
        );
        assert_eq!(
            refused(&["10.0.0.1"]),
            "IPPool p: spec.ips[0] \"10.0.0.1\" is not inside Subnet macvlan (172.17.0.0/16); every entry must lie \
             inside the Subnet's cidrBlock"
        );
        assert_eq!(
            refused(&["172.17.0.1"]),
            "IPPool p: spec.ips[0] \"172.17.0.1\" holds no address a Pod can get: 172.17.0.1 is the gateway of subnet \
             macvlan (172.17.0.0/16) and cannot be assigned to a Pod"
        );
        assert_eq!(
            refused(&["172.17.0.5"]),
            "IPPool p: spec.ips[0] \"172.17.0.5\" holds no address a Pod can get: 172.17.0.5 is excluded from subnet \
             macvlan (172.17.0.0/16) by excludeIps entry 172.17.0.0..172.17.0.10"
        );
        assert_eq!(
            refused(&["172.17.255.255"]),
            "IPPool p: spec.ips[0] \"172.17.255.255\" holds no address a Pod can get: 172.17.255.255 is the \
             broadcast address of subnet macvlan (172.17.0.0/16) and cannot be assigned to a Pod"
        );
        assert_eq!(
            refused(&["172.17.0.0-172.17.0.10"]),
            "IPPool p: spec.ips[0] \"172.17.0.0-172.17.0.10\" holds no address a Pod can get: each of its addresses \
             is the gateway, excluded by excludeIps, or the network or broadcast address of subnet macvlan \
             (172.17.0.0/16)"
        );
        let e = check(&pool("p", "macvlan", &["172.17.0.1"]), None, &[], &[]).unwrap_err();
        assert_eq!((e.reason(), e.code()), ("bad_pool", 422));
        // A range that only touches reserved addresses at its ends is fine.
        assert!(
            check(
                &pool("p", "macvlan", &["172.17.0.0..172.17.0.11"]),
                None,
                &[],
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn gateway_and_multus_names() {
        let with_gw = |gw: &str| {
            let mut p = pool("p", "macvlan", &["172.17.0.200"]);
            p.spec.gateway = Some(gw.into());
            check(&p, None, &[], &[]).map_err(|e| e.to_string())
        };
        assert!(with_gw("172.17.0.254").is_ok());
        assert!(with_gw("172.17.0.5").is_ok());
        assert_eq!(
            with_gw("gw").unwrap_err(),
            "IPPool p: spec.gateway \"gw\" is not an IP address (expected one address of Subnet macvlan \
             (172.17.0.0/16) per family, written v4,v6 for dual stack)"
        );
        assert_eq!(
            with_gw("172.17.0.1,172.17.0.2").unwrap_err(),
            "IPPool p: spec.gateway \"172.17.0.1,172.17.0.2\" gives two addresses of one family (expected one \
             address of Subnet macvlan (172.17.0.0/16) per family, written v4,v6 for dual stack)"
        );
        assert_eq!(
            with_gw("10.0.0.1").unwrap_err(),
            "IPPool p: spec.gateway \"10.0.0.1\" has 10.0.0.1, which is outside Subnet macvlan (172.17.0.0/16); use \
             an address inside it"
        );
        assert_eq!(
            with_gw("172.17.0.0").unwrap_err(),
            "IPPool p: spec.gateway \"172.17.0.0\" has 172.17.0.0, which is the network address of Subnet macvlan \
             (172.17.0.0/16); use an address in 172.17.0.1..172.17.255.254"
        );
        let mut p = pool("p", "macvlan", &["172.17.0.200"]);
        p.spec.multus_name = vec!["default/macvlan".into(), "macvlan".into()];
        let e = check(&p, None, &[], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPPool p: spec.multusName[1] \"macvlan\" is not <namespace>/<nad> (e.g. default/macvlan)"
        );
        assert_eq!((e.reason(), e.code()), ("bad_pool", 422));
        p.spec.multus_name = vec!["default/Macvlan".into()];
        assert!(check(&p, None, &[], &[]).is_err());
    }

    #[test]
    fn pools_of_a_subnet_do_not_overlap() {
        let others = vec![
            Arc::new(pool(
                "a",
                "macvlan",
                &["172.17.1.0/24", "172.17.0.205..172.17.0.230"],
            )),
            Arc::new(pool("elsewhere", "other", &["172.17.0.200-172.17.0.210"])),
        ];
        let b = pool("b", "macvlan", &["172.17.0.200-172.17.0.210"]);
        let e = check(&b, None, &others, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPPool b: spec.ips[0] \"172.17.0.200-172.17.0.210\" overlaps IPPool a (spec.ips[1] \
             \"172.17.0.205..172.17.0.230\") at 172.17.0.205; an address may belong to one IPPool only"
        );
        assert_eq!((e.reason(), e.code()), ("pool_overlap", 409));
        // The pool itself (by name) is not another pool.
        let a2 = pool("a", "macvlan", &["172.17.0.205..172.17.0.240"]);
        assert!(check(&a2, None, &others, &[]).is_ok());
        // An overlap that was already there warns; adding to it is refused at the first added address.
        let mut b_relabel = b.clone();
        b_relabel.spec.namespaces = vec!["default".into()];
        let w = check(&b_relabel, Some(&b), &others, &[]).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with(
                "IPPool b: spec.ips[0] \"172.17.0.200-172.17.0.210\" overlaps IPPool a"
            ),
            "{w:?}"
        );
        let grown = pool("b", "macvlan", &["172.17.0.200-172.17.0.212"]);
        assert!(
            check(&grown, Some(&b), &others, &[])
                .unwrap_err()
                .to_string()
                .contains(") at 172.17.0.211; an address may belong to one IPPool only")
        );
    }

    #[test]
    fn addresses_in_use_stay() {
        let old = pool("p", "macvlan", &["172.17.0.200-172.17.0.210"]);
        let new = pool("p", "macvlan", &["172.17.0.200-172.17.0.205"]);
        let leases = vec![
            lease("macvlan", "172.17.0.209", Some("y"), Some("p")),
            lease("macvlan", "172.17.0.207", Some("x"), Some("p")),
            lease("macvlan", "172.17.0.208", Some("z"), None),
            lease("macvlan", "172.17.0.201", Some("w"), Some("p")),
        ];
        let e = check(&new, Some(&old), &[], &leases).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPPool p: this change removes 172.17.0.207 from spec.ips, but pod default/x holds it from this pool \
             (IPLease macvlan.172.17.0.207); keep the address or delete that Pod first (1 more leased address is \
             affected)"
        );
        assert_eq!((e.reason(), e.code()), ("in_use", 409));
        // Growing, or shrinking away from held addresses, is fine.
        let grown = pool("p", "macvlan", &["172.17.0.200-172.17.0.220"]);
        assert!(check(&grown, Some(&old), &[], &leases).is_ok());
        let kept = pool(
            "p",
            "macvlan",
            &["172.17.0.201", "172.17.0.207", "172.17.0.209"],
        );
        assert!(check(&kept, Some(&old), &[], &leases).is_ok());
    }

    #[test]
    fn addresses_held_outside_the_pool_warn() {
        let leases = vec![
            lease("macvlan", "172.17.0.203", Some("a"), None),
            lease("macvlan", "172.17.0.202", Some("b"), Some("ip_pool")),
            lease("macvlan", "172.17.0.250", Some("c"), None),
        ];
        let p = pool("p", "macvlan", &["172.17.0.200-172.17.0.210"]);
        assert_eq!(
            check(&p, None, &[], &leases).unwrap(),
            [
                "IPPool p: 172.17.0.202 in spec.ips is held by pod default/b (IPLease macvlan.172.17.0.202), which did \
              not get it from this pool; it joins the pool when released (1 more leased address is affected)"
            ]
        );
    }

    #[test]
    fn metadata_only_updates_pass() {
        let bad = pool("p", "gone", &["x"]);
        let mut relabelled = bad.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        let scope = Scope {
            subnets: &[],
            pools: &[],
            leases: &[],
            nads: &[],
        };
        assert!(
            check_pool(&relabelled, Some(&bad), &scope)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn delete_waits_for_leases() {
        assert!(check_delete("ippool-test", &[]).is_ok());
        let leases = vec![
            lease("macvlan", "172.17.0.201", Some("b"), Some("ippool-test")),
            lease("macvlan", "172.17.0.200", Some("a"), Some("ippool-test")),
        ];
        let e = check_delete("ippool-test", &leases).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPPool ippool-test is in use by 2 IPLeases (e.g. 172.17.0.200 held by pod default/a); delete those Pods \
             first"
        );
        assert_eq!((e.reason(), e.code()), ("in_use", 409));
    }
}
