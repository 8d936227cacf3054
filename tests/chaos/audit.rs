//! The three figures of the chaos run, computed from one consistent snapshot (Pods and IPLeases listed at the
//! same etcd revision):
//!
//! 1. **addresses held by two live Pods**: two live Pods whose annotations carry the same address or the
//!    same MAC (Pod-vs-Pod), plus live Pods whose address has no lease or a lease of another reservation (Pod-vs-lease:
//!    the cluster considers the address free or someone else's, so a second Pod can get it);
//! 2. **leases without a live owner**: a lease no live Pod carries the token of (a StatefulSet lease whose
//!    StatefulSet still wants the ordinal is kept by design, and a reservation still inside its reclaim window
//!    is pending; neither is a leak);
//! 3. **status diff**: Subnet `v4UsingIPs` / `v4AvailableIPs` and IPPool `allocatedIPCount` / `totalIPCount`
//!    against the counts of the real leases.
//!
//! Pure: the run gathers the snapshot, this module only counts.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use nadipam::alloc::{Allocator, statefulset_ordinal};
use nadipam::api::{IPLease, IPPool, LeasePhase, OwnerKind, Subnet, lease_name};

/// Everything the figures are computed from.
pub struct Snapshot {
    pub pods: Vec<Pod>,
    pub leases: Vec<IPLease>,
    pub sets: Vec<StatefulSet>,
    pub subnet: Subnet,
    pub pool: Option<IPPool>,
    /// When the snapshot was taken (for the age of reservations).
    pub now: Timestamp,
}

/// What the run checks, with up to a few examples of each problem.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Addresses carried by more than one live Pod.
    pub pod_pod: usize,
    /// MACs carried by more than one live Pod.
    pub mac_pod_pod: usize,
    /// Live Pods whose address has no lease, or a lease of another reservation.
    pub pod_lease: usize,
    /// Leases no live Pod holds (past their reclaim window, not kept for a StatefulSet ordinal).
    pub leaked: usize,
    /// Reservations inside their reclaim window with no Pod yet (not a problem; the run waits them out).
    pub pending: usize,
    /// StatefulSet leases kept for an ordinal whose Pod is being (re)created.
    pub kept_for_sets: usize,
    /// Leases whose Pod lives and holds them by its token, not bound (the default: nadipam binds none).
    pub unbound: usize,
    /// Sum of |status − truth| over the Subnet's and IPPool's counts.
    pub status_diff: u64,
    /// Live Pods with an address, and leases, in the snapshot.
    pub live_pods: usize,
    pub leases: usize,
    /// The status as read, and the truth, in words.
    pub status_line: String,
    /// A few of the addresses held by two, and of the leaks.
    pub held_examples: Vec<String>,
    pub leak_examples: Vec<String>,
}

impl Figures {
    /// Figure 1.
    pub fn held_by_two(&self) -> usize {
        self.pod_pod + self.mac_pod_pod + self.pod_lease
    }

    pub fn clean(&self) -> bool {
        self.held_by_two() == 0 && self.leaked == 0 && self.status_diff == 0
    }

    fn held(&mut self, text: String) {
        if self.held_examples.len() < 10 {
            self.held_examples.push(text);
        }
    }

    fn leak(&mut self, text: String) {
        if self.leak_examples.len() < 10 {
            self.leak_examples.push(text);
        }
    }
}

fn live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn token(pod: &Pod) -> Option<&str> {
    pod.annotations()
        .get("nadipam.io/reservation")
        .map(String::as_str)
}

