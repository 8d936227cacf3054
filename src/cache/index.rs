//! Per-subnet free sets built from the IPLease cache, plus lookups by reservation token and by Pod.
//!
//! A subnet's view is built lazily from the lease store the first time an admission needs it and kept
//! current by lease watch events. It is a hint: the IPLease create decides, so a stale view costs at most a
//! retry, never a duplicate.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::alloc::{Allocator, LayoutError, Mac, MacSet, SubnetLayout};
use crate::api::{IPLease, Subnet};

/// One subnet's allocation state.
pub struct SubnetView {
    /// The Subnet (UID and generation) this view was built from: a changed spec, or a Subnet deleted and
    /// created again, rebuilds the view. Not the resourceVersion: every status write would change it, and a
    /// rebuild reads every lease of the Subnet (65 534 for a full /16).
    version: String,
    pub alloc: Allocator,
    pub macs: MacSet,
    /// The leases holding each MAC: a dual-stack pair shares one, so the MAC is free only when the last
    /// of them goes.
    mac_leases: HashMap<Mac, Names>,
}

#[derive(Default)]
struct Inner {
    subnets: HashMap<String, SubnetView>,
    /// token → lease names, so a retried admission finds what it already reserved.
    by_token: HashMap<String, Names>,
    /// `namespace/pod` → lease names, so a re-created StatefulSet Pod finds its addresses.
    by_pod: HashMap<String, Names>,
}

/// A few lease names (one per address of an admission: usually one or two), sorted. A `BTreeSet` allocates a
/// node for eleven names whatever it holds; with one such set per lease in each lookup, a full /16 spent
/// tens of MiB on empty slots.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Names(Vec<String>);

