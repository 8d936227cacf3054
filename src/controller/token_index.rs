//! Lookups the reconciler and the status writer need and the reflector stores do not offer: leases by
//! StatefulSet, leases per IPPool, Pods by reservation token, and recently deleted Pods' tokens. Leases by token are the webhook cache's
//! ([`crate::cache::Index::by_token`]): it is updated from the same watch before the controller hears of an
//! event, so a Pod event mapped through it sees every lease the reconciler has seen.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::owners::{pod_token, set_member};
use crate::api::IPLease;
use crate::cache::Names;

/// How long a deleted Pod's token is remembered: long enough for its leases' reconciles to run, short enough
/// to stay small under churn.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);
/// Tombstones are pruned when the map grows past this size.
const TOMBSTONE_PRUNE_AT: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps are rebuilt from the stores on every relist, so a poisoned lock is safe to reuse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `namespace/statefulset` of a StatefulSet lease (its Pod is named `<statefulset>-<ordinal>`).
pub(crate) fn set_key_of_lease(lease: &IPLease) -> Option<String> {
    set_member(lease).map(|(set, _)| set_key(&lease.spec.pod_namespace, &set))
}

pub(crate) fn set_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// `(subnet, pool)` of a lease taken from an IPPool.
pub(crate) type PoolKey = (String, String);

#[derive(Default)]
struct LeaseMaps {
    by_set: HashMap<String, Names>,
    /// StatefulSet lease name → its set key: what to remove when the lease changes or goes.
    set_of: HashMap<String, String>,
    /// Leases per pool, kept as leases come and go so the status writer need not count every lease.
    per_pool: HashMap<PoolKey, i64>,
    /// Pool lease name → its pool: what to uncount when the lease changes or goes.
    pool_of: HashMap<String, PoolKey>,
}

/// Leases by StatefulSet and per pool. Also raises a flag on every lease change, which the status writer polls.
#[derive(Default)]
pub(crate) struct LeaseIndex {
    maps: Mutex<LeaseMaps>,
    changed: AtomicBool,
}

impl LeaseIndex {
    pub(crate) fn apply(&self, lease: &IPLease) {
        let name = lease.name_any();
        let set = set_key_of_lease(lease);
        let mut m = lock(&self.maps);
        m.forget(&name);
        if let Some(set) = set {
            m.by_set
                .entry(set.clone())
                .or_default()
                .insert(name.clone());
            m.set_of.insert(name.clone(), set);
        }
        if let Some(pool) = &lease.spec.pool {
            let key = (lease.spec.subnet.clone(), pool.clone());
            *m.per_pool.entry(key.clone()).or_default() += 1;
            m.pool_of.insert(name, key);
        }
        self.changed.store(true, Ordering::Release);
    }

    pub(crate) fn remove(&self, lease: &IPLease) {
        lock(&self.maps).forget(&lease.name_any());
        self.changed.store(true, Ordering::Release);
    }

    /// Replaces everything with `leases` (after a relist).
    pub(crate) fn rebuild<'a>(&self, leases: impl IntoIterator<Item = &'a IPLease>) {
        *lock(&self.maps) = LeaseMaps::default();
        for l in leases {
            self.apply(l);
        }
        self.changed.store(true, Ordering::Release);
    }

    pub(crate) fn by_set(&self, namespace: &str, name: &str) -> Vec<ObjectRef<IPLease>> {
        lock(&self.maps)
            .by_set
            .get(&set_key(namespace, name))
            .map(|s| s.iter().map(|n| ObjectRef::new(n)).collect())
            .unwrap_or_default()
    }

    /// Leases per `(subnet, pool)`.
    pub(crate) fn pool_counts(&self) -> HashMap<PoolKey, i64> {
        lock(&self.maps).per_pool.clone()
    }

    /// True once after any lease changed since the last call.
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }
}

impl LeaseMaps {
    fn forget(&mut self, name: &str) {
        if let Some(set) = self.set_of.remove(name)
            && let Some(names) = self.by_set.get_mut(&set)
        {
            names.remove(name);
            if names.is_empty() {
                self.by_set.remove(&set);
            }
        }
        if let Some(pool) = self.pool_of.remove(name)
            && let Some(n) = self.per_pool.get_mut(&pool)
        {
            *n -= 1;
            if *n <= 0 {
                self.per_pool.remove(&pool);
            }
        }
    }
}

