//! Spiderpool (`spiderpool.spidernet.io/v2beta1`): `SpiderSubnet` → nadipam `Subnet` (addresses outside its
//! `ips`, its `excludeIPs` and every `SpiderReservedIP` inside it excluded), `SpiderIPPool` → nadipam `IPPool`
//! (the spec as written: nadipam's IPPool takes SpiderIPPool manifests), a Subnet made for the CIDR of pools
//! that have no SpiderSubnet, and the addresses recorded in a pool's `status.allocatedIPs` and in
//! `SpiderEndpoint`s → IPLeases held by the Pods. The network (provider) of a CIDR is the first `multusName`
//! of its pools, or the NAD whose spiderpool IPAM names one of them as a default pool.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::Value;

use super::super::adopt::parse_ip;
use super::super::plan::{Claim, Desired};
use super::super::world::World;
use super::{conflict, name, pod_ref, push_pool, skip, source, str_at, strings_at, valid_name};
use crate::alloc::{Family, IpRange, parse_entry};
use crate::api::{RouteSpec, Subnet, SubnetSpec};

pub(crate) const ORIGIN: &str = "spiderpool";

#[derive(Clone, Debug, Default)]
pub(crate) struct Objects {
    pub subnets: Vec<Value>,
    pub pools: Vec<Value>,
    pub endpoints: Vec<Value>,
    pub reserved: Vec<Value>,
}

struct Cidr {
    subnet: String,
    network: Option<String>,
    spec: serde_json::Map<String, Value>,
    source: String,
    exclude: Vec<String>,
}

fn cidr_of(text: &str) -> Option<IpNet> {
    text.trim().parse::<IpNet>().ok().map(|n| n.trunc())
}

/// The name of the Subnet made for pools without a SpiderSubnet: `spiderpool-172-18-0-0-16`.
fn made_name(net: &IpNet) -> String {
    let t: String = net
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut n = format!("spiderpool-{}", t.trim_matches('-'));
    n.truncate(63);
    n.trim_end_matches('-').to_string()
}

/// Entries excluding every address of `net` outside `ips` (SpiderSubnet allocates only its `ips`).
fn outside(net: &IpNet, ips: &[String]) -> Vec<String> {
    let fam = Family::of(net.network());
    let mut ranges: Vec<(u128, u128)> = ips
        .iter()
        .filter_map(|e| parse_entry(e).ok())
        .filter(|r| r.family() == fam)
        .map(|r| r.bounds())
        .collect();
    ranges.sort();
    let (lo, hi) = IpRange::from_net(*net).bounds();
    let mut out = Vec::new();
    let mut next = lo;
    let show = |a, b| super::show_range(fam, a, b);
    for (a, b) in ranges {
        let a = a.max(lo);
        if a > next {
            out.push(show(next, a - 1));
        }
        if b >= next {
            if b >= hi {
                return out;
            }
            next = b + 1;
        }
    }
    if next <= hi {
        out.push(show(next, hi));
    }
    out
}