impl Names {
    pub(crate) fn insert(&mut self, name: String) {
        if let Err(at) = self.0.binary_search(&name) {
            self.0.insert(at, name);
            self.0.shrink_to_fit();
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        if let Ok(at) = self.0.binary_search_by(|n| n.as_str().cmp(name)) {
            self.0.remove(at);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

#[derive(Default)]
pub struct Index {
    inner: Mutex<Inner>,
}

/// The layout of a Subnet object.
pub fn layout(subnet: &Subnet) -> Result<SubnetLayout, LayoutError> {
    let s = &subnet.spec;
    SubnetLayout::parse(
        &subnet.name_any(),
        s.protocol.map(protocol),
        &s.cidr_block,
        s.gateway.as_deref(),
        &s.exclude_ips,
    )
}

/// The allocation core's protocol for the API's.
fn protocol(p: crate::api::Protocol) -> crate::alloc::Protocol {
    match p {
        crate::api::Protocol::Ipv4 => crate::alloc::Protocol::IPv4,
        crate::api::Protocol::Ipv6 => crate::alloc::Protocol::IPv6,
        crate::api::Protocol::Dual => crate::alloc::Protocol::Dual,
    }
}

fn pod_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn lease_ip(lease: &IPLease) -> Option<IpAddr> {
    lease.spec.ip.parse().ok()
}

fn lease_mac(lease: &IPLease) -> Option<Mac> {
    lease.spec.mac.as_deref().and_then(|m| m.parse().ok())
}

impl Index {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters: they are
        // a cache of the lease store and are rebuilt on the next relist.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the subnet's view, building it from the lease store when missing or outdated.
    pub fn with_subnet<R>(
        &self,
        subnet: &Subnet,
        leases: &Store<IPLease>,
        f: impl FnOnce(&mut SubnetView) -> R,
    ) -> Result<R, LayoutError> {
        let name = subnet.name_any();
        let version = format!(
            "{}/{}",
            subnet.uid().unwrap_or_default(),
            subnet.metadata.generation.unwrap_or_default()
        );
        let mut inner = self.lock();
        let view = match inner.subnets.entry(name) {
            Entry::Occupied(o) if o.get().version == version => o.into_mut(),
            entry => {
                let layout = layout(subnet)?;
                let mut view = SubnetView {
                    version,
                    alloc: Allocator::new(&layout),
                    macs: MacSet::new(entry.key()),
                    mac_leases: HashMap::new(),
                };
                for lease in leases
                    .state()
                    .iter()
                    .filter(|l| &l.spec.subnet == entry.key())
                {
                    view.take(lease);
                }
                match entry {
                    Entry::Occupied(mut o) => {
                        o.insert(view);
                        o.into_mut()
                    }
                    Entry::Vacant(v) => v.insert(view),
                }
            }
        };
        Ok(f(view))
    }

    pub fn forget_subnet(&self, name: &str) {
        self.lock().subnets.remove(name);
    }

    /// Drops every view and lookup; they are rebuilt from the store on demand.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.subnets.clear();
        inner.by_token.clear();
        inner.by_pod.clear();
    }

    /// Re-seeds the token and Pod lookups from the store (after a relist).
    pub fn reindex(&self, leases: &Store<IPLease>) {
        let mut inner = self.lock();
        inner.by_token.clear();
        inner.by_pod.clear();
        for l in leases.state() {
            inner.remember(&l);
        }
    }

    pub fn lease_applied(&self, lease: &IPLease) {
        let mut inner = self.lock();
        inner.remember(lease);
        if let Some(view) = inner.subnets.get_mut(&lease.spec.subnet) {
            view.take(lease);
        }
    }

    pub fn lease_deleted(&self, lease: &IPLease) {
        let mut inner = self.lock();
        let name = lease.name_any();
        if let Some(set) = inner.by_token.get_mut(&lease.spec.token) {
            set.remove(&name);
            if set.is_empty() {
                inner.by_token.remove(&lease.spec.token);
            }
        }
        if let Some(pod) = &lease.spec.pod_name {
            let key = pod_key(&lease.spec.pod_namespace, pod);
            if let Some(set) = inner.by_pod.get_mut(&key) {
                set.remove(&name);
                if set.is_empty() {
                    inner.by_pod.remove(&key);
                }
            }
        }
        if let Some(view) = inner.subnets.get_mut(&lease.spec.subnet) {
            if let Some(ip) = lease_ip(lease) {
                view.alloc.release(ip);
            }
            if let Some(mac) = lease_mac(lease)
                && let Some(holders) = view.mac_leases.get_mut(&mac)
            {
                holders.remove(&name);
                if holders.is_empty() {
                    view.mac_leases.remove(&mac);
                    view.macs.release(mac);
                }
            }
        }
    }

    /// Names of the leases reserved under `token`.
    pub fn by_token(&self, token: &str) -> Vec<String> {
        self.lock()
            .by_token
            .get(token)
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }

    /// Names of the leases that name Pod `namespace/name`.
    pub fn by_pod(&self, namespace: &str, name: &str) -> Vec<String> {
        self.lock()
            .by_pod
            .get(&pod_key(namespace, name))
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }
}

impl Inner {
    fn remember(&mut self, lease: &IPLease) {
        let name = lease.name_any();
        self.by_token
            .entry(lease.spec.token.clone())
            .or_default()
            .insert(name.clone());
        if let Some(pod) = &lease.spec.pod_name {
            self.by_pod
                .entry(pod_key(&lease.spec.pod_namespace, pod))
                .or_default()
                .insert(name);
        }
    }
}

impl SubnetView {
    /// Marks a lease's address and MAC as taken. Idempotent: a lease seen twice (our own create, then its
    /// watch event) is not an error, and neither is a dual-stack pair sharing one MAC.
    fn take(&mut self, lease: &IPLease) {
        if let Some(ip) = lease_ip(lease) {
            let _ = self.alloc.reserve(ip);
        }
        if let Some(mac) = lease_mac(lease) {
            let _ = self.macs.reserve(mac);
            self.mac_leases
                .entry(mac)
                .or_default()
                .insert(lease.name_any());
        }
    }

    /// Gives back a MAC an admission marked but did not keep, unless a lease holds it.
    pub fn release_mac(&mut self, mac: Mac) {
        if !self.mac_leases.contains_key(&mac) {
            self.macs.release(mac);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn lease(name: &str, ip: &str, mac: &str) -> IPLease {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPLease", "metadata": {"name": name},
            "spec": {"subnet": "s", "ip": ip, "mac": mac, "provider": "n.ns", "podNamespace": "ns",
                     "phase": "Reserved", "token": "t", "ownerKind": "Pod", "network": "ns/n"}
        }))
        .unwrap()
    }

    #[test]
    fn a_mac_shared_by_a_dual_stack_pair_is_free_only_when_both_leases_go() {
        let subnet: Subnet = serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "Subnet",
            "metadata": {"name": "s", "resourceVersion": "1"},
            "spec": {"provider": "n.ns", "cidrBlock": "10.0.0.0/24,fd00::/120"}
        }))
        .unwrap();
        let mac = "02:00:00:00:00:01";
        let (v4, v6) = (
            lease("s.10.0.0.5", "10.0.0.5", mac),
            lease("s.fd00..5", "fd00::5", mac),
        );
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(v4.clone()));
        writer.apply_watcher_event(&Event::Apply(v6.clone()));
        let index = Index::default();
        let mac: Mac = mac.parse().unwrap();
        let held = |index: &Index| {
            index
                .with_subnet(&subnet, &store, |v| v.macs.contains(mac))
                .unwrap()
        };
        assert!(held(&index));
        index.lease_applied(&v4); // seen again: still one holder per lease
        index.lease_deleted(&v4);
        assert!(held(&index), "the IPv6 lease still holds the MAC");
        index
            .with_subnet(&subnet, &store, |v| v.release_mac(mac))
            .unwrap();
        assert!(
            held(&index),
            "an admission giving the MAC back does not free a leased one"
        );
        index.lease_deleted(&v6);
        assert!(!held(&index));
    }
}
