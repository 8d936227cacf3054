//! Adoption: the addresses running Pods hold on a network, read from Multus' `network-status` annotation (what
//! host-local, Whereabouts or any other IPAM gave them), become IPLeases held by those Pods, so nadipam never
//! hands them out again once it allocates on that network. Pure: Pods in, claims out.

use std::net::IpAddr;

use serde::Deserialize;

use super::plan::{Action, Claim, Desired, Item};
use super::world::{PodInfo, World};
use crate::api::Subnet;

/// The origin written on adopted leases.
pub(crate) const ORIGIN: &str = "network-status";

/// One element of `k8s.v1.cni.cncf.io/network-status`, as Multus writes it.
#[derive(Debug, Deserialize)]
struct Status {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    mac: Option<String>,
}

/// `<namespace>/<nad>`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NetworkName {
    pub namespace: String,
    pub name: String,
}

impl NetworkName {
    pub(crate) fn parse(value: &str) -> Option<NetworkName> {
        let (namespace, name) = value.trim().split_once('/')?;
        let ok = |s: &str| !s.is_empty() && !s.contains('/') && !s.contains(char::is_whitespace);
        (ok(namespace) && ok(name)).then(|| NetworkName {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    pub(crate) fn provider(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

impl std::fmt::Display for NetworkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Whether a network-status `name` (`ns/nad`, or a bare `nad` in the Pod's namespace) is `network`.
fn names(entry: &str, pod_namespace: &str, network: &NetworkName) -> bool {
    match entry.split_once('/') {
        Some((ns, nad)) => ns == network.namespace && nad == network.name,
        None => pod_namespace == network.namespace && entry == network.name,
    }
}

/// Whether the Pod's `networks` annotation mentions the network (to tell "not started yet" from "not
/// attached"): a cheap textual check, enough for a note.
fn requests(pod: &PodInfo, network: &NetworkName) -> bool {
    pod.networks.as_deref().is_some_and(|n| {
        n.contains(&network.name)
            && (pod.namespace == network.namespace || n.contains(&network.namespace))
    })
}

/// The claims of every Pod attached to `network` on `subnet` (the nadipam Subnet the network will allocate
/// from), and notes for the Pods that give none.
pub(crate) fn desired(network: &NetworkName, subnet: &Subnet, world: &World) -> Desired {
    let subnet_name = subnet.metadata.name.clone().unwrap_or_default();
    let provider = if super::world::network_of_provider(&subnet.spec.provider).as_deref()
        == Some(network.to_string().as_str())
    {
        subnet.spec.provider.clone()
    } else {
        network.provider()
    };
    let mut out = Desired::default();
    for pod in world.pods.values() {
        let who = format!("{}/{}", pod.namespace, pod.name);
        let Some(raw) = pod.network_status.as_deref() else {
            if requests(pod, network) && !pod.finished {
                out.notes.push(Item::note(Action::Skip, "Pod", &who, &format!("pod {who}"), format!(
                    "no {} annotation yet (not started): nothing to adopt now; run adopt again once it runs",
                    super::world::NETWORK_STATUS)));
            }
            continue;
        };
        let entries: Vec<Status> = match serde_json::from_str(raw) {
            Ok(e) => e,
            Err(e) => {
                out.notes.push(Item::note(Action::Conflict, "Pod", &who, &format!("pod {who}"), format!(
                    "annotation {} is not a JSON list of attachments ({e}): its addresses cannot be read; \
                     check the Pod, or re-create it once nadipam allocates", super::world::NETWORK_STATUS)));
                continue;
            }
        };
        for entry in entries
            .iter()
            .filter(|e| names(&e.name, &pod.namespace, network))
        {
            let source = format!(
                "pod {who} {}",
                entry.interface.as_deref().unwrap_or("network-status")
            );
            for text in &entry.ips {
                let Some(ip) = parse_ip(text) else {
                    out.notes.push(Item::note(Action::Conflict, "Pod", &who, &source, format!(
                        "network-status of {network}: ips entry {text:?} is not an IP address (expected e.g. 172.17.0.5)")));
                    continue;
                };
                out.claims.push(Claim {
                    ip,
                    subnet: subnet_name.clone(),
                    provider: provider.clone(),
                    network: network.to_string(),
                    interface: entry.interface.clone(),
                    mac: entry.mac.clone(),
                    pool: None,
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    uid: Some(pod.uid.clone()),
                    source: source.clone(),
                });
            }
        }
    }
    out
}

/// An address as Multus or a peer writes it: bare, or with a prefix length (`172.17.0.5/16`).
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    t.split_once('/').map_or(t, |(a, _)| a).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LeasePhase, OwnerKind};
    use crate::migrate::plan::{Object, plan};
    use crate::migrate::world::PodInfo;

    fn subnet(cidr: &str, exclude: &[&str]) -> Subnet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": "hl"},
            "spec": {"cidrBlock": cidr, "provider": "macvlan-hl.default", "excludeIps": exclude}
        }))
        .unwrap()
    }

