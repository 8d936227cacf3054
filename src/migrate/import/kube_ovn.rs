//! Kube-OVN (`kubeovn.io/v1`): `Subnet` → nadipam `Subnet` (the same spec: nadipam's schema has every Kube-OVN
//! field), `IPPool` → nadipam `IPPool`, `IP` (one per Pod and network: `<pod>.<ns>[.<provider>]`, with
//! `attachIps` on older versions) → IPLeases held by the Pods. Only the Subnets of secondary networks are
//! imported: a Subnet whose provider is `ovn` (Kube-OVN's own network) is left to Kube-OVN.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::adopt::parse_ip;
use super::super::plan::{Claim, Desired};
use super::super::world::{World, network_of_provider};
use super::{conflict, name, pool_of, push_pool, skip, source, str_at, strings_at, valid_name};
use crate::api::{IPPool, Subnet, SubnetSpec};

pub(crate) const ORIGIN: &str = "kube-ovn";

/// Kube-OVN's objects, as listed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Objects {
    pub subnets: Vec<Value>,
    pub ips: Vec<Value>,
    pub pools: Vec<Value>,
}

pub(crate) fn desired(objects: &Objects, _world: &World) -> Desired {
    let mut out = Desired::default();
    // Subnet name → (provider, network) of the imported Subnets.
    let mut imported: BTreeMap<String, (String, String)> = BTreeMap::new();
    for obj in &objects.subnets {
        let src = source(ORIGIN, "Subnet", obj);
        let n = name(obj);
        let provider = str_at(obj, &["spec", "provider"])
            .unwrap_or("ovn")
            .to_string();
        if provider == "ovn" {
            out.notes.push(skip("Subnet", obj, &src, "provider ovn: Kube-OVN's own network, not a Multus secondary network; left to Kube-OVN".into()));
            continue;
        }
        if !valid_name(&n) {
            out.notes.push(conflict("Subnet", obj, &src, format!("name {n:?} cannot name a nadipam Subnet (at most 63 lower-case alphanumerics, '-' or '.'); write one by hand")));
            continue;
        }
        let Some(network) = network_of_provider(&provider) else {
            out.notes.push(conflict("Subnet", obj, &src, format!("spec.provider {provider:?} names no network (expected <nad>.<namespace> or <nad>.<namespace>.ovn)")));
            continue;
        };
        let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        match serde_json::from_value::<SubnetSpec>(spec) {
            Ok(spec) => {
                imported.insert(n.clone(), (provider, network));
                out.subnets.push((Subnet::new(&n, spec), src));
            }
            Err(e) => out.notes.push(conflict(
                "Subnet",
                obj,
                &src,
                format!("spec cannot be read as a Subnet: {e}"),
            )),
        }
    }

    for obj in &objects.pools {
        let src = source(ORIGIN, "IPPool", obj);
        let n = name(obj);
        let subnet = str_at(obj, &["spec", "subnet"]).unwrap_or("").to_string();
        if !imported.contains_key(&subnet) {
            out.notes.push(skip(
                "IPPool",
                obj,
                &src,
                format!("spec.subnet {subnet:?} is not an imported Subnet"),
            ));
            continue;
        }
        if !valid_name(&n) {
            out.notes.push(conflict(
                "IPPool",
                obj,
                &src,
                format!("name {n:?} cannot name a nadipam IPPool"),
            ));
            continue;
        }
        let spec = json!({"subnet": subnet, "ips": strings_at(obj, &["spec", "ips"]),
                          "namespaces": strings_at(obj, &["spec", "namespaces"])});
        push_pool(&mut out, "IPPool", obj, src, &n, spec);
    }

    for obj in &objects.ips {
        let src = source(ORIGIN, "IP", obj);
        let (Some(ns), Some(pod)) = (
            str_at(obj, &["spec", "namespace"]),
            str_at(obj, &["spec", "podName"]),
        ) else {
            out.notes.push(skip(
                "IP",
                obj,
                &src,
                "spec.namespace or spec.podName is missing: no holder".into(),
            ));
            continue;
        };
        let mut entries: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
        if let Some(subnet) = str_at(obj, &["spec", "subnet"]) {
            let mut addrs: Vec<String> = str_at(obj, &["spec", "ipAddress"])
                .map(|a| a.split(',').map(|x| x.trim().to_string()).collect())
                .unwrap_or_default();
            if addrs.is_empty() {
                addrs = ["v4IpAddress", "v6IpAddress"]
                    .iter()
                    .filter_map(|k| str_at(obj, &["spec", k]).map(str::to_string))
                    .collect();
            }
            entries.push((
                subnet.to_string(),
                addrs,
                str_at(obj, &["spec", "macAddress"]).map(str::to_string),
            ));
        }
        let (subs, ips, macs) = (
            strings_at(obj, &["spec", "attachSubnets"]),
            strings_at(obj, &["spec", "attachIps"]),
            strings_at(obj, &["spec", "attachMacs"]),
        );
        for (i, s) in subs.iter().enumerate() {
            let addrs = ips
                .get(i)
                .map(|a| a.split(',').map(|x| x.trim().to_string()).collect())
                .unwrap_or_default();
            entries.push((s.clone(), addrs, macs.get(i).cloned()));
        }
        for (subnet, addrs, mac) in entries {
            let Some((provider, network)) = imported.get(&subnet) else {
                continue; // Kube-OVN's own network: not imported.
            };
            for a in addrs.iter().filter(|a| !a.is_empty()) {
                let Some(ip) = parse_ip(a) else {
                    out.notes.push(conflict(
                        "IP",
                        obj,
                        &src,
                        format!("address {a:?} is not an IP address"),
                    ));
                    continue;
                };
                out.claims.push(Claim {
                    ip,
                    subnet: subnet.clone(),
                    provider: provider.clone(),
                    network: network.clone(),
                    interface: None,
                    mac: mac.clone(),
                    pool: None,
                    namespace: ns.to_string(),
                    pod: pod.to_string(),
                    uid: None,
                    source: src.clone(),
                });
            }
        }
    }
    for claim in &mut out.claims {
        let pools: Vec<&IPPool> = out
            .pools
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.spec.subnet == claim.subnet)
            .collect();
        claim.pool = pool_of(claim, &pools);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::plan::{Action, Object, plan};
    use crate::migrate::tests::{running_pod, world_with};

    /// The Kube-OVN multi-NIC guide's Subnet for its macvlan network, as `kubectl get subnet -o yaml` shows it
    /// after Kube-OVN defaulted it, its own ovn-default, an IPPool, and the IP objects Kube-OVN writes for the
    /// guide's Pods.
    fn guide() -> Objects {
        let y = |s: &str| -> Value { serde_saphyr::from_str(s).unwrap() };
        Objects {
            subnets: vec![
                y(r#"
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: macvlan}
spec:
  protocol: IPv4
  provider: macvlan.default
  cidrBlock: 172.17.0.0/16
  gateway: 172.17.0.1
  excludeIps:
  - 172.17.0.0..172.17.0.10
  default: false
  gatewayType: distributed
  natOutgoing: false
  private: false
  vpc: ovn-cluster
"#),
                y(r#"
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: ovn-default}
spec: {cidrBlock: 10.16.0.0/16, default: true, gateway: 10.16.0.1, excludeIps: [10.16.0.1], protocol: IPv4}
"#),
            ],
            pools: vec![y(r#"
apiVersion: kubeovn.io/v1
kind: IPPool
metadata: {name: pool-1}
spec:
  subnet: macvlan
  ips: ["172.17.0.200..172.17.0.210"]
  namespaces: [default]
"#)],
            ips: vec![
                y(r#"
apiVersion: kubeovn.io/v1
kind: IP
metadata: {name: samplepod.default.macvlan.default}
spec: {podName: samplepod, namespace: default, subnet: macvlan, nodeName: node-1, ipAddress: 172.17.0.11,
       v4IpAddress: 172.17.0.11, macAddress: "00:00:00:0B:31:F2", containerID: abc, attachIps: [], attachMacs: [], attachSubnets: []}
"#),
                y(r#"
apiVersion: kubeovn.io/v1
kind: IP
metadata: {name: static-ip.default}
spec: {podName: static-ip, namespace: default, subnet: ovn-default, ipAddress: 10.16.0.15, macAddress: "00:00:00:53:6B:B6",
       attachSubnets: [macvlan], attachIps: [172.17.0.100], attachMacs: ["00:00:00:53:6B:BB"]}
"#),
                y(r#"
apiVersion: kubeovn.io/v1
kind: IP
metadata: {name: pooled.default.macvlan.default}
spec: {podName: pooled, namespace: default, subnet: macvlan, ipAddress: 172.17.0.201}
"#),
                y(r#"
apiVersion: kubeovn.io/v1
kind: IP
metadata: {name: gone.default.macvlan.default}
spec: {podName: gone, namespace: default, subnet: macvlan, ipAddress: 172.17.0.12}
"#),
                y(
                    "apiVersion: kubeovn.io/v1\nkind: IP\nmetadata: {name: weird}\nspec: {podName: 7, subnet: [x]}\n",
                ),
            ],
        }
    }

    #[test]
    fn the_guides_objects_import() {
        let world = world_with(vec![
            running_pod("default", "samplepod", "u1"),
            running_pod("default", "static-ip", "u2"),
            running_pod("default", "pooled", "u3"),
        ]);
        let p = plan(desired(&guide(), &world), &world, ORIGIN);
        let find = |kind: &str, name: &str| {
            p.items
                .iter()
                .find(|i| i.kind == kind && i.name == name)
                .unwrap_or_else(|| panic!("{kind} {name}: {p:#?}"))
        };
        let s = find("Subnet", "macvlan");
        assert_eq!(s.action, Action::Create);
        let Some(Object::Subnet(sub)) = &s.object else {
            panic!()
        };
        assert_eq!(sub.spec.provider, "macvlan.default");
        assert_eq!(sub.spec.exclude_ips, ["172.17.0.0..172.17.0.10"]);
        assert_eq!(find("Subnet", "ovn-default").action, Action::Skip);
        assert_eq!(find("IPPool", "pool-1").action, Action::Create);
        let l = find("IPLease", "macvlan.172.17.0.11");
        let Some(Object::IPLease(l)) = &l.object else {
            panic!()
        };
        assert_eq!(
            (l.spec.pod_name.as_deref(), l.spec.pod_uid.as_deref()),
            (Some("samplepod"), Some("u1"))
        );
        assert_eq!(l.spec.mac.as_deref(), Some("00:00:00:0b:31:f2"));
        assert_eq!(l.spec.network, "default/macvlan");
        let Some(Object::IPLease(l)) = &find("IPLease", "macvlan.172.17.0.100").object else {
            panic!()
        };
        assert_eq!(l.spec.mac.as_deref(), Some("00:00:00:53:6b:bb"));
        let Some(Object::IPLease(l)) = &find("IPLease", "macvlan.172.17.0.201").object else {
            panic!()
        };
        assert_eq!(l.spec.pool.as_deref(), Some("pool-1"));
        assert!(
            p.items.iter().any(|i| i.action == Action::Skip
                && i.detail.contains("pod default/gone no longer exists"))
        );
        assert!(
            p.items
                .iter()
                .any(|i| i.name == "weird" && i.action == Action::Skip)
        );
        assert_eq!(p.count(Action::Create), 5, "{p:#?}");
    }
}
