//! Subnet and IPPool status computed from the specs and the leases: pure arithmetic on address intervals, so a
//! /64 costs the same as a /24.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::alloc::{Family, IpRange, Protocol, SubnetLayout, parse_entries};
use crate::api::{IPLease, IPPool, IPPoolStatus, Subnet, SubnetStatus};
use crate::cache::layout;
use crate::placement::{NodeFacts, NodeScope, SelectorError, show_nodes};
use crate::webhook::pool_subnet::pool_subnet;

/// Inclusive interval of addresses as numbers.
type Span = (u128, u128);

/// Sorted, merged spans.
fn merge(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The intersection of two merged lists.
fn intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
}

/// `a` without what `b` covers (both merged).
fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(lo, hi) in a {
        let mut next = lo;
        let mut done = false;
        for &(blo, bhi) in b {
            if bhi < next || blo > hi {
                continue;
            }
            if blo > next {
                out.push((next, blo - 1));
            }
            match bhi.checked_add(1) {
                Some(n) if n <= hi => next = n,
                _ => {
                    done = true;
                    break;
                }
            }
        }
        if !done {
            out.push((next, hi));
        }
    }
    out
}

fn total(v: &[Span]) -> u128 {
    v.iter()
        .fold(0u128, |acc, &(lo, hi)| acc.saturating_add(hi - lo + 1))
}

/// The addresses of one family that may ever be handed out: usable range minus gateway and excludes.
fn assignable(layout: &SubnetLayout, family: Family) -> Vec<Span> {
    let Some(usable) = layout.usable(family) else {
        return Vec::new();
    };
    let mut reserved: Vec<Span> = layout.excluded(family).iter().map(|r| r.bounds()).collect();
    if let Some(gw) = layout.gateway(family) {
        reserved.push(IpRange::single(gw).bounds());
    }
    let reserved = merge(reserved);
    let mut out = Vec::new();
    let mut next = usable.bounds().0;
    let end = usable.bounds().1;
    for &(lo, hi) in &reserved {
        if hi < next || lo > end {
            continue;
        }
        if lo > next {
            out.push((next, lo - 1));
        }
        match hi.checked_add(1) {
            Some(n) => next = n,
            None => return out,
        }
        if next > end {
            return out;
        }
    }
    out.push((next, end));
    out
}

/// The API's spelling of the protocol the layout found (spec.protocol, or inferred from cidrBlock).
fn api_protocol(p: Protocol) -> crate::api::Protocol {
    match p {
        Protocol::IPv4 => crate::api::Protocol::Ipv4,
        Protocol::IPv6 => crate::api::Protocol::Ipv6,
        Protocol::Dual => crate::api::Protocol::Dual,
    }
}

/// Count as an f64, exact below 2^53 (the SubnetStatus contract).
fn count(n: u128) -> f64 {
    n as f64
}

const READY: &str = "Ready";

/// The Subnet's status: addresses in use and still free per family, and a Ready condition that says why the
/// spec cannot be used. `leases` are the Subnet's leases. A lease on an address the Subnet no longer hands out
/// (since excluded) is not counted as using an assignable address.
pub(crate) fn subnet_status(subnet: &Subnet, leases: &[&IPLease], now: Timestamp) -> SubnetStatus {
    let ips: Vec<IpAddr> = leases
        .iter()
        .filter_map(|l| l.spec.ip.parse().ok())
        .collect();
    let using = |keep: &dyn Fn(IpAddr) -> bool| {
        let v4 = ips.iter().filter(|ip| ip.is_ipv4() && keep(**ip)).count() as u128;
        let v6 = ips.iter().filter(|ip| ip.is_ipv6() && keep(**ip)).count() as u128;
        (v4, v6)
    };
    let using = match layout(subnet) {
        Ok(layout) => using(&|ip| layout.contains(ip) && !layout.is_reserved(ip)),
        Err(_) => using(&|_| true),
    };
    status_from(subnet, using, now)
}

