//! Whereabouts (`whereabouts.cni.cncf.io/v1alpha1`): each NAD whose IPAM is `whereabouts` → a nadipam `Subnet`
//! named `<namespace>-<nad>` for its provider (the range's CIDR, addresses outside `range_start`..`range_end`
//! and its `exclude` entries excluded), and the allocations of the range's `IPPool` (offset → `podref`) and the
//! `OverlappingRangeIPReservation`s (one per address) → IPLeases held by the Pods. Whereabouts shares one pool
//! among every NAD with the same range (and `network_name`); a nadipam Subnet has one provider, so only the
//! first such NAD is imported and the others are reported.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

use super::super::plan::{Action, Claim, Desired, Item};
use super::super::world::{NadInfo, World};
use super::{conflict, name, pod_ref, skip, source, str_at, strings_at, valid_name};
use crate::alloc::{Family, IpRange};
use crate::api::{Subnet, SubnetSpec};

pub(crate) const ORIGIN: &str = "whereabouts";

#[derive(Clone, Debug, Default)]
pub(crate) struct Objects {
    pub pools: Vec<Value>,
    pub reservations: Vec<Value>,
}

/// One range of a NAD: its CIDR and the excludes it implies.
#[derive(Debug, PartialEq)]
struct Range {
    net: IpNet,
    exclude: Vec<String>,
}

/// A Whereabouts range: `10.0.0.0/24`, `10.0.0.225/28` (allocation starts there), `10.0.0.5-10.0.0.50/24`,
/// with `range_start`/`range_end`/`exclude` beside it.
fn range(r: &Value) -> Result<Range, String> {
    let text = str_at(r, &["range"]).ok_or("no range")?;
    let (addr, prefix) = text.split_once('/').ok_or_else(|| {
        format!("range {text:?} has no prefix length (expected e.g. 10.0.0.0/24)")
    })?;
    let (first, last) = match addr.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (addr, None),
    };
    let bad = || format!("range {text:?} is not a CIDR (expected e.g. 10.0.0.0/24)");
    let ip: IpAddr = first.trim().parse().map_err(|_| bad())?;
    let net: IpNet = format!("{ip}/{}", prefix.trim())
        .parse::<IpNet>()
        .map_err(|_| bad())?
        .trunc();
    let fam = Family::of(ip);
    let parse = |k: &str| -> Result<Option<IpAddr>, String> {
        str_at(r, &[k])
            .map(|v| {
                v.parse::<IpAddr>()
                    .map_err(|_| format!("{k} {v:?} is not an IP address"))
            })
            .transpose()
    };
    let start = parse("range_start")?.or((ip != net.network()).then_some(ip));
    let end = match last {
        Some(b) => Some(b.trim().parse::<IpAddr>().map_err(|_| bad())?),
        None => parse("range_end")?,
    };
    let (lo, hi) = IpRange::from_net(net).bounds();
    let mut exclude = Vec::new();
    if let Some(s) = start.filter(|s| net.contains(s)) {
        let s = IpRange::single(s).bounds().0;
        if s > lo {
            exclude.push(super::show_range(fam, lo, s - 1));
        }
    }
    if let Some(e) = end.filter(|e| net.contains(e)) {
        let e = IpRange::single(e).bounds().0;
        if e < hi {
            exclude.push(super::show_range(fam, e + 1, hi));
        }
    }
    exclude.extend(strings_at(r, &["exclude"]));
    Ok(Range { net, exclude })
}

/// Whereabouts' pool name for a range: the CIDR with '/' (and ':' for IPv6) as '-', after `<network_name>-`.
fn pool_name(network_name: Option<&str>, net: &IpNet) -> String {
    let cidr = net.to_string().replace(['/', ':'], "-");
    match network_name {
        Some(n) => format!("{n}-{cidr}"),
        None => cidr,
    }
}