#[derive(Default)]
struct PodMaps {
    /// token → Pod.
    by_token: HashMap<String, ObjectRef<Pod>>,
    /// `namespace/name` → token, to drop the old token when a Pod's annotation changes.
    tokens: HashMap<String, String>,
    /// Tokens of Pods deleted recently: when the deletion was seen, and the Pod's name (what a live read
    /// looks for, for a lease that never learnt it).
    gone: HashMap<String, (Instant, String)>,
    pruned: Option<Instant>,
}

/// Pods by reservation token (Pods created with generateName have no name at admission, so their leases
/// name only the token), and the tokens of Pods deleted recently.
#[derive(Default)]
pub(crate) struct PodIndex {
    maps: Mutex<PodMaps>,
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

impl PodIndex {
    pub(crate) fn apply(&self, pod: &Pod) {
        let key = pod_key(pod);
        let mut m = lock(&self.maps);
        if let Some(old) = m.tokens.remove(&key) {
            m.by_token.remove(&old);
        }
        if let Some(token) = pod_token(pod) {
            m.by_token
                .insert(token.to_string(), ObjectRef::from_obj(pod));
            m.tokens.insert(key, token.to_string());
        }
    }

    /// A Pod was deleted: forget it and remember its token for a while.
    pub(crate) fn deleted(&self, pod: &Pod, now: Instant) {
        let key = pod_key(pod);
        let mut m = lock(&self.maps);
        if let Some(old) = m.tokens.remove(&key) {
            m.by_token.remove(&old);
        }
        if let Some(token) = pod_token(pod) {
            m.gone.insert(token.to_string(), (now, pod.name_any()));
        }
        if m.gone.len() > TOMBSTONE_PRUNE_AT
            && m.pruned
                .is_none_or(|p| now.saturating_duration_since(p) > Duration::from_secs(60))
        {
            m.gone
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < TOMBSTONE_TTL);
            m.pruned = Some(now);
        }
    }