fn pod_ref(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Time since the lease was created, rounded down to whole seconds of the timestamp.
fn age(lease: &IPLease, now: Timestamp) -> Duration {
    lease
        .creation_timestamp()
        .and_then(|t| Duration::try_from(now.duration_since(t.0)).ok())
        .unwrap_or_default()
}

/// Whether the StatefulSet of a StatefulSet lease still runs the lease's ordinal.
fn kept_by_set(lease: &IPLease, sets: &[StatefulSet]) -> bool {
    let Some(pod) = lease.spec.pod_name.as_deref() else {
        return false;
    };
    let (Some(ordinal), Some((set, _))) = (statefulset_ordinal(pod), pod.rsplit_once('-')) else {
        return false;
    };
    sets.iter()
        .filter(|s| s.namespace().as_deref() == Some(lease.spec.pod_namespace.as_str()))
        .find(|s| s.name_any() == set && s.metadata.deletion_timestamp.is_none())
        .and_then(|s| s.spec.as_ref())
        .is_some_and(|spec| {
            let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
            let replicas = spec.replicas.unwrap_or(1);
            let n = i64::from(ordinal);
            n >= i64::from(start) && n < i64::from(start) + i64::from(replicas.max(0))
        })
}

/// Computes the figures. `provider` names the Pods' result annotations; `reclaim_after` is the replicas'
/// window.
pub fn audit(snap: &Snapshot, provider: &str, reclaim_after: Duration) -> Figures {
    let ip_key = format!("{provider}.kubernetes.io/ip_address");
    let mac_key = format!("{provider}.kubernetes.io/mac_address");
    let mut f = Figures::default();
    let subnet = snap.subnet.name_any();
    let leases: HashMap<String, &IPLease> = snap
        .leases
        .iter()
        .filter(|l| l.spec.subnet == subnet)
        .map(|l| (l.name_any(), l))
        .collect();
    f.leases = leases.len();

    // Live Pods by address, and by token.
    let mut by_ip: BTreeMap<IpAddr, Vec<&Pod>> = BTreeMap::new();
    let mut by_token: HashMap<&str, Vec<&Pod>> = HashMap::new();
    let mut by_mac: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in snap.pods.iter().filter(|p| live(p)) {
        if let Some(t) = token(pod) {
            by_token.entry(t).or_default().push(pod);
        }
        if let Some(mac) = pod.annotations().get(&mac_key) {
            by_mac.entry(mac.to_lowercase()).or_default().push(pod);
        }
        let Some(value) = pod.annotations().get(&ip_key) else {
            continue;
        };
        f.live_pods += 1;
        for ip in value
            .split(',')
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        {
            by_ip.entry(ip).or_default().push(pod);
        }
    }

    // 1. Pod-vs-Pod (by address and by MAC) and Pod-vs-lease.
    for (mac, pods) in by_mac.iter().filter(|(_, pods)| pods.len() > 1) {
        f.mac_pod_pod += 1;
        let names: Vec<String> = pods.iter().map(|p| pod_ref(p)).collect();
        f.held(format!(
            "MAC {mac} is carried by {} live Pods: {names:?}",
            pods.len()
        ));
    }
    for (ip, pods) in &by_ip {
        if pods.len() > 1 {
            f.pod_pod += 1;
            let names: Vec<String> = pods.iter().map(|p| pod_ref(p)).collect();
            f.held(format!(
                "{ip} is carried by {} live Pods: {names:?}",
                pods.len()
            ));
        }
        for pod in pods {
            let name = lease_name(&subnet, *ip);
            match leases.get(&name) {
                None => {
                    f.pod_lease += 1;
                    f.held(format!("{} carries {ip}, which has no lease", pod_ref(pod)));
                }
                Some(l) if Some(l.spec.token.as_str()) != token(pod) => {
                    f.pod_lease += 1;
                    f.held(format!(
                        "{} (token {:?}) carries {ip}, whose lease is reservation {} ({:?} for {:?})",
                        pod_ref(pod),
                        token(pod),
                        l.spec.token,
                        l.spec.phase,
                        l.spec.pod_name
                    ));
                }
                Some(_) => {}
            }
        }
    }

    // 2. Leases without a live owner.
    for l in leases.values() {
        let owner = by_token.get(l.spec.token.as_str()).and_then(|pods| {
            pods.iter().find(|p| {
                p.namespace().as_deref() == Some(l.spec.pod_namespace.as_str())
                    && (l.spec.phase != LeasePhase::Bound || l.spec.pod_uid == p.uid())
            })
        });
        if owner.is_some() {
            if l.spec.phase != LeasePhase::Bound {
                f.unbound += 1;
            }
            continue;
        }
        if l.spec.owner_kind == OwnerKind::StatefulSet && kept_by_set(l, &snap.sets) {
            f.kept_for_sets += 1;
        } else if l.spec.phase == LeasePhase::Reserved && age(l, snap.now) <= reclaim_after {
            f.pending += 1;
        } else {
            f.leaked += 1;
            f.leak(format!(
                "lease {} ({:?}, token {}, pod {:?}/{:?}, age {:?}) has no live owner",
                l.name_any(),
                l.spec.phase,
                l.spec.token,
                l.spec.pod_namespace,
                l.spec.pod_name,
                age(l, snap.now)
            ));
        }
    }

    // 3. Status against the leases.
    let truth_using = leases.len() as u64;
    let assignable = nadipam::cache::layout(&snap.subnet)
        .map(|layout| Allocator::new(&layout).counts().v4_available as u64)
        .unwrap_or(0);
    let st = snap.subnet.status.clone().unwrap_or_default();
    let (using, available) = (st.v4_using_ips as u64, st.v4_available_ips as u64);
    let truth_available = assignable.saturating_sub(truth_using);
    f.status_diff += using.abs_diff(truth_using) + available.abs_diff(truth_available);
    f.status_line = format!(
        "Subnet {subnet}: v4UsingIPs {using} (leases {truth_using}), v4AvailableIPs {available} (expected {truth_available})"
    );
    if let Some(pool) = &snap.pool {
        let name = pool.name_any();
        let truth_alloc = leases
            .values()
            .filter(|l| l.spec.pool.as_deref() == Some(name.as_str()))
            .count() as u64;
        let truth_total = pool_size(pool, &snap.subnet);
        let ps = pool.status.clone().unwrap_or_default();
        let (alloc, total) = (ps.allocated_ip_count as u64, ps.total_ip_count as u64);
        f.status_diff += alloc.abs_diff(truth_alloc) + total.abs_diff(truth_total);
        f.status_line += &format!(
            "; IPPool {name}: allocatedIPCount {alloc} (leases {truth_alloc}), totalIPCount {total} (expected {truth_total})"
        );
    }
    f
}

/// Addresses of the pool that the Subnet may hand out (its ranges, minus what the Subnet never assigns).
fn pool_size(pool: &IPPool, subnet: &Subnet) -> u64 {
    let (Ok(ranges), Ok(layout)) = (
        nadipam::alloc::parse_entries(&pool.spec.ips),
        nadipam::cache::layout(subnet),
    ) else {
        return 0;
    };
    let mut a = Allocator::new(&layout);
    let mut n = 0u64;
    let mut rng = rand::rng();
    // Take every pool address the Subnet would hand out; the count is the pool's size.
    while a
        .pick_pair_in(&ranges, nadipam::alloc::Strategy::Sequential, &mut rng)
        .is_ok()
    {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PROVIDER: &str = "macvlan.ns";
    const KEY: &str = "macvlan.ns.kubernetes.io/ip_address";
    const MAC_KEY: &str = "macvlan.ns.kubernetes.io/mac_address";

    fn pod(name: &str, uid: &str, token: &str, ip: &str) -> Pod {
        let mac = format!("02:00:00:00:00:{:0>2}", ip.rsplit('.').next().unwrap_or(ip));
        pod_with_mac(name, uid, token, ip, &mac)
    }

    fn pod_with_mac(name: &str, uid: &str, token: &str, ip: &str, mac: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid,
                         "annotations": {"nadipam.io/reservation": token, KEY: ip, MAC_KEY: mac}},
            "spec": {"containers": []}
        }))
        .unwrap()
    }

    fn lease(ip: &str, token: &str, phase: &str, uid: Option<&str>, created: i64) -> IPLease {
        serde_json::from_value(json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPLease",
            "metadata": {"name": format!("s.{ip}"), "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"subnet": "s", "ip": ip, "provider": "macvlan.ns", "podNamespace": "ns", "podUid": uid,
                     "phase": phase, "token": token, "ownerKind": "Pod", "network": "ns/macvlan"}
        }))
        .unwrap()
    }

    fn subnet(using: f64, available: f64) -> Subnet {
        serde_json::from_value(json!({
            "apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": "s"},
            "spec": {"cidrBlock": "10.0.0.0/29", "provider": "macvlan.ns"},
            "status": {"v4UsingIPs": using, "v4AvailableIPs": available, "v6UsingIPs": 0.0, "v6AvailableIPs": 0.0}
        }))
        .unwrap()
    }

    fn snap(pods: Vec<Pod>, leases: Vec<IPLease>, subnet: Subnet) -> Snapshot {
        Snapshot {
            pods,
            leases,
            sets: Vec::new(),
            subnet,
            pool: None,
            now: Timestamp::from_second(1_000).unwrap(),
        }
    }

    #[test]
    fn a_consistent_state_is_clean() {
        // A /29 with gateway .1: .2-.6 assignable (5).
        let s = snap(
            vec![
                pod("a", "u1", "t1", "10.0.0.2"),
                pod("b", "u2", "t2", "10.0.0.3"),
            ],
            vec![
                lease("10.0.0.2", "t1", "Bound", Some("u1"), 900),
                lease("10.0.0.3", "t2", "Reserved", None, 990),
            ],
            subnet(2.0, 3.0),
        );
        let f = audit(&s, PROVIDER, Duration::from_secs(15));
        assert!(f.clean(), "{f:?}");
        assert_eq!((f.live_pods, f.leases, f.pending, f.unbound), (2, 2, 0, 1));
    }

    #[test]
    fn duplicates_leaks_and_wrong_counts_are_each_counted() {
        let mut finished = pod("done", "u9", "t9", "10.0.0.6");
        finished.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        let s = snap(
            vec![
                pod("a", "u1", "t1", "10.0.0.2"),
                // Same address as a: pod-vs-pod, and b's lease is a's.
                pod_with_mac("b", "u2", "t2", "10.0.0.2", "02:00:00:00:00:b2"),
                // No lease at all, and a's MAC (in upper case): MAC pod-vs-pod.
                pod_with_mac(
                    "c",
                    "u3",
                    "t3",
                    "10.0.0.3",
                    "02:00:00:00:00:02".to_uppercase().as_str(),
                ),
                finished, // not live: neither a duplicate nor an owner
            ],
            vec![
                lease("10.0.0.2", "t1", "Bound", Some("u1"), 900),
                lease("10.0.0.4", "t4", "Bound", Some("u4"), 900), // its Pod is gone: leaked
                lease("10.0.0.5", "t5", "Reserved", None, 900), // reservation past its window: leaked
                lease("10.0.0.6", "t6", "Reserved", None, 995), // inside its window: pending
                lease("10.0.0.3", "t3", "Bound", Some("other"), 900).renamed("s.10.0.0.99"),
            ],
            subnet(3.0, 3.0),
        );
        let f = audit(&s, PROVIDER, Duration::from_secs(15));
        assert_eq!(f.pod_pod, 1, "{f:?}");
        assert_eq!(f.mac_pod_pod, 1, "a and c carry one MAC: {f:?}");
        assert_eq!(f.pod_lease, 2, "b carries a's lease, c has none: {f:?}");
        assert_eq!(f.held_by_two(), 4);
        assert!(
            f.held_examples
                .iter()
                .any(|e| e.contains("MAC 02:00:00:00:00:02 is carried by 2 live Pods")),
            "{f:?}"
        );
        assert_eq!(
            f.leaked, 3,
            "t4, t5 and the lease bound to another uid: {f:?}"
        );
        assert_eq!(f.pending, 1);
        // 5 leases: using 3 is 2 off, available 3 should be 0.
        assert_eq!(f.status_diff, 2 + 3, "{}", f.status_line);
        assert!(!f.clean());
    }

    trait Renamed {
        fn renamed(self, name: &str) -> Self;
    }

    impl Renamed for IPLease {
        fn renamed(mut self, name: &str) -> Self {
            self.metadata.name = Some(name.into());
            self
        }
    }
}
