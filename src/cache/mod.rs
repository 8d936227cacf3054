//! In-memory views of the cluster that admission decisions are made from.
//!
//! Reflectors keep NADs, Subnets, IPPools, IPLeases and Nodes (name and labels only, for node-aware pools)
//! current; the allocation index turns the leases into
//! per-subnet free sets. The only write on the admission hot path is the IPLease create, which is what
//! actually reserves an address: the cache only has to be good enough to guess a free candidate.
//!
//! The IPLease watch is the replica's only one: the lease controller, while this replica leads, reads the
//! same store and follows the same events ([`Cache::lease_events`]) instead of watching IPLeases again (a
//! second watch costs the apiserver as much as the first).

mod index;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{Stream, StreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

pub(crate) use index::Names;
pub use index::{Index, SubnetView, layout};

use k8s_openapi::api::core::v1::Node;
use kube::core::{ObjectMeta, PartialObjectMeta};

use crate::api::{IPLease, IPPool, NetworkAttachmentDefinition, Subnet};

/// A cached Node: its name and labels, nothing else (what IPPool and Subnet node selectors read).
pub(crate) type NodeMeta = PartialObjectMeta<Node>;

/// Number of watched kinds; the cache is ready when each has listed once.
const KINDS: usize = 5;

/// Lease events buffered for a follower (the controller) that falls behind; one that falls further behind is
/// told it lagged and starts over from the store, as after a relist.
const LEASE_EVENTS: usize = 4096;

/// One event of the IPLease watch, as the store has already applied it.
pub(crate) type LeaseEvent = Arc<Event<IPLease>>;

pub struct Cache {
    pub nads: Store<NetworkAttachmentDefinition>,
    pub subnets: Store<Subnet>,
    pub pools: Store<IPPool>,
    pub leases: Store<IPLease>,
    pub(crate) nodes: Store<NodeMeta>,
    pub index: Index,
    /// The IPLease watch's events, after the store and the index applied them; sent only while someone
    /// follows them.
    lease_events: broadcast::Sender<LeaseEvent>,
    synced: Arc<AtomicUsize>,
    /// Per kind not listed yet, why (the last watch error): what `/readyz` and the log tell an operator.
    pending: Pending,
}

/// Kind → the last error of its watch, until it lists.
type Pending = Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>;

impl Cache {
    /// Starts the watches on the current tokio runtime. The returned cache fills in the background;
    /// `is_ready` turns true once every kind has been listed.
    pub fn start(client: &Client) -> Arc<Cache> {
        let synced = Arc::new(AtomicUsize::new(0));
        let (nads, nad_w) = reflector::store();
        let (subnets, subnet_w) = reflector::store();
        let (pools, pool_w) = reflector::store();
        let (leases, lease_w) = reflector::store();
        let (nodes, node_w) = reflector::store();
        let cache = Arc::new(Cache {
            nads,
            subnets,
            pools,
            leases,
            nodes,
            index: Index::default(),
            lease_events: broadcast::channel(LEASE_EVENTS).0,
            synced: synced.clone(),
            pending: Pending::default(),
        });

        spawn_reflector(
            Api::<NetworkAttachmentDefinition>::all(client.clone()),
            nad_w,
            (synced.clone(), cache.pending.clone()),
            trim_meta,
            |_| {},
        );
        let c = cache.clone();
        spawn_reflector(
            Api::<Subnet>::all(client.clone()),
            subnet_w,
            (synced.clone(), cache.pending.clone()),
            trim_meta,
            move |ev| {
                // A changed spec is caught by the view's version; a deleted Subnet's view goes now.
                if let Event::Delete(s) = ev {
                    c.index.forget_subnet(&kube::ResourceExt::name_any(s));
                }
            },
        );
        spawn_reflector(
            Api::<IPPool>::all(client.clone()),
            pool_w,
            (synced.clone(), cache.pending.clone()),
            trim_meta,
            |_| {},
        );
        // Metadata only (`Api<PartialObjectMeta<_>>` asks for it): a Node's status (images, conditions) is most
        // of its size and never read here.
        spawn_reflector(
            Api::<NodeMeta>::all(client.clone()),
            node_w,
            (synced.clone(), cache.pending.clone()),
            trim_node,
            |_| {},
        );
        let c = cache.clone();
        spawn_reflector(
            Api::<IPLease>::all(client.clone()),
            lease_w,
            (synced.clone(), cache.pending.clone()),
            trim_lease,
            move |ev| {
                match ev {
                    Event::Apply(l) => c.index.lease_applied(l),
                    Event::Delete(l) => c.index.lease_deleted(l),
                    // A relist replaces the store wholesale; rebuild the index from it lazily.
                    Event::InitDone => {
                        c.index.reset();
                        c.index.reindex(&c.leases);
                    }
                    Event::Init | Event::InitApply(_) => {}
                }
                c.publish_lease_event(ev);
            },
        );
        cache
    }