    /// Replaces the token map with `pods` (after a relist); tombstones are kept.
    pub(crate) fn rebuild<'a>(&self, pods: impl IntoIterator<Item = &'a Pod>) {
        {
            let mut m = lock(&self.maps);
            m.by_token.clear();
            m.tokens.clear();
        }
        for p in pods {
            self.apply(p);
        }
    }

    pub(crate) fn by_token(&self, token: &str) -> Option<ObjectRef<Pod>> {
        lock(&self.maps).by_token.get(token).cloned()
    }

    /// The name of the Pod carrying `token` that was deleted within the last [`TOMBSTONE_TTL`], if one was.
    pub(crate) fn deleted_pod(&self, token: &str, now: Instant) -> Option<String> {
        lock(&self.maps)
            .gone
            .get(token)
            .filter(|(at, _)| now.saturating_duration_since(*at) < TOMBSTONE_TTL)
            .map(|(_, name)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::keys;
    use crate::api::{IPLeaseSpec, LeasePhase, OwnerKind};
    use std::collections::BTreeMap;

    pub(crate) fn lease(name: &str, token: &str, owner: OwnerKind, pod: Option<&str>) -> IPLease {
        IPLease::new(
            name,
            IPLeaseSpec {
                subnet: "s".into(),
                ip: "10.0.0.2".into(),
                mac: None,
                provider: "n.ns".into(),
                interface: None,
                pod_namespace: "ns".into(),
                pod_name: pod.map(str::to_string),
                pod_uid: None,
                phase: LeasePhase::Reserved,
                token: token.into(),
                owner_kind: owner,
                claim: None,
                pool: None,
                network: "ns/n".into(),
            },
        )
    }

    fn pod(name: &str, token: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        if let Some(t) = token {
            p.metadata.annotations = Some(BTreeMap::from([(
                keys::RESERVATION.to_string(),
                t.to_string(),
            )]));
        }
        p
    }

    fn names(v: Vec<ObjectRef<IPLease>>) -> Vec<String> {
        v.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn statefulset_leases_follow_changes_and_deletes() {
        let idx = LeaseIndex::default();
        let a = lease("s.10.0.0.2", "t1", OwnerKind::StatefulSet, Some("web-1"));
        idx.apply(&a);
        idx.apply(&lease("s.10.0.0.3", "t1", OwnerKind::Pod, None));
        assert!(idx.take_changed());
        assert!(!idx.take_changed());
        assert_eq!(names(idx.by_set("ns", "web")), ["s.10.0.0.2"]);

        // A re-created StatefulSet Pod takes the lease over with a new token: still the set's.
        let mut moved = a.clone();
        moved.spec.token = "t2".into();
        idx.apply(&moved);
        assert_eq!(names(idx.by_set("ns", "web")), ["s.10.0.0.2"]);
        // Another set's Pod name moves it.
        moved.spec.pod_name = Some("db-0".into());
        idx.apply(&moved);
        assert!(idx.by_set("ns", "web").is_empty());
        assert_eq!(names(idx.by_set("ns", "db")), ["s.10.0.0.2"]);

        idx.remove(&moved);
        assert!(idx.by_set("ns", "db").is_empty());
        assert!(idx.take_changed());

        idx.rebuild([&lease(
            "s.10.0.0.9",
            "t9",
            OwnerKind::StatefulSet,
            Some("web-0"),
        )]);
        assert_eq!(names(idx.by_set("ns", "web")), ["s.10.0.0.9"]);
        assert!(
            lock(&idx.maps).set_of.len() == 1,
            "only set leases are remembered"
        );
    }

    #[test]
    fn pool_counts_follow_leases() {
        let idx = LeaseIndex::default();
        let pooled = |name: &str, pool: &str| {
            let mut l = lease(name, "t", OwnerKind::Pod, None);
            l.spec.pool = Some(pool.into());
            l
        };
        let key = |p: &str| ("s".to_string(), p.to_string());
        idx.apply(&pooled("s.10.0.0.2", "a"));
        idx.apply(&pooled("s.10.0.0.2", "a")); // seen again: counted once
        idx.apply(&pooled("s.10.0.0.3", "a"));
        idx.apply(&pooled("s.10.0.0.4", "b"));
        idx.apply(&lease("s.10.0.0.5", "t", OwnerKind::Pod, None));
        assert_eq!(
            idx.pool_counts(),
            HashMap::from([(key("a"), 2), (key("b"), 1)])
        );
        idx.remove(&pooled("s.10.0.0.4", "b"));
        idx.remove(&pooled("s.10.0.0.3", "a"));
        assert_eq!(idx.pool_counts(), HashMap::from([(key("a"), 1)]));
        idx.rebuild([&pooled("s.10.0.0.9", "b")]);
        assert_eq!(idx.pool_counts(), HashMap::from([(key("b"), 1)]));
    }

    #[test]
    fn set_keys_need_a_statefulset_pod_name() {
        let l = |owner, pod| set_key_of_lease(&lease("x", "t", owner, pod));
        assert_eq!(
            l(OwnerKind::StatefulSet, Some("my-web-10")).as_deref(),
            Some("ns/my-web")
        );
        assert_eq!(l(OwnerKind::StatefulSet, Some("web")), None);
        assert_eq!(l(OwnerKind::StatefulSet, None), None);
        assert_eq!(l(OwnerKind::Pod, Some("web-1")), None);
    }

    #[test]
    fn pods_by_token_and_tombstones() {
        let idx = PodIndex::default();
        let now = Instant::now();
        idx.apply(&pod("a", Some("t1")));
        idx.apply(&pod("b", None));
        assert_eq!(idx.by_token("t1").map(|r| r.name).as_deref(), Some("a"));
        // The annotation changed: the old token no longer finds the Pod.
        idx.apply(&pod("a", Some("t2")));
        assert!(idx.by_token("t1").is_none());
        idx.deleted(&pod("a", Some("t2")), now);
        assert!(idx.by_token("t2").is_none());
        assert_eq!(idx.deleted_pod("t2", now).as_deref(), Some("a"));
        assert_eq!(idx.deleted_pod("t2", now + TOMBSTONE_TTL), None);
        assert_eq!(idx.deleted_pod("t1", now), None);

        idx.apply(&pod("c", Some("t3")));
        idx.rebuild([&pod("d", Some("t4"))]);
        assert!(idx.by_token("t3").is_none());
        assert!(idx.by_token("t4").is_some());
        assert!(
            idx.deleted_pod("t2", now).is_some(),
            "tombstones survive a relist"
        );
    }

    #[test]
    fn tombstones_are_pruned() {
        let idx = PodIndex::default();
        let start = Instant::now();
        for i in 0..=TOMBSTONE_PRUNE_AT {
            idx.deleted(&pod(&format!("p{i}"), Some(&format!("t{i}"))), start);
        }
        let later = start + TOMBSTONE_TTL + Duration::from_secs(1);
        idx.deleted(&pod("last", Some("last")), later);
        let m = lock(&idx.maps);
        assert_eq!(m.gone.len(), 1);
        assert!(m.gone.contains_key("last"));
    }
}