pub(crate) fn desired(objects: &Objects, world: &World) -> Desired {
    let mut out = Desired::default();
    // Pool name → its network, from multusName or a NAD naming it as a default pool.
    let mut pool_network: BTreeMap<String, String> = BTreeMap::new();
    for pool in &objects.pools {
        let n = name(pool);
        let network = strings_at(pool, &["spec", "multusName"])
            .first()
            .cloned()
            .or_else(|| {
                world
                    .nads
                    .iter()
                    .find(|nad| {
                        nad.ipam_type() == Some("spiderpool")
                            && ["default_ipv4_ippool", "default_ipv6_ippool"]
                                .iter()
                                .any(|k| {
                                    nad.ipam().is_some_and(|i| strings_at(i, &[k]).contains(&n))
                                })
                    })
                    .map(|nad| nad.network())
            });
        if let Some(network) = network {
            pool_network.insert(n, network);
        }
    }
    let mut cidrs: BTreeMap<IpNet, Cidr> = BTreeMap::new();
    for s in &objects.subnets {
        let src = source(ORIGIN, "SpiderSubnet", s);
        let Some(net) = str_at(s, &["spec", "subnet"]).and_then(cidr_of) else {
            out.notes.push(conflict(
                "SpiderSubnet",
                s,
                &src,
                format!(
                    "spec.subnet {:?} is not a CIDR",
                    str_at(s, &["spec", "subnet"]).unwrap_or("")
                ),
            ));
            continue;
        };
        let n = name(s);
        if !valid_name(&n) {
            out.notes.push(conflict(
                "SpiderSubnet",
                s,
                &src,
                format!("name {n:?} cannot name a nadipam Subnet"),
            ));
            continue;
        }
        let mut exclude = outside(&net, &strings_at(s, &["spec", "ips"]));
        exclude.extend(strings_at(s, &["spec", "excludeIPs"]));
        let mut spec = serde_json::Map::new();
        if let Some(g) = str_at(s, &["spec", "gateway"]) {
            spec.insert("gateway".into(), g.into());
        }
        if let Some(r) = s
            .get("spec")
            .and_then(|x| x.get("routes"))
            .and_then(|r| serde_json::from_value::<Vec<RouteSpec>>(r.clone()).ok())
        {
            spec.insert("routes".into(), serde_json::to_value(r).unwrap_or_default());
        }
        cidrs.insert(
            net,
            Cidr {
                subnet: n,
                network: None,
                spec,
                source: src,
                exclude,
            },
        );
    }
    for pool in &objects.pools {
        let src = source(ORIGIN, "SpiderIPPool", pool);
        let n = name(pool);
        let Some(net) = str_at(pool, &["spec", "subnet"]).and_then(cidr_of) else {
            out.notes.push(conflict(
                "SpiderIPPool",
                pool,
                &src,
                format!(
                    "spec.subnet {:?} is not a CIDR",
                    str_at(pool, &["spec", "subnet"]).unwrap_or("")
                ),
            ));
            continue;
        };
        let c = cidrs.entry(net).or_insert_with(|| {
            let mut spec = serde_json::Map::new();
            if let Some(g) = str_at(pool, &["spec", "gateway"]) {
                spec.insert("gateway".into(), g.into());
            }
            Cidr {
                subnet: made_name(&net),
                network: None,
                spec,
                source: format!("{src} (no SpiderSubnet of {net})"),
                exclude: Vec::new(),
            }
        });
        if c.network.is_none() {
            c.network = pool_network.get(&n).cloned();
        }
        // SpiderIPPool's excludeIPs: never handed out; nadipam's IPPool keeps them without applying them, so the
        // Subnet excludes them.
        c.exclude.extend(strings_at(pool, &["spec", "excludeIPs"]));
        if !valid_name(&n) {
            out.notes.push(conflict(
                "SpiderIPPool",
                pool,
                &src,
                format!("name {n:?} cannot name a nadipam IPPool"),
            ));
            continue;
        }
        let mut spec = pool.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = spec.as_object_mut() {
            // Spiderpool writes ipVersion 4/6 as a number; nadipam keeps it as written.
            m.retain(|_, v| !v.is_null());
        }
        push_pool(&mut out, "SpiderIPPool", pool, src, &n, spec);
    }
    for r in &objects.reserved {
        let src = source(ORIGIN, "SpiderReservedIP", r);
        for entry in strings_at(r, &["spec", "ips"]) {
            let Ok(range) = parse_entry(&entry) else {
                out.notes.push(conflict(
                    "SpiderReservedIP",
                    r,
                    &src,
                    format!("spec.ips entry {entry:?} is not an IP, range or CIDR"),
                ));
                continue;
            };
            match cidrs
                .iter_mut()
                .find(|(net, _)| net.contains(&range.start()))
            {
                Some((_, c)) => c.exclude.push(entry),
                None => out.notes.push(skip(
                    "SpiderReservedIP",
                    r,
                    &src,
                    format!("{entry} lies in no imported Subnet: nothing to exclude"),
                )),
            }
        }
    }
    // CIDR → (Subnet name, provider, network) of the Subnets made.
    let mut made: BTreeMap<IpNet, (String, String, String)> = BTreeMap::new();
    for (net, c) in cidrs {
        let Some(network) = c.network.clone() else {
            out.notes.push(no_network(&c, &net));
            continue;
        };
        let provider = match network.split_once('/') {
            Some((ns, nad)) => format!("{nad}.{ns}"),
            None => {
                out.notes.push(super::super::plan::Item::note(
                    super::super::plan::Action::Conflict,
                    "Subnet",
                    &c.subnet,
                    &c.source,
                    format!("multusName {network:?} is not <namespace>/<nad>"),
                ));
                continue;
            }
        };
        let mut spec = c.spec;
        spec.insert("cidrBlock".into(), net.to_string().into());
        spec.insert("provider".into(), provider.clone().into());
        spec.insert("excludeIps".into(), c.exclude.into());
        match serde_json::from_value::<SubnetSpec>(Value::Object(spec)) {
            Ok(spec) => {
                made.insert(net, (c.subnet.clone(), provider, network));
                out.subnets.push((Subnet::new(&c.subnet, spec), c.source));
            }
            Err(e) => out.notes.push(super::super::plan::Item::note(
                super::super::plan::Action::Conflict,
                "Subnet",
                &c.subnet,
                &c.source,
                format!("cannot build the Subnet: {e}"),
            )),
        }
    }
    let pools = std::mem::take(&mut out.pools);
    for (pool, src) in pools {
        let net = cidr_of(&pool.spec.subnet);
        if net.is_some_and(|n| made.contains_key(&n)) {
            out.pools.push((pool, src));
        } else {
            let n = pool.metadata.name.clone().unwrap_or_default();
            out.notes.push(super::super::plan::Item::note(
                super::super::plan::Action::Skip,
                "IPPool",
                &n,
                &src,
                format!(
                    "its Subnet ({}) is not imported (see its conflict)",
                    pool.spec.subnet
                ),
            ));
        }
    }
    let pool_net: BTreeMap<String, IpNet> = objects
        .pools
        .iter()
        .filter_map(|p| Some((name(p), str_at(p, &["spec", "subnet"]).and_then(cidr_of)?)))
        .collect();
    let claim = |ip_text: &str,
                 pool: &str,
                 ns: &str,
                 pod: &str,
                 uid: Option<&str>,
                 nic: Option<&str>,
                 src: &str,
                 out: &mut Desired| {
        let Some(ip) = parse_ip(ip_text) else { return };
        let Some((subnet, provider, network)) = pool_net.get(pool).and_then(|n| made.get(n)) else {
            return;
        };
        out.claims.push(Claim {
            ip,
            subnet: subnet.clone(),
            provider: provider.clone(),
            network: pool_network
                .get(pool)
                .cloned()
                .unwrap_or_else(|| network.clone()),
            interface: nic.map(str::to_string),
            mac: None,
            pool: Some(pool.to_string()),
            namespace: ns.to_string(),
            pod: pod.to_string(),
            uid: uid.map(str::to_string),
            source: src.to_string(),
        });
    };
    for pool in &objects.pools {
        let src = source(ORIGIN, "SpiderIPPool", pool);
        let n = name(pool);
        let raw = pool.get("status").and_then(|s| s.get("allocatedIPs"));
        let map: Option<serde_json::Map<String, Value>> = match raw {
            Some(Value::String(s)) => serde_json::from_str(s).ok(),
            Some(Value::Object(m)) => Some(m.clone()),
            _ => None,
        };
        for (ip, a) in map.into_iter().flatten() {
            let holder = str_at(&a, &["pod"]).and_then(|p| {
                pod_ref(p).or_else(|| {
                    str_at(&a, &["namespace"]).map(|ns| (ns.to_string(), p.to_string()))
                })
            });
            let Some((ns, pod)) = holder else { continue };
            claim(
                &ip,
                &n,
                &ns,
                &pod,
                str_at(&a, &["podUid"]),
                str_at(&a, &["nic"]).or(str_at(&a, &["interface"])),
                &src,
                &mut out,
            );
        }
    }
    for ep in &objects.endpoints {
        let src = source(ORIGIN, "SpiderEndpoint", ep);
        let (Some(ns), n) = (str_at(ep, &["metadata", "namespace"]), name(ep)) else {
            continue;
        };
        let uid = str_at(ep, &["status", "current", "uid"]);
        for entry in ep
            .get("status")
            .and_then(|s| s.get("current"))
            .and_then(|c| c.get("ips"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (ip_key, pool_key) in [("ipv4", "ipv4Pool"), ("ipv6", "ipv6Pool")] {
                if let (Some(ip), Some(pool)) =
                    (str_at(entry, &[ip_key]), str_at(entry, &[pool_key]))
                {
                    claim(
                        ip,
                        pool,
                        ns,
                        &n,
                        uid,
                        str_at(entry, &["interface"]),
                        &src,
                        &mut out,
                    );
                }
            }
        }
    }
    out
}

fn no_network(c: &Cidr, net: &IpNet) -> super::super::plan::Item {
    super::super::plan::Item::note(
        super::super::plan::Action::Conflict,
        "Subnet",
        &c.subnet,
        &c.source,
        format!(
            "no network uses {net}: no SpiderIPPool of it lists spec.multusName and no NAD names one as its \
             default pool; write the nadipam Subnet (spec.provider <nad>.<namespace>) by hand"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::plan::{Action, Object, plan};
    use crate::migrate::tests::{running_pod, world_with};

    fn y(s: &str) -> Value {
        serde_saphyr::from_str(s).unwrap()
    }

    /// The Spiderpool ovs-cni guide's pool as its users write it, with the status Spiderpool writes for
    /// `test-app`'s two replicas, a SpiderSubnet, a SpiderReservedIP and a SpiderEndpoint.
    fn guide() -> Objects {
        Objects {
            pools: vec![
                y(r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: ippool-test}
spec:
  ips: ["172.18.30.131-172.18.30.140"]
  subnet: 172.18.0.0/16
  gateway: 172.18.0.1
  multusName: [kube-system/ovs-conf]
status:
  allocatedIPCount: 2
  allocatedIPs: '{"172.18.30.131":{"pod":"default/test-app-1","podUid":"u1"},"172.18.30.132":{"pod":"default/test-app-2","podUid":"u2-old"}}'
  totalIPCount: 10
"#),
                y(r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: v4-pool}
spec: {subnet: 10.6.0.0/16, ips: ["10.6.0.100-10.6.0.120"], ipVersion: 4}
"#),
            ],
            subnets: vec![y(r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: subnet-18}
spec:
  subnet: 172.18.0.0/16
  ips: ["172.18.30.100-172.18.30.200"]
  gateway: 172.18.0.1
  excludeIPs: [172.18.30.150]
  routes: [{dst: 10.0.0.0/8, gw: 172.18.0.254}]
"#)],
            reserved: vec![y(r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata: {name: reserved}
spec: {ipVersion: 4, ips: ["172.18.30.135-172.18.30.136", "192.168.1.1", "bogus"]}
"#)],
            endpoints: vec![y(r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderEndpoint
metadata: {name: test-app-1, namespace: default}
status:
  current:
    uid: u1
    node: node-1
    ips: [{interface: eth0, ipv4: 172.18.30.131/16, ipv4Pool: ippool-test, vlan: 0}]
  ownerControllerType: Deployment
  ownerControllerName: test-app
"#)],
        }
    }

    #[test]
    fn outside_ranges() {
        let net: IpNet = "10.0.0.0/29".parse().unwrap();
        assert_eq!(
            outside(&net, &["10.0.0.2-10.0.0.3".into(), "10.0.0.5".into()]),
            ["10.0.0.0..10.0.0.1", "10.0.0.4", "10.0.0.6..10.0.0.7"]
        );
        assert_eq!(outside(&net, &["10.0.0.0/29".into()]), Vec::<String>::new());
        assert_eq!(outside(&net, &[]), ["10.0.0.0..10.0.0.7"]);
    }

    #[test]
    fn the_guides_objects_import() {
        let mut test_app_2 = running_pod("default", "test-app-2", "u2");
        test_app_2.created = "x".into();
        let world = world_with(vec![running_pod("default", "test-app-1", "u1"), test_app_2]);
        let p = plan(desired(&guide(), &world), &world, ORIGIN);
        let find = |kind: &str, name: &str| {
            p.items
                .iter()
                .find(|i| i.kind == kind && i.name == name)
                .unwrap_or_else(|| panic!("{kind} {name}: {p:#?}"))
        };
        let s = find("Subnet", "subnet-18");
        assert_eq!(s.action, Action::Create, "{p:#?}");
        let Some(Object::Subnet(sub)) = &s.object else {
            panic!()
        };
        assert_eq!(sub.spec.provider, "ovs-conf.kube-system");
        assert_eq!(sub.spec.cidr_block, "172.18.0.0/16");
        assert_eq!(
            sub.spec.exclude_ips,
            [
                "172.18.0.0..172.18.30.99",
                "172.18.30.201..172.18.255.255",
                "172.18.30.150",
                "172.18.30.135-172.18.30.136"
            ]
        );
        assert_eq!(sub.spec.routes.len(), 1);
        let pool = find("IPPool", "ippool-test");
        let Some(Object::IPPool(pool)) = &pool.object else {
            panic!()
        };
        assert_eq!(pool.spec.multus_name, ["kube-system/ovs-conf"]);
        assert_eq!(pool.spec.subnet, "172.18.0.0/16");
        // One lease for test-app-1 (from the pool's status and its endpoint), none for test-app-2 (re-created).
        let l = find("IPLease", "subnet-18.172.18.30.131");
        assert_eq!(l.action, Action::Create);
        assert!(
            l.source.contains("SpiderIPPool ippool-test")
                && l.source.contains("SpiderEndpoint default/test-app-1"),
            "{}",
            l.source
        );
        let Some(Object::IPLease(l)) = &l.object else {
            panic!()
        };
        assert_eq!(
            (l.spec.pool.as_deref(), l.spec.interface.as_deref()),
            (Some("ippool-test"), Some("eth0"))
        );
        assert_eq!(l.spec.network, "kube-system/ovs-conf");
        assert!(
            p.items
                .iter()
                .any(|i| i.action == Action::Skip && i.detail.contains("re-created"))
        );
        // The pool without a network: its made Subnet is a conflict, reported, not an error.
        assert_eq!(
            find("Subnet", "spiderpool-10-6-0-0-16").action,
            Action::Conflict
        );
        assert!(p.items.iter().any(|i| i.kind == "SpiderReservedIP"
            && i.detail.contains("192.168.1.1 lies in no imported Subnet")));
        assert!(
            p.items
                .iter()
                .any(|i| i.kind == "SpiderReservedIP" && i.detail.contains("\"bogus\""))
        );
    }
}