    /// A Pod with the network-status Multus writes for a host-local macvlan attachment.
    fn pod(name: &str, created: &str, ips: &[&str]) -> PodInfo {
        let status = serde_json::json!([
            {"name": "cbr0", "interface": "eth0", "ips": ["10.244.1.5"], "mac": "aa:bb:cc:00:00:01", "default": true, "dns": {}},
            {"name": "default/macvlan-hl", "interface": "net1", "ips": ips, "mac": "2E:5C:11:22:33:44", "dns": {}}
        ]);
        PodInfo {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            created: created.into(),
            network_status: Some(status.to_string()),
            networks: Some("macvlan-hl".into()),
            ..PodInfo::default()
        }
    }

    fn world(pods: Vec<PodInfo>) -> World {
        let mut w = World::default();
        for p in pods {
            w.pods.insert((p.namespace.clone(), p.name.clone()), p);
        }
        w.subnets
            .push(subnet("172.30.0.0/24", &["172.30.0.250..172.30.0.254"]));
        w
    }

    fn net() -> NetworkName {
        NetworkName::parse("default/macvlan-hl").unwrap()
    }

    #[test]
    fn network_names_parse() {
        assert_eq!(net().provider(), "macvlan-hl.default");
        for bad in ["macvlan", "/x", "a/", "a/b/c", "a /b"] {
            assert_eq!(NetworkName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn running_pods_become_bound_leases_the_controller_keeps() {
        let w = world(vec![
            pod("a", "2024-01-01T00:00:00Z", &["172.30.0.2"]),
            pod("b", "2024-01-01T00:00:01Z", &["172.30.0.3/24"]),
        ]);
        let p = plan(desired(&net(), &w.subnets[0], &w), &w, ORIGIN);
        assert_eq!(p.count(Action::Create), 2, "{p:#?}");
        let Some(Object::IPLease(l)) = &p.items[0].object else {
            panic!("{p:#?}")
        };
        assert_eq!(l.metadata.name.as_deref(), Some("hl.172.30.0.2"));
        assert_eq!(l.spec.phase, LeasePhase::Bound);
        assert_eq!(l.spec.owner_kind, OwnerKind::Pod);
        assert_eq!(
            (l.spec.pod_name.as_deref(), l.spec.pod_uid.as_deref()),
            (Some("a"), Some("uid-a"))
        );
        assert_eq!(l.spec.token, "uid-a");
        assert_eq!(l.spec.mac.as_deref(), Some("2e:5c:11:22:33:44"));
        assert_eq!(l.spec.interface.as_deref(), Some("net1"));
        assert_eq!(l.spec.network, "default/macvlan-hl");
        assert_eq!(l.spec.provider, "macvlan-hl.default");
        assert_eq!(
            l.metadata.annotations.as_ref().unwrap()[super::super::plan::MIGRATED_FROM],
            "network-status"
        );

        // What the controller decides for such a lease: controller::decide's tests (adopted leases).
    }

    #[test]
    fn conflicts_duplicates_outside_and_repeats() {
        let mut old = pod("old", "2024-01-01T00:00:00Z", &["172.30.0.9"]);
        old.set = Some("web".into());
        let w = world(vec![
            pod("new", "2024-01-02T00:00:00Z", &["172.30.0.9"]),
            old,
            pod("out", "2024-01-01T00:00:00Z", &["10.9.9.9"]),
            pod("excl", "2024-01-01T00:00:00Z", &["172.30.0.251"]),
            pod("junk", "2024-01-01T00:00:00Z", &["not-an-ip"]),
        ]);
        let p = plan(desired(&net(), &w.subnets[0], &w), &w, ORIGIN);
        let by = |a: Action| -> Vec<(String, String)> {
            p.items
                .iter()
                .filter(|i| i.action == a)
                .map(|i| (i.name.clone(), i.detail.clone()))
                .collect()
        };
        let create = by(Action::Create);
        assert_eq!(create.len(), 1, "{p:#?}");
        assert!(
            create[0].1.contains("pod default/old")
                && create[0].1.contains("also held by default/new"),
            "{create:?}"
        );
        let Some(Object::IPLease(l)) = &p
            .items
            .iter()
            .find(|i| i.action == Action::Create)
            .unwrap()
            .object
        else {
            panic!()
        };
        assert_eq!(l.spec.owner_kind, OwnerKind::StatefulSet);
        let conflicts = by(Action::Conflict);
        assert_eq!(conflicts.len(), 3, "{conflicts:#?}");
        assert!(
            conflicts
                .iter()
                .any(|(n, d)| n == "hl.172.30.0.9" && d.contains("two Pods with one address"))
        );
        assert!(
            conflicts
                .iter()
                .any(|(_, d)| d.contains("10.9.9.9, outside Subnet hl")
                    && d.contains("no Subnet contains it"))
        );
        assert!(
            conflicts
                .iter()
                .any(|(_, d)| d.contains("\"not-an-ip\" is not an IP address"))
        );
        assert!(
            by(Action::Skip)
                .iter()
                .any(|(_, d)| d.contains("never hands out"))
        );

        // Applied once: the same plan again finds every lease in place.
        let mut after = w.clone();
        for i in &p.items {
            if let (Action::Create, Some(Object::IPLease(l))) = (i.action, &i.object) {
                after.leases.insert(i.name.clone(), (**l).clone());
            }
        }
        let again = plan(desired(&net(), &after.subnets[0], &after), &after, ORIGIN);
        assert_eq!(again.count(Action::Create), 0);
        assert_eq!(again.count(Action::Exists), 1);
        // A lease of another holder on the address is a conflict.
        let mut taken = w.clone();
        let mut l = (**l).clone();
        l.spec.pod_name = Some("someone".into());
        l.spec.pod_uid = Some("uid-x".into());
        l.spec.token = "tok".into();
        taken.leases.insert("hl.172.30.0.9".into(), l);
        let p = plan(desired(&net(), &taken.subnets[0], &taken), &taken, ORIGIN);
        assert!(
            p.items.iter().any(|i| i.action == Action::Conflict
                && i.detail.contains("leased to pod default/someone")),
            "{p:#?}"
        );
    }

    #[test]
    fn pods_without_status_or_with_bad_status_are_reported_not_fatal() {
        let mut pending = pod("pending", "", &[]);
        pending.network_status = None;
        let mut bad = pod("bad", "", &[]);
        bad.network_status = Some("{not json".into());
        let mut gone = pod("gone", "", &["172.30.0.7"]);
        gone.finished = true;
        let w = world(vec![pending, bad, gone]);
        let p = plan(desired(&net(), &w.subnets[0], &w), &w, ORIGIN);
        assert_eq!(p.count(Action::Create), 0);
        assert!(
            p.items
                .iter()
                .any(|i| i.name == "default/pending" && i.detail.contains("not started"))
        );
        assert!(
            p.items
                .iter()
                .any(|i| i.name == "default/bad" && i.action == Action::Conflict)
        );
        assert!(p.items.iter().any(|i| i.detail.contains("has finished")));
    }
}