/// The status for `using` addresses in use per family (IPv4, IPv6): those the Subnet hands out, or, when its
/// spec cannot be used (it hands nothing out), every lease's. Counted by [`subnet_status`] from the leases, or
/// taken from the allocation index.
pub(crate) fn status_from(
    subnet: &Subnet,
    (using4, using6): (u128, u128),
    now: Timestamp,
) -> SubnetStatus {
    let previous = subnet.status.as_ref();
    let (mut status, problem) = match layout(subnet) {
        Ok(layout) => {
            let free = |f, n: u128| count(total(&assignable(&layout, f)).saturating_sub(n));
            let status = SubnetStatus {
                protocol: Some(api_protocol(layout.protocol())),
                v4_using_ips: count(using4),
                v4_available_ips: free(Family::V4, using4),
                v6_using_ips: count(using6),
                v6_available_ips: free(Family::V6, using6),
                matched_nodes: None,
                conditions: Vec::new(),
            };
            (status, None)
        }
        // Nothing can be allocated until the spec is fixed; the leases still hold their addresses.
        Err(e) => {
            let status = SubnetStatus {
                v4_using_ips: count(using4),
                v6_using_ips: count(using6),
                ..SubnetStatus::default()
            };
            (status, Some(e.to_string()))
        }
    };
    let (cond_status, reason, message) = match problem {
        None => ("True", "Valid", "the Subnet can allocate".to_string()),
        Some(m) => ("False", "InvalidSpec", m),
    };
    let old = previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
    let since = match old {
        Some(c) if c.status == cond_status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    status.conditions = vec![Condition {
        type_: READY.to_string(),
        status: cond_status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: since,
        observed_generation: subnet.metadata.generation,
    }];
    // Keep any condition someone else added.
    if let Some(prev) = previous {
        status
            .conditions
            .extend(prev.conditions.iter().filter(|c| c.type_ != READY).cloned());
    }
    status
}

/// The IPPool's status: `total` is the number of its addresses its Subnet may hand out (inside the CIDR, not
/// the network, broadcast or gateway address, not excluded by the Subnet or the pool, not the pool's own gateway); `allocated` the number of leases taken from it.
/// A pool whose Subnet is missing or invalid, or whose ips do not parse, has a total of 0.
pub(crate) fn pool_status(pool: &IPPool, subnet: Option<&Subnet>, allocated: i64) -> IPPoolStatus {
    let gateways = pool.gateways().unwrap_or_default();
    let excluded = pool.excluded().unwrap_or_default();
    let total_ip_count = subnet
        .and_then(|s| layout(s).ok())
        .zip(parse_entries(&pool.spec.ips).ok())
        .map(|(layout, ranges)| {
            [Family::V4, Family::V6]
                .into_iter()
                .map(|f| {
                    let mine = merge(
                        ranges
                            .iter()
                            .filter(|r| r.family() == f)
                            .map(IpRange::bounds)
                            .collect(),
                    );
                    let withheld = merge(
                        excluded
                            .iter()
                            .filter(|r| r.family() == f)
                            .map(IpRange::bounds)
                            .collect(),
                    );
                    let handed = subtract(&intersect(&mine, &assignable(&layout, f)), &withheld);
                    // The pool's own gateway is never handed out either.
                    let gateway_inside = gateways
                        .iter()
                        .filter(|g| Family::of(**g) == f)
                        .map(|g| IpRange::single(*g).bounds().0)
                        .filter(|x| handed.iter().any(|&(lo, hi)| lo <= *x && *x <= hi))
                        .count() as u128;
                    total(&handed).saturating_sub(gateway_inside)
                })
                .fold(0u128, u128::saturating_add)
        })
        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    IPPoolStatus {
        total_ip_count,
        allocated_ip_count: allocated,
        ..IPPoolStatus::default()
    }
}

const NODES_MATCHED: &str = "NodesMatched";

/// How many of `nodes` a node scope serves, and its `NodesMatched` condition: False when none (no Pod can use
/// the object) or the selector cannot be read. Nothing for an object without a scope (it serves every node).
/// `previous`: the object's current conditions, whose transition time is kept while the status stays.
pub(crate) fn nodes_matched(
    scope: Result<Option<NodeScope>, SelectorError>,
    kind: &str,
    nodes: &[NodeFacts<'_>],
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> (Option<i64>, Option<Condition>) {
    let (count, status, reason, message) = match scope {
        Ok(None) => return (None, None),
        Ok(Some(scope)) => {
            let matched: Vec<&str> = nodes
                .iter()
                .filter(|n| scope.matches(**n))
                .map(|n| n.name)
                .collect();
            let count = i64::try_from(matched.len()).unwrap_or(i64::MAX);
            if matched.is_empty() {
                (
                    Some(0),
                    "False",
                    "NoNodeMatches",
                    format!(
                        "no Node matches {scope}: Pods cannot get this {kind}'s addresses until a Node does; label \
                         the nodes or change the selector"
                    ),
                )
            } else {
                (
                    Some(count),
                    "True",
                    "Matched",
                    format!("{scope} matches {}", show_nodes(matched)),
                )
            }
        }
        Err(e) => (Some(0), "False", "InvalidSelector", e.to_string()),
    };
    let since = match previous.iter().find(|c| c.type_ == NODES_MATCHED) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: NODES_MATCHED.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    };
    (count, Some(condition))
}

/// Sets `matched` and the `NodesMatched` condition among `conditions` for an object's node scope
/// ([`nodes_matched`]); `conditions` start as the object's current ones.
fn put_nodes_matched(
    (matched, conditions): (&mut Option<i64>, &mut Vec<Condition>),
    scope: Result<Option<NodeScope>, SelectorError>,
    (kind, generation): (&str, Option<i64>),
    nodes: &[NodeFacts<'_>],
    now: Timestamp,
) {
    let (count, condition) = nodes_matched(scope, kind, nodes, conditions, generation, now);
    *matched = count;
    conditions.retain(|c| c.type_ != NODES_MATCHED);
    conditions.extend(condition);
}

/// The Subnet's status with its node count and condition ([`nodes_matched`]).
pub(crate) fn with_subnet_nodes(
    mut status: SubnetStatus,
    subnet: &Subnet,
    nodes: &[NodeFacts<'_>],
    now: Timestamp,
) -> SubnetStatus {
    put_nodes_matched(
        (&mut status.matched_nodes, &mut status.conditions),
        subnet.node_scope(),
        ("Subnet", subnet.metadata.generation),
        nodes,
        now,
    );
    status
}

/// The IPPool's status with its node count and condition ([`nodes_matched`]). The condition's transition
/// time is kept from the pool's current status.
pub(crate) fn with_pool_nodes(
    mut status: IPPoolStatus,
    pool: &IPPool,
    nodes: &[NodeFacts<'_>],
    now: Timestamp,
) -> IPPoolStatus {
    status.conditions = pool
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    put_nodes_matched(
        (&mut status.matched_nodes, &mut status.conditions),
        pool.node_scope(),
        ("IPPool", pool.metadata.generation),
        nodes,
        now,
    );
    status
}

/// The status of `pool` among every Subnet: its Subnet is the one its spec.subnet resolves to (a name or a
/// CIDR, [`pool_subnet`]), and its allocated count that of the leases of that Subnet taken from it.
pub(crate) fn pool_status_among(
    pool: &IPPool,
    subnets: &[Arc<Subnet>],
    counts: &HashMap<(String, String), i64>,
) -> IPPoolStatus {
    let subnet = pool_subnet(pool, subnets).ok();
    let subnet_name = subnet.map_or_else(|| pool.spec.subnet.clone(), |s| s.name_any());
    let name = pool.name_any();
    pool_status(
        pool,
        subnet.map(AsRef::as_ref),
        allocated(counts, &subnet_name, &name),
    )
}

/// Leases per `(subnet, pool)`, in one pass over the leases: what the controller's index keeps current.
#[cfg(test)]
pub(crate) fn pool_counts<'a>(
    leases: impl IntoIterator<Item = &'a IPLease>,
) -> HashMap<(String, String), i64> {
    let mut out: HashMap<(String, String), i64> = HashMap::new();
    for l in leases {
        if let Some(pool) = &l.spec.pool {
            *out.entry((l.spec.subnet.clone(), pool.clone()))
                .or_default() += 1;
        }
    }
    out
}

/// The allocated count of pool `pool` of Subnet `subnet` (the one its spec.subnet resolves to) from
/// [`pool_counts`].
fn allocated(counts: &HashMap<(String, String), i64>, subnet: &str, pool: &str) -> i64 {
    counts
        .get(&(subnet.to_string(), pool.to_string()))
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IPLeaseSpec, LeasePhase, OwnerKind};

    fn subnet(cidr: &str, gw: Option<&str>, exclude: &[&str]) -> Subnet {
        let protocol = match (cidr.contains('.'), cidr.contains(':')) {
            (true, true) => "Dual",
            (false, true) => "IPv6",
            _ => "IPv4",
        };
        let mut s: Subnet = serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "Subnet",
            "metadata": {"name": "s", "generation": 3},
            "spec": {"protocol": protocol, "cidrBlock": cidr, "provider": "n.ns", "excludeIps": exclude}
        }))
        .unwrap();
        s.spec.gateway = gw.map(str::to_string);
        s
    }

    fn lease(ip: &str, pool: Option<&str>) -> IPLease {
        IPLease::new(
            &format!("s.{ip}"),
            IPLeaseSpec {
                subnet: "s".into(),
                ip: ip.into(),
                mac: None,
                provider: "n.ns".into(),
                interface: None,
                pod_namespace: "ns".into(),
                pod_name: None,
                pod_uid: None,
                phase: LeasePhase::Bound,
                token: "t".into(),
                owner_kind: OwnerKind::Pod,
                claim: None,
                pool: pool.map(str::to_string),
                network: "ns/n".into(),
            },
        )
    }

    fn pool(ips: &[&str]) -> IPPool {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPPool",
            "metadata": {"name": "p"},
            "spec": {"subnet": "s", "ips": ips}
        }))
        .unwrap()
    }

    #[test]
    fn subtraction() {
        assert_eq!(
            subtract(&[(0, 10)], &[(2, 3), (5, 5)]),
            [(0, 1), (4, 4), (6, 10)]
        );
        assert_eq!(subtract(&[(0, 10), (20, 30)], &[(0, 25)]), [(26, 30)]);
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), Vec::<Span>::new());
        assert_eq!(subtract(&[(0, u128::MAX)], &[(5, u128::MAX)]), [(0, 4)]);
        assert_eq!(subtract(&[(3, 4)], &[]), [(3, 4)]);
    }

    #[test]
    fn intervals() {
        assert_eq!(
            merge(vec![(5, 9), (1, 2), (3, 3), (20, 30)]),
            vec![(1, 3), (5, 9), (20, 30)]
        );
        assert_eq!(
            intersect(&[(1, 10), (20, 30)], &[(5, 25)]),
            vec![(5, 10), (20, 25)]
        );
        assert_eq!(intersect(&[(1, 2)], &[(3, 4)]), vec![]);
        assert_eq!(total(&[(1, 3), (5, 5)]), 4);
    }

    #[test]
    fn subnet_counts_follow_the_layout() {
        // 172.17.0.0/24: 254 usable, minus gateway .1, minus .2-.10 excluded = 244.
        let mut s = subnet("172.17.0.0/24", None, &["172.17.0.2..172.17.0.10"]);
        s.spec.protocol = None;
        let leases = [
            lease("172.17.0.11", None),
            lease("172.17.0.12", None),
            lease("172.17.0.5", None),
        ];
        let refs: Vec<&IPLease> = leases.iter().collect();
        let st = subnet_status(&s, &refs, Timestamp::UNIX_EPOCH);
        assert_eq!((st.v4_using_ips, st.v4_available_ips), (2.0, 242.0));
        assert_eq!((st.v6_using_ips, st.v6_available_ips), (0.0, 0.0));
        assert_eq!(
            st.protocol,
            Some(crate::api::Protocol::Ipv4),
            "inferred from cidrBlock"
        );
        assert_eq!(st.conditions.len(), 1);
        let c = &st.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Ready", "True", "Valid")
        );
        assert_eq!(c.observed_generation, Some(3));
    }

    #[test]
    fn dual_stack_and_huge_v6() {
        let s = subnet("10.0.0.0/30,fd00::/64", None, &[]);
        let leases = [lease("10.0.0.2", None), lease("fd00::5", None)];
        let refs: Vec<&IPLease> = leases.iter().collect();
        let st = subnet_status(&s, &refs, Timestamp::UNIX_EPOCH);
        // /30: .1 and .2 usable, .1 is the gateway.
        assert_eq!((st.v4_using_ips, st.v4_available_ips), (1.0, 0.0));
        assert_eq!(st.v6_using_ips, 1.0);
        assert_eq!(st.protocol, Some(crate::api::Protocol::Dual));
        // 2^64 minus subnet-router anycast, last address, gateway, one in use.
        assert_eq!(st.v6_available_ips, (2f64.powi(64)) - 4.0);
    }

    #[test]
    fn invalid_spec_is_not_ready_and_keeps_the_transition_time() {
        let mut s = subnet("172.17.0.0/24", Some("10.9.9.9"), &[]);
        let t1 = Timestamp::from_second(1000).unwrap();
        let st = subnet_status(&s, &[], t1);
        let c = &st.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(
            st.protocol, None,
            "no families to serve until the spec is fixed"
        );
        assert_eq!(
            c.message,
            "subnet s: gateway 10.9.9.9 is outside 172.17.0.0/24 (expected an address from 172.17.0.1 to 172.17.0.254)"
        );
        s.status = Some(st.clone());
        let again = subnet_status(&s, &[], Timestamp::from_second(2000).unwrap());
        assert_eq!(again, st, "unchanged status: same transition time");
        s.spec.gateway = None;
        let fixed = subnet_status(&s, &[], Timestamp::from_second(3000).unwrap());
        assert_eq!(fixed.conditions[0].status, "True");
        assert_eq!(fixed.conditions[0].last_transition_time.0.as_second(), 3000);
    }

    #[test]
    fn pool_total_is_what_the_subnet_may_hand_out() {
        let s = subnet("172.17.0.0/24", Some("172.17.0.254"), &["172.17.0.200"]);
        // 196..205 = 10 addresses, minus excluded .200; .254 gateway and .255 broadcast; 1 outside the subnet.
        let p = pool(&[
            "172.17.0.196-172.17.0.205",
            "172.17.0.250..172.17.0.255",
            "172.17.0.198",
            "10.0.0.1",
        ]);
        let st = pool_status(&p, Some(&s), 2);
        assert_eq!(st.total_ip_count, 9 + 4);
        assert_eq!(st.allocated_ip_count, 2);
        assert_eq!(pool_status(&p, None, 0).total_ip_count, 0);
        assert_eq!(
            pool_status(&pool(&["bogus"]), Some(&s), 0).total_ip_count,
            0
        );
        let v6 = subnet("fd00::/120", None, &[]);
        assert_eq!(
            pool_status(&pool(&["fd00::/124", "10.0.0.1"]), Some(&v6), 0).total_ip_count,
            14,
            "16 minus the subnet-router anycast address and the gateway"
        );
    }

    #[test]
    fn pool_counts_group_by_subnet_and_pool() {
        let leases = [
            lease("10.0.0.2", Some("p")),
            lease("10.0.0.3", Some("p")),
            lease("10.0.0.4", None),
        ];
        let counts = pool_counts(&leases);
        assert_eq!(allocated(&counts, "s", "p"), 2);
        assert_eq!(allocated(&counts, "t", "p"), 0);
        // A pool naming its Subnet by CIDR counts the leases of the Subnet it resolves to.
        let subnets = [Arc::new(subnet("10.0.0.0/24", None, &[]))];
        let mut by_cidr = pool(&["10.0.0.0/24"]);
        by_cidr.spec.subnet = "10.0.0.0/24".into();
        let st = pool_status_among(&by_cidr, &subnets, &counts);
        assert_eq!((st.allocated_ip_count, st.total_ip_count), (2, 253));
        by_cidr.spec.subnet = "10.9.0.0/24".into();
        assert_eq!(
            pool_status_among(&by_cidr, &subnets, &counts),
            IPPoolStatus::default()
        );
    }

    #[test]
    fn node_scoped_pools_count_their_nodes_and_say_when_none_match() {
        let mut p = pool(&["10.0.0.10"]);
        let labels: std::collections::BTreeMap<String, String> =
            [("rack".to_string(), "a".to_string())].into();
        let nodes = [NodeFacts {
            name: "n1",
            labels: &labels,
        }];
        let now = Timestamp::UNIX_EPOCH;
        let plain = with_pool_nodes(IPPoolStatus::default(), &p, &nodes, now);
        assert_eq!((plain.matched_nodes, plain.conditions.len()), (None, 0));
        p.spec.node_selector = Some(
            serde_json::from_value(serde_json::json!({"matchLabels": {"rack": "b"}})).unwrap(),
        );
        let none = with_pool_nodes(IPPoolStatus::default(), &p, &nodes, now);
        assert_eq!(none.matched_nodes, Some(0));
        let c = &none.conditions[0];
        assert_eq!(
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_str(),
                c.message.as_str()
            ),
            (
                "NodesMatched",
                "False",
                "NoNodeMatches",
                "no Node matches spec.nodeSelector rack=b: Pods cannot get this IPPool's addresses until a Node \
                 does; label the nodes or change the selector"
            )
        );
        p.spec.node_selector = Some(
            serde_json::from_value(serde_json::json!({"matchLabels": {"rack": "a"}})).unwrap(),
        );
        let one = with_pool_nodes(IPPoolStatus::default(), &p, &nodes, now);
        assert_eq!(one.matched_nodes, Some(1));
        assert_eq!(
            one.conditions[0].message,
            "spec.nodeSelector rack=a matches node n1"
        );
    }
}