    /// A cache holding exactly these objects, with no watches behind it (ready at once). For deciding
    /// admissions without an apiserver: the fuzz targets.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn offline(
        nads: Vec<NetworkAttachmentDefinition>,
        subnets: Vec<Subnet>,
        pools: Vec<IPPool>,
        leases: Vec<IPLease>,
    ) -> Cache {
        fn fill<K>(objects: Vec<K>) -> Store<K>
        where
            K: Resource + Clone + 'static,
            K::DynamicType: Default + Eq + std::hash::Hash + Clone,
        {
            let (store, mut writer) = reflector::store();
            for o in objects {
                writer.apply_watcher_event(&Event::Apply(o));
            }
            store
        }
        Cache {
            nads: fill(nads),
            subnets: fill(subnets),
            pools: fill(pools),
            leases: fill(leases),
            nodes: fill(Vec::new()),
            index: Index::default(),
            lease_events: broadcast::channel(LEASE_EVENTS).0,
            synced: Arc::new(AtomicUsize::new(KINDS)),
            pending: Pending::default(),
        }
    }

    /// The same cache with these Nodes (name and labels).
    #[cfg(test)]
    pub(crate) fn with_nodes(mut self, nodes: &[(&str, &[(&str, &str)])]) -> Cache {
        let (store, mut writer) = reflector::store();
        for (name, labels) in nodes {
            let mut n = NodeMeta {
                types: None,
                metadata: ObjectMeta::default(),
                _phantom: std::marker::PhantomData,
            };
            n.metadata.name = Some(name.to_string());
            n.metadata.labels = Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            writer.apply_watcher_event(&Event::Apply(n));
        }
        self.nodes = store;
        self
    }

    /// Follows the IPLease watch from now on: every event after the store applied it. Subscribe before
    /// reading [`Cache::leases`], so nothing falls between the snapshot and the first event.
    pub(crate) fn lease_events(&self) -> broadcast::Receiver<LeaseEvent> {
        self.lease_events.subscribe()
    }