pub(crate) fn desired(objects: &Objects, world: &World) -> Desired {
    let mut out = Desired::default();
    let mut nads: Vec<&NadInfo> = world
        .nads
        .iter()
        .filter(|n| n.ipam_type() == Some("whereabouts"))
        .collect();
    nads.sort_by_key(|n| n.network());
    // Pool name → (Subnet, provider, network, CIDR).
    let mut by_pool: BTreeMap<String, (String, String, String, IpNet)> = BTreeMap::new();
    for nad in nads {
        let src = format!("{ORIGIN} NAD {}", nad.network());
        let Some(ipam) = nad.ipam() else { continue };
        let mut ranges = Vec::new();
        if ipam.get("range").is_some() {
            ranges.push(range(ipam));
        }
        for r in ipam
            .get("ipRanges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            ranges.push(range(r));
        }
        let ranges: Result<Vec<Range>, String> = ranges.into_iter().collect();
        let note = |action, detail: String| {
            Item::note(
                action,
                "NetworkAttachmentDefinition",
                &nad.network(),
                &src,
                detail,
            )
        };
        let ranges = match ranges {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => {
                out.notes.push(note(
                    Action::Skip,
                    "its whereabouts IPAM has no range".into(),
                ));
                continue;
            }
            Err(e) => {
                out.notes.push(note(Action::Conflict, format!("ipam: {e}")));
                continue;
            }
        };
        let (v4, v6): (Vec<&Range>, Vec<&Range>) =
            ranges.iter().partition(|r| r.net.addr().is_ipv4());
        if v4.len() > 1 || v6.len() > 1 {
            out.notes.push(note(Action::Conflict, "more than one range of a family: a nadipam Subnet has one CIDR per family; write its Subnet by hand".into()));
            continue;
        }
        let network_name = str_at(ipam, &["network_name"]);
        if let Some(other) = ranges
            .iter()
            .find_map(|r| by_pool.get(&pool_name(network_name, &r.net)))
        {
            out.notes.push(note(Action::Conflict, format!(
                "shares its whereabouts range with network {} (Subnet {}): a nadipam Subnet serves one provider; \
                 point this network at that Subnet (Pods may name it with <provider>.kubernetes.io/logical_switch) or give it a range of its own",
                other.2, other.0)));
            continue;
        }
        let subnet = format!("{}-{}", nad.namespace, nad.name);
        if !valid_name(&subnet) {
            out.notes.push(note(Action::Conflict, format!("Subnet name {subnet:?} is too long or not a valid name; write its Subnet by hand")));
            continue;
        }
        let cidr_block = ranges
            .iter()
            .map(|r| r.net.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut spec = json!({"cidrBlock": cidr_block, "provider": nad.provider(),
                              "excludeIps": ranges.iter().flat_map(|r| r.exclude.clone()).collect::<Vec<_>>()});
        if let Some(gw) = str_at(ipam, &["gateway"]).filter(|g| {
            g.parse::<IpAddr>()
                .is_ok_and(|ip| ranges.iter().any(|r| r.net.contains(&ip)))
        }) {
            spec["gateway"] = gw.into();
        }
        match serde_json::from_value::<SubnetSpec>(spec) {
            Ok(spec) => {
                for r in &ranges {
                    by_pool.insert(
                        pool_name(network_name, &r.net),
                        (subnet.clone(), nad.provider(), nad.network(), r.net),
                    );
                }
                out.subnets.push((Subnet::new(&subnet, spec), src));
            }
            Err(e) => out.notes.push(note(
                Action::Conflict,
                format!("cannot build the Subnet: {e}"),
            )),
        }
    }

    let push = |ip: IpAddr,
                podref: &str,
                ifname: Option<&str>,
                target: &(String, String, String, IpNet),
                src: &str,
                out: &mut Desired| {
        let Some((ns, pod)) = pod_ref(podref) else {
            out.notes.push(Item::note(
                Action::Skip,
                "IPLease",
                &ip.to_string(),
                src,
                format!("podref {podref:?} is not <namespace>/<pod>"),
            ));
            return;
        };
        out.claims.push(Claim {
            ip,
            subnet: target.0.clone(),
            provider: target.1.clone(),
            network: target.2.clone(),
            interface: ifname.map(str::to_string),
            mac: None,
            pool: None,
            namespace: ns,
            pod,
            uid: None,
            source: src.to_string(),
        });
    };
    for pool in &objects.pools {
        let src = source(ORIGIN, "IPPool", pool);
        let Some(target) = by_pool.get(&name(pool)) else {
            out.notes.push(skip(
                "IPPool",
                pool,
                &src,
                "no whereabouts NAD imported here has this range".into(),
            ));
            continue;
        };
        let Some(allocs) = pool
            .get("spec")
            .and_then(|s| s.get("allocations"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let (base, _) = IpRange::from_net(target.3).bounds();
        let fam = Family::of(target.3.network());
        for (offset, a) in allocs {
            let ip = offset
                .trim()
                .parse::<u128>()
                .ok()
                .and_then(|o| base.checked_add(o))
                .map(|x| IpRange::from_bounds(fam, x, x).start())
                .filter(|ip| target.3.contains(ip));
            let Some(ip) = ip else {
                out.notes.push(conflict(
                    "IPPool",
                    pool,
                    &src,
                    format!(
                        "spec.allocations key {offset:?} is not an offset inside {}",
                        target.3
                    ),
                ));
                continue;
            };
            push(
                ip,
                str_at(a, &["podref"]).unwrap_or(""),
                str_at(a, &["ifname"]),
                target,
                &src,
                &mut out,
            );
        }
    }
    for r in &objects.reservations {
        let src = source(ORIGIN, "OverlappingRangeIPReservation", r);
        let n = name(r);
        // IPv6 names have '-' for ':'; a network-named reservation is prefixed with its network_name.
        let ip = n
            .parse::<IpAddr>()
            .ok()
            .or_else(|| n.replace('-', ":").parse().ok())
            .or_else(|| n.rsplit_once('-').and_then(|(_, tail)| tail.parse().ok()));
        let Some(ip) = ip else {
            out.notes.push(skip(
                "OverlappingRangeIPReservation",
                r,
                &src,
                format!("name {n:?} is not an address"),
            ));
            continue;
        };
        let Some(target) = by_pool.values().find(|t| t.3.contains(&ip)) else {
            out.notes.push(skip(
                "OverlappingRangeIPReservation",
                r,
                &src,
                format!("{ip} lies in no imported Subnet"),
            ));
            continue;
        };
        push(
            ip,
            str_at(r, &["spec", "podref"]).unwrap_or(""),
            str_at(r, &["spec", "ifname"]),
            target,
            &src,
            &mut out,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::plan::{Object, plan};
    use crate::migrate::tests::{running_pod, world_with};

    fn nad(ns: &str, name: &str, ipam: Value) -> NadInfo {
        NadInfo {
            namespace: ns.into(),
            name: name.into(),
            config: json!({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "ipam": ipam}),
        }
    }

    fn y(s: &str) -> Value {
        serde_saphyr::from_str(s).unwrap()
    }

    #[test]
    fn ranges_as_whereabouts_writes_them() {
        let r = range(&json!({"range": "192.168.2.225/28"})).unwrap();
        assert_eq!(
            (r.net.to_string(), r.exclude),
            ("192.168.2.224/28".into(), vec!["192.168.2.224".to_string()])
        );
        let r = range(&json!({"range": "10.0.0.0/24", "range_start": "10.0.0.10", "range_end": "10.0.0.20", "exclude": ["10.0.0.12/30"]})).unwrap();
        assert_eq!(
            r.exclude,
            [
                "10.0.0.0..10.0.0.9",
                "10.0.0.21..10.0.0.255",
                "10.0.0.12/30"
            ]
        );
        let r = range(&json!({"range": "10.0.0.5-10.0.0.50/24"})).unwrap();
        assert_eq!(r.exclude, ["10.0.0.0..10.0.0.4", "10.0.0.51..10.0.0.255"]);
        assert!(range(&json!({"range": "10.0.0.0"})).is_err());
        assert!(range(&json!({"range": "x/24"})).is_err());
        assert_eq!(
            pool_name(Some("blue"), &"fd00::/64".parse().unwrap()),
            "blue-fd00---64"
        );
    }

    #[test]
    fn the_readmes_objects_import() {
        let mut world = world_with(vec![
            running_pod("default", "a", "u1"),
            running_pod("default", "b", "u2"),
        ]);
        world.nads = vec![
            nad(
                "default",
                "whereabouts-conf",
                json!({"type": "whereabouts", "range": "192.168.2.225/28", "gateway": "192.168.2.225"}),
            ),
            nad(
                "other",
                "same-range",
                json!({"type": "whereabouts", "range": "192.168.2.224/28"}),
            ),
            nad(
                "default",
                "host-local",
                json!({"type": "host-local", "subnet": "10.1.0.0/24"}),
            ),
        ];
        let objects = Objects {
            pools: vec![y(r#"
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: IPPool
metadata: {name: 192.168.2.224-28, namespace: kube-system}
spec:
  range: 192.168.2.224/28
  allocations:
    "1": {id: c1, podref: default/a, ifname: net1}
    "2": {id: c2, podref: default/gone, ifname: net1}
    "3": {id: c3, podref: default/b, ifname: net1}
    "99": {id: c4, podref: default/a}
"#)],
            reservations: vec![
                y(
                    "apiVersion: whereabouts.cni.cncf.io/v1alpha1\nkind: OverlappingRangeIPReservation\nmetadata: {name: 192.168.2.225, namespace: kube-system}\nspec: {containerid: c1, podref: default/a, ifname: net1}\n",
                ),
                y(
                    "apiVersion: whereabouts.cni.cncf.io/v1alpha1\nkind: OverlappingRangeIPReservation\nmetadata: {name: 192.168.2.227, namespace: kube-system}\nspec: {containerid: c9, podref: default/a}\n",
                ),
            ],
        };
        let p = plan(desired(&objects, &world), &world, ORIGIN);
        let find = |kind: &str, name: &str| {
            p.items
                .iter()
                .find(|i| i.kind == kind && i.name == name)
                .unwrap_or_else(|| panic!("{kind} {name}: {p:#?}"))
        };
        let s = find("Subnet", "default-whereabouts-conf");
        let Some(Object::Subnet(sub)) = &s.object else {
            panic!()
        };
        assert_eq!(
            (sub.spec.cidr_block.as_str(), sub.spec.provider.as_str()),
            ("192.168.2.224/28", "whereabouts-conf.default")
        );
        assert_eq!(sub.spec.exclude_ips, ["192.168.2.224"]);
        assert_eq!(
            find("NetworkAttachmentDefinition", "other/same-range").action,
            Action::Conflict
        );
        // .225 (pool and reservation agree): one lease; .227: a and b both hold it: the conflict is reported.
        let l = find("IPLease", "default-whereabouts-conf.192.168.2.225");
        assert_eq!(l.action, Action::Skip, "the gateway: never handed out");
        assert!(
            p.items.iter().any(|i| i.action == Action::Conflict
                && i.name == "default-whereabouts-conf.192.168.2.227"
                && i.detail.contains("two Pods with one address")),
            "{p:#?}"
        );
        assert!(
            p.items
                .iter()
                .any(|i| i.detail.contains("pod default/gone no longer exists"))
        );
        assert!(
            p.items
                .iter()
                .any(|i| i.detail.contains("\"99\" is not an offset"))
        );
        assert_eq!(p.count(Action::Create), 2, "{p:#?}");
    }
}