    /// Hands `ev` to the followers; the clone is skipped while nobody follows (a replica that does not lead).
    fn publish_lease_event(&self, ev: &Event<IPLease>) {
        if self.lease_events.receiver_count() == 0 || matches!(ev, Event::InitApply(_)) {
            return;
        }
        // An error only means the last follower left meanwhile.
        let _ = self.lease_events.send(Arc::new(ev.clone()));
    }

    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Acquire) >= KINDS
    }

    /// Why the cache is not ready: each kind whose watch has not listed, with its last error.
    pub fn not_ready_reason(&self) -> String {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return "caches not synced".to_string();
        }
        pending
            .iter()
            .map(|(kind, why)| format!("{kind}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Waits until every kind has been listed once.
    pub async fn wait_ready(&self) {
        while !self.is_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Runs one watch → store → hook pipeline forever (the watcher backs off and relists on errors).
fn spawn_reflector<K, F>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    (synced, pending): (Arc<AtomicUsize>, Pending),
    trim: fn(&mut K),
    hook: F,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    F: Fn(&Event<K>) + Send + 'static,
{
    let stream = watcher(api).modify(trim).reflect(writer);
    let kind = K::kind(&Default::default()).into_owned();
    tokio::spawn(drive(stream, kind, (synced, pending), hook));
}

/// managedFields are never read here, and on a lease they take more memory than the rest of it.
fn trim_meta<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// A lease's labels repeat its spec for the apiserver's label selectors (which nadipam queries live), and it
/// carries no annotation nadipam reads: neither is kept, since a full /16 holds 65 534 leases.
fn trim_lease(l: &mut IPLease) {
    trim_meta(l);
    l.metadata.labels = None;
    l.metadata.annotations = None;
}

/// A cached Node as node scopes read it; `None` for one without a name.
pub(crate) fn node_facts(n: &NodeMeta) -> Option<crate::placement::NodeFacts<'_>> {
    static NONE: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
        std::sync::OnceLock::new();
    Some(crate::placement::NodeFacts {
        name: n.metadata.name.as_deref()?,
        labels: n
            .metadata
            .labels
            .as_ref()
            .unwrap_or_else(|| NONE.get_or_init(Default::default)),
    })
}

/// Of a Node only its name and labels are kept: a few hundred bytes per node at most.
fn trim_node(n: &mut NodeMeta) {
    n.metadata = ObjectMeta {
        name: n.metadata.name.take(),
        labels: n.metadata.labels.take(),
        ..ObjectMeta::default()
    };
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// A watch error in words an operator can act on: a kind the apiserver does not serve names the CRD to
/// install (for NetworkAttachmentDefinitions, Multus's).
fn watch_error(kind: &str, e: &watcher::Error) -> String {
    let not_found = matches!(
        e,
        watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            if s.code == 404
    );
    match (not_found, kind) {
        (true, "NetworkAttachmentDefinition") => "the NetworkAttachmentDefinition CRD \
            (network-attachment-definitions.k8s.cni.cncf.io) is not installed: install Multus (or its CRD) first; \
            nadipam allocates for Multus networks"
            .to_string(),
        (true, _) => format!(
            "the {kind} CRD (nadipam.io) is not installed: install the chart's CRDs (manifests/crds)"
        ),
        _ => e.to_string(),
    }
}

fn watcher<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default().any_semantic()).default_backoff()
}

async fn drive<K, S, F>(
    stream: S,
    kind: String,
    (synced, pending): (Arc<AtomicUsize>, Pending),
    hook: F,
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
    F: Fn(&Event<K>),
{
    let mut counted = false;
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                hook(&ev);
                if matches!(ev, Event::InitDone) && !counted {
                    counted = true;
                    synced.fetch_add(1, Ordering::AcqRel);
                    lock(&pending).remove(&kind);
                }
            }
            Err(e) => {
                let why = watch_error(&kind, &e);
                tracing::warn!(%kind, "watch error; retrying: {why}");
                if !counted {
                    lock(&pending).insert(kind.clone(), why);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> watcher::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "the server could not find the requested resource",
            "reason": "NotFound", "code": 404
        }))
        .unwrap();
        watcher::Error::InitialListFailed(kube::Error::Api(status.into()))
    }

    fn lease(name: &str) -> IPLease {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPLease", "metadata": {"name": name},
            "spec": {"subnet": "s", "ip": "10.0.0.5", "provider": "n.ns", "podNamespace": "ns",
                     "phase": "Reserved", "token": "t", "ownerKind": "Pod", "network": "ns/n"}
        }))
        .unwrap()
    }

    #[test]
    fn lease_events_reach_followers_and_cost_nothing_without_them() {
        let cache = Cache::offline(vec![], vec![], vec![], vec![]);
        // Nobody follows: nothing is kept.
        cache.publish_lease_event(&Event::Apply(lease("a")));
        let mut rx = cache.lease_events();
        assert!(rx.try_recv().is_err(), "an event from before subscribing");
        cache.publish_lease_event(&Event::InitApply(lease("b")));
        cache.publish_lease_event(&Event::Apply(lease("c")));
        cache.publish_lease_event(&Event::InitDone);
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|ev| match ev.as_ref() {
                Event::Apply(l) => format!("apply {}", kube::ResourceExt::name_any(l)),
                Event::InitDone => "init done".to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        // A relist's objects are not sent one by one: its end tells the follower to read the store.
        assert_eq!(got, ["apply c", "init done"]);
    }

    #[test]
    fn a_follower_that_falls_behind_is_told_so() {
        let cache = Cache::offline(vec![], vec![], vec![], vec![]);
        let mut rx = cache.lease_events();
        for i in 0..=LEASE_EVENTS {
            cache.publish_lease_event(&Event::Apply(lease(&format!("l{i}"))));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(1))
        ));
    }

    #[test]
    fn a_missing_crd_is_named_with_what_to_install() {
        assert_eq!(
            watch_error("NetworkAttachmentDefinition", &not_found()),
            "the NetworkAttachmentDefinition CRD (network-attachment-definitions.k8s.cni.cncf.io) is not \
             installed: install Multus (or its CRD) first; nadipam allocates for Multus networks"
        );
        assert_eq!(
            watch_error("Subnet", &not_found()),
            "the Subnet CRD (nadipam.io) is not installed: install the chart's CRDs (manifests/crds)"
        );
    }
}
