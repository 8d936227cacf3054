//! The chaos run (docs/chaos.md): three nadipam-server replicas against one apiserver, all allocating from one
//! Subnet under a mixed load (Pods created and deleted, Deployments scaled, a StatefulSet's Pods deleted,
//! dry runs, admissions rejected after nadipam reserved, AdmissionReviews sent straight to each replica,
//! several replicas racing for one fixed address) while replicas are SIGKILLed and restarted, the leader
//! Lease is stolen and deleted, and kube-apiserver is restarted once. At the end, after the reclaim window,
//! it prints and asserts three figures: addresses held by two live Pods (0), leases without a live owner (0),
//! Subnet/IPPool status against the real leases (no difference).
//!
//! Short form (in `cargo test`, so in CI): 1 000 allocations. Long form: `e2e/chaos` (10 000 allocations;
//! `NADIPAM_CHAOS_ALLOCATIONS=10000 cargo test --test chaos -- --nocapture`).

mod common;

#[path = "chaos/audit.rs"]
mod audit;
#[path = "chaos/direct.rs"]
mod direct;
#[path = "chaos/faults.rs"]
mod faults;
#[path = "chaos/load.rs"]
mod load;
#[path = "chaos/proxy.rs"]
mod proxy;
#[path = "chaos/record.rs"]
mod record;
#[path = "chaos/replicas.rs"]
mod replicas;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, VersionMatch};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use nadipam::api::{IPLease, IPPool, NetworkAttachmentDefinition, Subnet};
use nadipam::webhook::config::{Endpoint, Registration};
use serde_json::json;
use tokio::task::JoinHandle;

use audit::{Figures, Snapshot, audit};
use common::reorder::{Reorderer, TOUCHED, Tally};
use common::{
    DeleteOnDrop, cluster, cluster_info, register_pod_validator, serve_tls, test_namespace,
};
use proxy::{Backends, Proxy};
use replicas::{Flags, Replica};

/// Allocations of the short form; `NADIPAM_CHAOS_ALLOCATIONS` overrides.
const DEFAULT_ALLOCATIONS: u64 = 1_000;
const REPLICAS: usize = 3;
const RECLAIM_AFTER: Duration = Duration::from_secs(15);
const LEADER_LEASE: Duration = Duration::from_secs(5);
/// Every call to the apiserver or a replica is bounded by this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The mutating webhook's timeout; with the test's validating webhook (3 s) the longest admission stays
/// well inside the reclaim window.
const WEBHOOK_TIMEOUT: i32 = 8;

const CIDR: &str = "10.88.0.0/22";
const POOL_RANGE: &str = "10.88.3.0-10.88.3.31";

/// Label of Pods the test's validating webhook rejects (after nadipam reserved), and its message.
pub const DENY_LABEL: &str = "chaos.nadipam.io/deny";
pub const DENIED: &str = "denied by the chaos test webhook";
/// Label of Pods admitted directly: the webhook configuration skips them, the test created them with the
/// patch a replica returned.
pub const DIRECT_LABEL: &str = "chaos.nadipam.io/direct";

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("process: {0}")]
    Process(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("admission: {0}")]
    Admission(String),
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("{0} took longer than {1:?}")]
    Timeout(String, Duration),
}

/// `fut`, bounded by [`CALL_TIMEOUT`].
pub async fn within<T, E>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ChaosError>
where
    E: Into<ChaosError>,
{
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(ChaosError::Timeout(what.to_string(), CALL_TIMEOUT)),
    }
}

/// Counters of the run.
#[derive(Default)]
pub struct Stats {
    pub bare_created: AtomicU64,
    pub pods_deleted: AtomicU64,
    pub dry_runs: AtomicU64,
    pub rejected: AtomicU64,
    pub scales: AtomicU64,
    pub sts_deletes: AtomicU64,
    pub direct_sent: [AtomicU64; REPLICAS],
    pub direct_created: AtomicU64,
    pub direct_orphans: AtomicU64,
    pub direct_dry: AtomicU64,
    pub direct_skipped: AtomicU64,
    pub races: AtomicU64,
    pub mac_races: AtomicU64,
    pub race_winners: AtomicU64,
    pub race_max_winners: AtomicU64,
    pub kills: AtomicU64,
    pub restarts: AtomicU64,
    pub crashes: AtomicU64,
    pub steals: AtomicU64,
    pub lease_deletes: AtomicU64,
    pub leader_changes: AtomicU64,
    pub leaderless_ms: AtomicU64,
    pub audits: AtomicU64,
    pub audit_worst: AtomicU64,
    /// UIDs of the Pods seen with an address (every Pod that got one, however it was created).
    pub pods_seen: Mutex<HashSet<String>>,
    /// Of these, the directly admitted ones (never sent to nadipam by the apiserver, so never reinvoked).
    pub pods_direct: Mutex<HashSet<String>>,
    /// Of the others, those without the reordering webhook's annotation: admitted without a reinvocation.
    pub pods_untouched: Mutex<HashSet<String>>,
    /// Tokens of the directly admitted Pods never created (their reservations must be reclaimed).
    pub orphan_tokens: Mutex<HashSet<String>>,
    pub denials: Mutex<BTreeMap<String, u64>>,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub examples: Mutex<Vec<String>>,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: String) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default() += 1;
}

fn count(set: &Mutex<HashSet<String>>) -> u64 {
    set.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
}

fn get(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// Counts one.
pub fn inc(n: &AtomicU64) {
    n.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub fn denial(&self, kind: String) {
        bump(&self.denials, kind)
    }

    pub fn error(&self, kind: String) {
        bump(&self.errors, kind)
    }

    pub fn example(&self, text: String) {
        let mut e = self.examples.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() < 20 && !e.contains(&text) {
            e.push(text);
        }
    }

    /// A directly admitted Pod that will never be created: its reservation is an orphan.
    pub fn orphan(&self, token: String) {
        inc(&self.direct_orphans);
        self.orphan_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token);
    }

    fn pods_seen(&self) -> u64 {
        count(&self.pods_seen)
    }

    /// Addresses nadipam reserved: every Pod that got one, every rejected admission, every directly admitted
    /// Pod that was never created.
    pub fn allocations(&self) -> u64 {
        self.pods_seen() + get(&self.rejected) + get(&self.direct_orphans)
    }

    /// Reservations left without a Pod on purpose (for the reclaimer).
    fn orphans(&self) -> u64 {
        get(&self.rejected) + get(&self.direct_orphans)
    }
}

/// Everything the generators and faults share.
pub struct World {
    pub client: Client,
    /// Namespace of every Pod and workload.
    pub ns: String,
    /// Namespace of the leader Lease (excluded from the webhook).
    pub sys_ns: String,
    pub subnet: String,
    pub pool: String,
    pub provider: String,
    pub ip_key: String,
    pub mac_key: String,
    /// The StatefulSet's `ip_pool` entries, and the addresses and MACs the races fight over.
    pub sts_pool: Vec<String>,
    pub race_ips: Vec<String>,
    pub race_macs: Vec<String>,
    pub backends: Arc<Backends>,
    /// The reordering webhook's calls and what it saw.
    pub reorder_calls: Arc<AtomicUsize>,
    pub reorder: Arc<Tally>,
    pub replicas: Vec<Mutex<Replica>>,
    pub direct_agent: ureq::Agent,
    pub leader_lease: Duration,
    pub stats: Stats,
    stop: AtomicBool,
    faults_stop: AtomicBool,
}

impl World {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn faults_stopping(&self) -> bool {
        self.faults_stop.load(Ordering::SeqCst)
    }

    pub fn pool_key(&self) -> String {
        format!("{}.kubernetes.io/ip_pool", self.provider)
    }
}

/// Pods and leases at one etcd revision (the lease and StatefulSet lists are read at the Pod list's
/// resourceVersion), plus the Subnet's and IPPool's current status.
async fn snapshot(w: &World) -> Result<Snapshot, ChaosError> {
    let pods = within(
        "listing pods",
        Api::<Pod>::namespaced(w.client.clone(), &w.ns).list(&ListParams::default()),
    )
    .await?;
    let rv = pods
        .metadata
        .resource_version
        .clone()
        .ok_or_else(|| ChaosError::Admission("pod list without resourceVersion".into()))?;
    let at = |p: ListParams| p.at(&rv).matching(VersionMatch::Exact);
    let leases = within(
        "listing leases",
        Api::<IPLease>::all(w.client.clone()).list(&at(
            ListParams::default().labels(&format!("nadipam.io/subnet={}", w.subnet))
        )),
    )
    .await?;
    let sets = within(
        "listing statefulsets",
        Api::<StatefulSet>::namespaced(w.client.clone(), &w.ns).list(&at(ListParams::default())),
    )
    .await?;
    let subnet = within(
        "reading the subnet",
        Api::<Subnet>::all(w.client.clone()).get(&w.subnet),
    )
    .await?;
    let pool = within(
        "reading the pool",
        Api::<IPPool>::all(w.client.clone()).get_opt(&w.pool),
    )
    .await?;
    Ok(Snapshot {
        pods: pods.items,
        leases: leases.items,
        sets: sets.items,
        subnet,
        pool,
        now: Timestamp::now(),
    })
}

/// Every 2 s during the load: no address may be carried by two live Pods, nor by a Pod without its lease,
/// at any moment (not only at the end).
async fn audit_during(w: Arc<World>) {
    while !w.stopping() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Ok(snap) = snapshot(&w).await else {
            continue;
        };
        let f = audit(&snap, &w.provider, RECLAIM_AFTER);
        w.stats.audits.fetch_add(1, Ordering::Relaxed);
        let bad = f.held_by_two() as u64;
        if bad > 0 {
            w.stats.audit_worst.fetch_max(bad, Ordering::Relaxed);
            for e in &f.held_examples {
                w.stats.example(format!("during the run: {e}"));
            }
        }
    }
}

/// Records every Pod that got an address (watch; relists after errors).
async fn count_pods(w: Arc<World>) {
    let api: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    let mut events =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    while let Some(ev) = events.next().await {
        if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev
            && p.annotations().contains_key(&w.ip_key)
            && let Some(uid) = p.uid()
        {
            let add = |set: &Mutex<HashSet<String>>| {
                set.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(uid.clone())
            };
            add(&w.stats.pods_seen);
            if p.labels().contains_key(DIRECT_LABEL) {
                add(&w.stats.pods_direct);
            } else if !p.annotations().contains_key(TOUCHED) && add(&w.stats.pods_untouched) {
                w.stats.example(format!(
                    "pod {} got an address without passing the reordering webhook",
                    p.name_any()
                ));
            }
        }
    }
}

/// The test's validating webhook: refuses every Pod it is sent (its configuration selects the labelled ones).
async fn deny(
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let response = match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
        Ok(req) => AdmissionResponse::from(&req).deny(DENIED),
        Err(e) => AdmissionResponse::invalid(e.to_string()),
    };
    Json(response.into_review())
}

/// Stops the test's validating webhook server when dropped.
struct Denier(axum_server::Handle<std::net::SocketAddr>);

impl Drop for Denier {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Pods without `label`.
fn without(label: &str) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: label.to_string(),
            operator: "DoesNotExist".to_string(),
            values: None,
        }]),
        match_labels: None,
    }
}

async fn apply<K>(client: &Client, obj: &K) -> Result<(), ChaosError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let params = PatchParams::apply("nadipam-chaos").force();
    within(
        "applying a webhook configuration",
        Api::<K>::all(client.clone()).patch(&obj.name_any(), &params, &Patch::Apply(obj)),
    )
    .await
    .map(|_| ())
}

/// Registers nadipam's configurations with the proxy's URL (Pods labelled [`DIRECT_LABEL`] skipped), and the
/// test's validating webhook for the Pods labelled [`DENY_LABEL`] in `ns`.
async fn register(
    client: &Client,
    proxy_url: &str,
    ns: &str,
    sys_ns: &str,
) -> Result<(Vec<DeleteOnDrop>, Denier), ChaosError> {
    let cluster = cluster_info();
    let reg = Registration {
        endpoint: Endpoint::Url(proxy_url.to_string()),
        ca_bundle: cluster.webhook_ca_pem(),
        exclude_namespaces: vec![sys_ns.to_string()],
        suffix: format!("-e2e-chaos-{}", std::process::id()),
        timeout_seconds: WEBHOOK_TIMEOUT,
        default_network: false,
    };
    let mut m = reg.mutating();
    for wh in m.webhooks.iter_mut().flatten() {
        wh.object_selector = Some(without(DIRECT_LABEL));
    }
    let v = reg.validating();
    let mut guards = vec![
        DeleteOnDrop::new("mutatingwebhookconfiguration", &m.name_any(), None),
        DeleteOnDrop::new("validatingwebhookconfiguration", &v.name_any(), None),
    ];
    apply(client, &m).await?;
    apply(client, &v).await?;

    let app = axum::Router::new().route("/validate", post(deny));
    let (port, handle) = serve_tls(app).await;
    let denier = Denier(handle);
    let name = format!("nadipam-chaos-deny-e2e-{}", std::process::id());
    guards.push(register_pod_validator(client, &name, port, ns, DENY_LABEL, 3).await);
    Ok((guards, denier))
}

/// Polls `check` every 250 ms until it returns Ok, or fails after `timeout` with the last state.
async fn until<T, F, Fut>(what: &str, timeout: Duration, check: F) -> Result<T, ChaosError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    common::poll(timeout, Duration::from_millis(250), check)
        .await
        .map_err(|last| ChaosError::Timeout(format!("{what} (last: {last})"), timeout))
}

/// The test bed: replicas, proxy, registrations, namespaces, network objects. Dropping it removes the
/// registrations first (so nothing in the cluster calls a webhook that is going away), then stops the
/// servers and deletes the objects.
struct Bed {
    registrations: Vec<DeleteOnDrop>,
    reorderer: Option<Reorderer>,
    denier: Option<Denier>,
    proxy: Option<Proxy>,
    world: Arc<World>,
    objects: Vec<DeleteOnDrop>,
    namespaces: Vec<DeleteOnDrop>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.registrations.clear();
        self.reorderer.take();
        self.denier.take();
        self.proxy.take();
        for r in &self.world.replicas {
            r.lock().unwrap_or_else(|p| p.into_inner()).kill();
        }
        self.objects.clear();
        self.namespaces.clear();
    }
}

async fn create<K>(api: &Api<K>, obj: serde_json::Value) -> Result<K, ChaosError>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let obj: K =
        serde_json::from_value(obj).map_err(|e| ChaosError::Admission(format!("literal: {e}")))?;
    within(
        "creating an object",
        api.create(&PostParams::default(), &obj),
    )
    .await
}

async fn setup() -> Result<Bed, ChaosError> {
    let client = cluster().await;
    let c = cluster_info();
    common::server::install_crds(c);
    common::server::remove_stale_registrations(c);
    let (ns, ns_guard) = test_namespace(&client, "chaos").await;
    let (sys_ns, sys_guard) = test_namespace(&client, "chaos-sys").await;
    let namespaces = vec![ns_guard, sys_guard];
    // Ordered after nadipam's configuration: every Pod nadipam admits through the apiserver is reinvoked.
    // Directly admitted Pods never reach nadipam through the apiserver, so they are left out of it too: its calls
    // are then the Pods nadipam is reinvoked for.
    let reorderer = Reorderer::start_except(&client, &ns, Some(DIRECT_LABEL)).await;

    let (tls_cert, tls_key) = c.webhook_tls();
    let flags = Flags {
        kubeconfig: c.kubeconfig.clone(),
        tls_cert,
        tls_key,
        namespace: sys_ns.clone(),
        reclaim_after: RECLAIM_AFTER,
        leader_lease: LEADER_LEASE,
        logs: c.state.join("logs"),
        run: ns.trim_start_matches("chaos-").to_string(),
    };
    let mut replicas = Vec::new();
    for i in 0..REPLICAS {
        let mut r = Replica::new(i, &flags)?;
        r.start()?;
        replicas.push(r);
    }
    let backends = Arc::new(Backends::new(replicas.iter().map(Replica::url).collect()));
    let ca = c.webhook_ca_pem();
    let proxy = Proxy::start(backends.clone(), &ca).await?;
    until("every replica ready", Duration::from_secs(90), || async {
        if backends.all_ready() {
            Ok(())
        } else {
            Err("not all ready".into())
        }
    })
    .await?;

    let provider = format!("macvlan.{ns}");
    let subnet = ns.clone();
    let pool = format!("{ns}-pool");
    let world = Arc::new(World {
        client: client.clone(),
        ns: ns.clone(),
        sys_ns: sys_ns.clone(),
        subnet: subnet.clone(),
        pool: pool.clone(),
        ip_key: format!("{provider}.kubernetes.io/ip_address"),
        mac_key: format!("{provider}.kubernetes.io/mac_address"),
        provider: provider.clone(),
        sts_pool: (240..246).map(|n| format!("10.88.3.{n}")).collect(),
        race_ips: (200..240).map(|n| format!("10.88.3.{n}")).collect(),
        race_macs: (0..40).map(|n| format!("02:88:03:00:00:{n:02x}")).collect(),
        backends: backends.clone(),
        reorder_calls: reorderer.calls.clone(),
        reorder: reorderer.tally.clone(),
        replicas: replicas.into_iter().map(Mutex::new).collect(),
        direct_agent: proxy::agent(&ca, CALL_TIMEOUT)?,
        leader_lease: LEADER_LEASE,
        stats: Stats::default(),
        stop: AtomicBool::new(false),
        faults_stop: AtomicBool::new(false),
    });
    let mut bed = Bed {
        registrations: Vec::new(),
        reorderer: Some(reorderer),
        denier: None,
        proxy: Some(proxy),
        world: world.clone(),
        objects: Vec::new(),
        namespaces,
    };
    let proxy_url = bed
        .proxy
        .as_ref()
        .map(|p| p.url.clone())
        .unwrap_or_default();
    let (registrations, denier) = register(&client, &proxy_url, &ns, &sys_ns).await?;
    bed.registrations = registrations;
    bed.denier = Some(denier);

    // The network: NAD, Subnet and IPPool go through nadipam's validating webhook (via the proxy).
    let config = json!({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
                        "ipam": {"type": "nadipam", "provider": provider}});
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), &ns);
    let subnets: Api<Subnet> = Api::all(client.clone());
    let pools: Api<IPPool> = Api::all(client.clone());
    until("the NAD to be created", Duration::from_secs(60), || async {
        create(
            &nads,
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                             "metadata": {"name": "macvlan", "namespace": ns},
                             "spec": {"config": config.to_string()}}),
        )
        .await
        .map_err(|e| e.to_string())
    })
    .await?;
    bed.objects.push(DeleteOnDrop::new("subnet", &subnet, None));
    create(
        &subnets,
        json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": subnet},
                            "spec": {"protocol": "IPv4", "cidrBlock": CIDR, "provider": provider}}),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bed.objects
        .insert(0, DeleteOnDrop::new("ippool", &pool, None));
    create(
        &pools,
        json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": pool},
                          "spec": {"subnet": subnet, "ips": [POOL_RANGE]}}),
    )
    .await?;
    warm_up(&world).await?;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for (name, _, pooled) in load::DEPLOYMENTS {
        let d = load::deployment(&world, name, pooled)?;
        within(
            "creating a deployment",
            deployments.create(&PostParams::default(), &d),
        )
        .await?;
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    within(
        "creating the statefulset",
        sets.create(&PostParams::default(), &load::statefulset(&world)?),
    )
    .await?;
    Ok(bed)
}

/// Waits until every replica allocates from the new Subnet and pool (dry runs sent to each one), the
/// apiserver calls nadipam through the proxy, and the test's validating webhook rejects labelled Pods.
async fn warm_up(w: &World) -> Result<(), ChaosError> {
    for i in 0..REPLICAS {
        let pod = load::pod_json(
            w,
            load::Name::Fixed("probe"),
            &[],
            &[(w.pool_key(), w.pool.clone())],
        );
        until(
            &format!("replica {i} to allocate from the pool"),
            Duration::from_secs(60),
            || {
                let pod = pod.clone();
                async move {
                    let uid = uuid::Uuid::new_v4().to_string();
                    let body = direct::review(&uid, &w.ns, &pod, true).to_string();
                    let url = format!("{}/mutate-pods", w.backends.urls[i]);
                    let agent = w.direct_agent.clone();
                    let sent = tokio::task::spawn_blocking(move || {
                        proxy::post(&agent, &url, body.as_bytes())
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                    match sent {
                        proxy::Sent::Answer(200, b) => match direct::answer(&uid, &b) {
                            Ok(direct::Answer::Patched(_)) => Ok(()),
                            other => Err(format!("{other:?}")),
                        },
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await?;
    }
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    let dry = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let probe: Pod =
        serde_json::from_value(load::pod_json(w, load::Name::Fixed("probe"), &[], &[]))
            .map_err(|e| ChaosError::Admission(e.to_string()))?;
    until(
        "the apiserver to call nadipam through the proxy",
        Duration::from_secs(60),
        || async {
            match pods.create(&dry, &probe).await {
                Ok(p) if p.annotations().contains_key(&w.ip_key) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    // A labelled Pod without a network (nadipam skips it) shows when the test's webhook is called.
    let mut n = 0;
    until(
        "the apiserver to call the test's validating webhook",
        Duration::from_secs(60),
        || {
            n += 1;
            let p: Result<Pod, _> = serde_json::from_value(json!({
                "metadata": {"name": format!("deny-probe-{n}"), "labels": {DENY_LABEL: "true"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            }));
            let pods = pods.clone();
            async move {
                let p = p.map_err(|e| e.to_string())?;
                match pods.create(&PostParams::default(), &p).await {
                    Err(e) if e.to_string().contains(DENIED) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await
}

fn allocations_wanted() -> u64 {
    std::env::var("NADIPAM_CHAOS_ALLOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_ALLOCATIONS)
}

fn seed() -> u64 {
    std::env::var("NADIPAM_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random)
}

/// Waits for `tasks` to end (they have been told to stop); a task still running after `grace` is aborted.
async fn join_all(tasks: Vec<JoinHandle<()>>, grace: Duration) {
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout(grace, t).await.is_err() {
            abort.abort();
        }
    }
}

/// Lines of `log` that contain `needle`.
fn lines_with(log: &Path, needle: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

fn print_figures(title: &str, f: &Figures) {
    eprintln!("[chaos] {title}");
    eprintln!(
        "[chaos]   addresses held by two live Pods: {} (Pod-vs-Pod {}, MAC Pod-vs-Pod {}, Pod-vs-lease {}; {} live \
         Pods with an address)",
        f.held_by_two(),
        f.pod_pod,
        f.mac_pod_pod,
        f.pod_lease,
        f.live_pods
    );
    eprintln!(
        "[chaos]   leases without a live owner: {} (of {} leases; {} kept for StatefulSet ordinals, {} reservations \
         inside the reclaim window, {} held by their Pod's token, unbound)",
        f.leaked, f.leases, f.kept_for_sets, f.pending, f.unbound
    );
    eprintln!(
        "[chaos]   status diff: {} ({})",
        f.status_diff, f.status_line
    );
    for e in f.held_examples.iter().chain(&f.leak_examples) {
        eprintln!("[chaos]     {e}");
    }
}

/// What the load phase did.
struct Loaded {
    allocations: u64,
    time: Duration,
    /// How long kube-apiserver was away, once restarted.
    apiserver_down: Option<Duration>,
    /// From the restart's SIGKILL until the new kube-apiserver was ready.
    apiserver_window: Option<(Instant, Instant)>,
}

/// Runs the load and the faults until `target` allocations, restarting kube-apiserver at half way, then stops
/// both. Fails the run when the time budget (generous: 2 min + 0.6 s per allocation) runs out first.
async fn run_load(w: &Arc<World>, target: u64, seed: u64) -> Loaded {
    let start = Instant::now();
    let load_tasks = vec![
        tokio::spawn(load::bare(w.clone(), seed, 0)),
        tokio::spawn(load::bare(w.clone(), seed + 1, 1)),
        tokio::spawn(load::direct(w.clone(), seed + 2, 0)),
        tokio::spawn(load::direct(w.clone(), seed + 3, 1)),
        tokio::spawn(load::deployments(w.clone(), seed + 4)),
        tokio::spawn(load::statefulset_churn(w.clone(), seed + 5)),
        tokio::spawn(load::races(w.clone(), seed + 6)),
        tokio::spawn(audit_during(w.clone())),
    ];
    let counter = tokio::spawn(count_pods(w.clone()));
    let fault_tasks = vec![
        tokio::spawn(faults::killer(w.clone(), seed + 7)),
        tokio::spawn(faults::thief(w.clone(), seed + 8)),
        tokio::spawn(faults::leader_watch(w.clone())),
    ];
    let budget = Duration::from_secs(120) + Duration::from_millis(600) * target as u32;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut apiserver_down = None;
    let mut apiserver_window = None;
    let mut report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = w.stats.allocations();
        if done >= target {
            break;
        }
        assert!(
            start.elapsed() < budget,
            "only {done} of {target} allocations after {budget:?}; errors {:?}",
            w.stats.errors.lock().unwrap_or_else(|p| p.into_inner())
        );
        if apiserver_down.is_none() && done >= target / 2 {
            eprintln!("[chaos] {done} allocations: restarting kube-apiserver");
            let from = Instant::now();
            match tokio::task::spawn_blocking(move || faults::restart_apiserver(repo)).await {
                Ok(Ok(d)) => {
                    apiserver_down = Some(d);
                    apiserver_window = Some((from, Instant::now()));
                }
                Ok(Err(e)) => panic!("{e}"),
                Err(e) => panic!("restarting kube-apiserver: {e}"),
            }
        }
        if report.elapsed() >= Duration::from_secs(10) {
            report = Instant::now();
            eprintln!(
                "[chaos] {:>4}s: {done}/{target} allocations, {} kills, {} leader changes, worst audit {}",
                start.elapsed().as_secs(),
                get(&w.stats.kills),
                get(&w.stats.leader_changes),
                get(&w.stats.audit_worst)
            );
        }
    }
    let loaded = Loaded {
        allocations: w.stats.allocations(),
        time: start.elapsed(),
        apiserver_down,
        apiserver_window,
    };
    w.stop.store(true, Ordering::SeqCst);
    counter.abort();
    join_all(load_tasks, Duration::from_secs(30)).await;
    w.faults_stop.store(true, Ordering::SeqCst);
    join_all(fault_tasks, Duration::from_secs(30)).await;
    loaded
}

/// The end state.
struct Settled {
    converged: Result<(), ChaosError>,
    figures: Figures,
    time: Duration,
}

/// Every replica up and one of them leading, the reclaim window for the last orphans, then the figures until
/// they reach 0 (a Pod deleted a moment ago still has its lease for some milliseconds, status is written
/// once a second).
async fn settle(w: &World) -> Settled {
    let start = Instant::now();
    faults::revive_crashed(w);
    for (i, r) in w.replicas.iter().enumerate() {
        let mut r = r.lock().unwrap_or_else(|p| p.into_inner());
        if !r.check().unwrap_or(false) {
            r.start()
                .unwrap_or_else(|e| panic!("starting replica {i}: {e}"));
        }
    }
    until("every replica ready", Duration::from_secs(90), || async {
        if w.backends.all_ready() {
            Ok(())
        } else {
            Err("not all ready".into())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    until("a leader", Duration::from_secs(60), || async {
        match faults::leader(w).await {
            Some(h) if h != faults::THIEF => Ok(h),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(RECLAIM_AFTER + Duration::from_secs(2)).await;

    let last: Mutex<Figures> = Mutex::new(Figures::default());
    let converged = until(
        "the figures to reach 0",
        Duration::from_secs(120),
        || async {
            let snap = snapshot(w).await.map_err(|e| e.to_string())?;
            let f = audit(&snap, &w.provider, RECLAIM_AFTER);
            // Unbound leases of live Pods are fine: the server binds none by default (the token holds them).
            let ok = f.clean() && f.pending == 0;
            *last.lock().unwrap_or_else(|p| p.into_inner()) = f.clone();
            if ok { Ok(()) } else { Err(format!("{f:?}")) }
        },
    )
    .await;
    Settled {
        converged,
        figures: last.into_inner().unwrap_or_else(|p| p.into_inner()),
        time: start.elapsed(),
    }
}

/// What the replicas' logs (every term of every replica) tell.
struct Logged {
    /// Reservations reclaimed by a leader.
    reclaimed: usize,
    /// Directly admitted Pods never created, and how many of their reservations were reclaimed by token.
    known_orphans: usize,
    known_reclaimed: usize,
    panics: u64,
}

fn read_logs(w: &World) -> Logged {
    let logs: Vec<std::path::PathBuf> = w
        .replicas
        .iter()
        .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).log.clone())
        .collect();
    let reclaims: Vec<String> = logs
        .iter()
        .flat_map(|l| lines_with(l, "Reclaimed 10.88."))
        .collect();
    let known = w
        .stats
        .orphan_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let known_reclaimed = known
        .iter()
        .filter(|t| {
            let needle = format!("(reservation {t})");
            reclaims.iter().any(|l| l.contains(&needle))
        })
        .count();
    Logged {
        reclaimed: reclaims.len(),
        known_orphans: known.len(),
        known_reclaimed,
        panics: logs
            .iter()
            .map(|l| lines_with(l, "panicked").len())
            .sum::<usize>() as u64,
    }
}

/// What the run saw of reinvocation: the reordering webhook's calls, the reinvocations the proxy passed to
/// nadipam and their answers, and the Pods.
#[derive(serde::Serialize)]
struct Reinvoked {
    /// Pods that got an address through the apiserver (not admitted directly).
    pods_through_apiserver: u64,
    /// Of these, the ones carrying the reordering webhook's annotation: changed after nadipam's call, so
    /// nadipam was called again and admitted them.
    pods_reinvoked: u64,
    pods_not_reinvoked: u64,
    reorderer_calls: u64,
    reorderer_after_nadipam: u64,
    reorderer_after_nadipam_dry: u64,
    reorderer_again: u64,
    reorderer_again_dry: u64,
    nadipam_reinvoked: u64,
    nadipam_reinvoked_dry: u64,
    nadipam_dry_denied: u64,
    nadipam_denied: u64,
    /// Reinvocations refused because the token lookup got no answer from the API server, while kube-apiserver
    /// restarted (expected: the apiserver that asked is gone too) and at any other time (a failure).
    nadipam_api_errors_at_restart: u64,
    nadipam_api_errors_otherwise: u64,
    nadipam_changed: u64,
    nadipam_unanswered: u64,
    /// Denials of the kind `reservation` the load saw (its own Pods, the directly admitted ones included).
    load_denials: u64,
    /// Denials of the kind `reservation_api_error` the load saw.
    load_api_errors: u64,
}

impl Reinvoked {
    fn of(w: &World, loaded: &Loaded) -> Reinvoked {
        let s = &w.stats;
        let r = &w.backends.reinvocations;
        let t = &w.reorder;
        let n = |a: &AtomicUsize| a.load(Ordering::SeqCst) as u64;
        let pods_through_apiserver = s.pods_seen() - count(&s.pods_direct);
        let pods_not_reinvoked = count(&s.pods_untouched);
        // The replicas see the API server go a moment before the restart reports the kill, and their calls
        // may fail for a moment after it is ready again.
        let slack = Duration::from_secs(2);
        let at_restart = |t: &Instant| {
            loaded
                .apiserver_window
                .is_some_and(|(from, to)| *t + slack >= from && *t <= to + slack)
        };
        let api_errors = r
            .api_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let denied = s.denials.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // Of one kind, whoever saw them (apiserver, direct, race).
        let denials = |kind: &str| {
            let suffix = format!(": {kind}");
            denied
                .iter()
                .filter(|(k, _)| k.ends_with(&suffix))
                .map(|(_, n)| n)
                .sum()
        };
        let nadipam_api_errors_at_restart =
            api_errors.iter().filter(|t| at_restart(t)).count() as u64;
        Reinvoked {
            pods_through_apiserver,
            pods_reinvoked: pods_through_apiserver - pods_not_reinvoked,
            pods_not_reinvoked,
            reorderer_calls: n(&w.reorder_calls),
            reorderer_after_nadipam: n(&t.after_nadipam),
            reorderer_after_nadipam_dry: n(&t.after_nadipam_dry),
            reorderer_again: n(&t.again),
            reorderer_again_dry: n(&t.again_dry),
            nadipam_reinvoked: get(&r.answered),
            nadipam_reinvoked_dry: get(&r.dry),
            nadipam_dry_denied: get(&r.dry_denied),
            nadipam_denied: get(&r.denied),
            nadipam_api_errors_at_restart,
            nadipam_api_errors_otherwise: api_errors.len() as u64 - nadipam_api_errors_at_restart,
            nadipam_changed: get(&r.changed),
            nadipam_unanswered: get(&r.unanswered),
            load_denials: denials("reservation"),
            load_api_errors: denials("reservation_api_error"),
        }
    }
}

/// Prints the totals of the run.
fn report(w: &World, target: u64, loaded: &Loaded, logged: &Logged) {
    let s = &w.stats;
    let sent: Vec<u64> = s.direct_sent.iter().map(get).collect();
    let served: Vec<u64> = w.backends.served.iter().map(get).collect();
    eprintln!(
        "[chaos] allocations: {} (target {target}) = {} Pods that got an address + {} rejected after \
         reserving + {} directly admitted Pods never created",
        loaded.allocations,
        s.pods_seen(),
        get(&s.rejected),
        get(&s.direct_orphans)
    );
    eprintln!(
        "[chaos] load: {} Pods created through the apiserver, {} directly admitted and created, {} dry runs \
         ({} direct), {} Pod deletes ({} StatefulSet Pods), {} scalings; {} races for one fixed address \
         or MAC ({} for a MAC; {} winners, at most {} per race)",
        get(&s.bare_created),
        get(&s.direct_created),
        get(&s.dry_runs) + get(&s.direct_dry),
        get(&s.direct_dry),
        get(&s.pods_deleted),
        get(&s.sts_deletes),
        get(&s.scales),
        get(&s.races),
        get(&s.mac_races),
        get(&s.race_winners),
        get(&s.race_max_winners)
    );
    eprintln!(
        "[chaos] spread: admissions through the proxy per replica {served:?} ({} sent on after a refused \
         connection, {} cut, {} with no replica ready); AdmissionReviews sent directly per replica {sent:?} \
         ({} skipped: replica not ready)",
        get(&w.backends.redirected),
        get(&w.backends.cut),
        get(&w.backends.unavailable),
        get(&s.direct_skipped)
    );
    eprintln!(
        "[chaos] faults: {} kills, {} restarts, {} crashes, {} panics logged; leader Lease stolen {}×, deleted {}×; \
         {} leader changes, {:.1}s without a leader; kube-apiserver restarted once ({:?})",
        get(&s.kills),
        get(&s.restarts),
        get(&s.crashes),
        logged.panics,
        get(&s.steals),
        get(&s.lease_deletes),
        get(&s.leader_changes),
        get(&s.leaderless_ms) as f64 / 1000.0,
        loaded.apiserver_down.unwrap_or_default()
    );
    eprintln!(
        "[chaos] orphans: {} left on purpose ({} rejected after reserving, {} admitted directly and never \
         created: {} of these {} reclaimed by token); {} reservations reclaimed in all (leaders' logs; also \
         those of Pods deleted before any leader bound them, and of admissions cut off by a kill)",
        s.orphans(),
        get(&s.rejected),
        get(&s.direct_orphans),
        logged.known_reclaimed,
        logged.known_orphans,
        logged.reclaimed
    );
    eprintln!(
        "[chaos] denials: {:?}",
        s.denials.lock().unwrap_or_else(|p| p.into_inner())
    );
    eprintln!(
        "[chaos] errors seen by the load (expected under faults): {:?}",
        s.errors.lock().unwrap_or_else(|p| p.into_inner())
    );
    let re = Reinvoked::of(w, loaded);
    eprintln!(
        "[chaos] reinvocation: {} Pods with an address admitted through the apiserver, {} changed by the \
         reordering webhook after nadipam, {} not; the reordering webhook called {} times ({} for a Pod carrying \
         nadipam's token, {} of them dry runs; called again {} times, {} for dry runs); nadipam reinvoked {} times \
         ({} dry runs, {} of them refused): {} refused, {} refused with the API server away during its restart ({} at other times), {} \
         answers changed the Pod, {} unanswered; {} denials of a Pod's own reservation seen by the load ({} for an \
         API error)",
        re.pods_through_apiserver,
        re.pods_reinvoked,
        re.pods_not_reinvoked,
        re.reorderer_calls,
        re.reorderer_after_nadipam,
        re.reorderer_after_nadipam_dry,
        re.reorderer_again,
        re.reorderer_again_dry,
        re.nadipam_reinvoked,
        re.nadipam_reinvoked_dry,
        re.nadipam_dry_denied,
        re.nadipam_denied,
        re.nadipam_api_errors_at_restart,
        re.nadipam_api_errors_otherwise,
        re.nadipam_changed,
        re.nadipam_unanswered,
        re.load_denials,
        re.load_api_errors
    );
    for e in w
        .backends
        .reinvocations
        .examples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        eprintln!("[chaos]   {e}");
    }
    eprintln!(
        "[chaos] during the run: {} consistent snapshots audited, worst: {} addresses held by two",
        get(&s.audits),
        get(&s.audit_worst)
    );
    for e in s.examples.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        eprintln!("[chaos]   {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_replicas_killed_leader_stolen_apiserver_restarted_addresses_stay_unique_and_counted()
{
    let target = allocations_wanted();
    let seed = seed();
    let load_before = record::load_average();
    let t0 = Instant::now();
    eprintln!(
        "[chaos] {target} allocations, {REPLICAS} replicas, reclaim window {RECLAIM_AFTER:?}, seed {seed} \
         (NADIPAM_CHAOS_SEED={seed} repeats the choices)"
    );
    let bed = setup()
        .await
        .unwrap_or_else(|e| panic!("setting up the chaos run: {e}"));
    let w = bed.world.clone();
    let setup_time = t0.elapsed();
    eprintln!(
        "[chaos] set up in {setup_time:.1?}: namespace {}, Subnet {} ({CIDR}), IPPool {} ({POOL_RANGE}), replicas {:?}",
        w.ns, w.subnet, w.pool, w.backends.urls
    );

    let loaded = run_load(&w, target, seed).await;
    let settled = settle(&w).await;
    let logged = read_logs(&w);
    print_figures("final figures (after the reclaim window)", &settled.figures);
    report(&w, target, &loaded, &logged);

    let teardown_start = Instant::now();
    let left = teardown(&w).await;
    let teardown_time = teardown_start.elapsed();
    let total = t0.elapsed();
    eprintln!(
        "[chaos] durations: setup {setup_time:.1?}, load {:.1?}, settle + reclaim window + convergence {:.1?}, \
         teardown {teardown_time:.1?}, total {total:.1?}; {left} leases left after the namespace was deleted",
        loaded.time, settled.time,
    );

    let run = Run {
        target,
        seed,
        load_before,
        loaded: &loaded,
        settled: &settled,
        logged: &logged,
        left,
        setup_time,
        teardown_time,
        total,
    };
    let failures = verdict(&w, &run);
    for f in &failures {
        eprintln!("[chaos] FAILED: {f}");
    }
    let record = record_of(&w, &run, &failures);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    match record::write(repo, &record) {
        Ok(paths) => eprintln!("[chaos] figures written to {paths:?}"),
        Err(e) => panic!("writing the figures: {e}"),
    }
    assert!(failures.is_empty(), "the chaos run failed: {failures:#?}");
    drop(bed);
}

/// Everything measured of one run, for [`verdict`] and [`record_of`].
struct Run<'a> {
    target: u64,
    seed: u64,
    load_before: [f64; 3],
    loaded: &'a Loaded,
    settled: &'a Settled,
    logged: &'a Logged,
    /// Leases left after the namespace was deleted.
    left: usize,
    setup_time: Duration,
    teardown_time: Duration,
    total: Duration,
}

/// What the run requires, each unmet requirement as a sentence (empty: the run passed).
fn verdict(w: &World, run: &Run) -> Vec<String> {
    let s = &w.stats;
    let f = &run.settled.figures;
    let re = Reinvoked::of(w, run.loaded);
    let mut failed = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failed.push(what);
        }
    };
    check(
        run.loaded.allocations >= run.target,
        format!("{} of {} allocations", run.loaded.allocations, run.target),
    );
    check(
        get(&s.audit_worst) == 0,
        format!(
            "an address was held by two live Pods during the run (worst snapshot: {})",
            get(&s.audit_worst)
        ),
    );
    check(
        get(&s.race_max_winners) <= 1,
        "two replicas reserved the same fixed address or MAC".into(),
    );
    check(
        get(&s.crashes) + run.logged.panics == 0,
        format!(
            "a replica crashed ({} crashes, {} panics logged)",
            get(&s.crashes),
            run.logged.panics
        ),
    );
    if let Err(e) = &run.settled.converged {
        check(false, format!("the figures did not reach 0: {e}"));
    }
    check(
        (f.held_by_two(), f.leaked, f.status_diff) == (0, 0, 0),
        format!(
            "the three figures: {} addresses held by two live Pods, {} leases without a live owner, status diff {}",
            f.held_by_two(),
            f.leaked,
            f.status_diff
        ),
    );
    check(
        run.left == 0,
        format!("{} leases left after the namespace was deleted", run.left),
    );
    check(get(&s.kills) > 0, "no replica was killed".into());
    check(
        get(&s.steals) + get(&s.lease_deletes) > 0,
        "the leader Lease was never taken away".into(),
    );
    check(
        run.loaded.apiserver_down.is_some(),
        "kube-apiserver was not restarted".into(),
    );
    check(
        re.nadipam_denied + re.nadipam_api_errors_otherwise + re.load_denials == 0,
        format!(
            "Pods refused because of reinvocation: {} reinvocations refused, {} for an API error outside the \
             apiserver's restart, {} denials of a Pod's own reservation",
            re.nadipam_denied, re.nadipam_api_errors_otherwise, re.load_denials
        ),
    );
    check(
        re.reorderer_again == re.reorderer_again_dry,
        format!(
            "the reordering webhook was called again for {} Pods that were not dry runs (a reinvocation changed them)",
            re.reorderer_again - re.reorderer_again_dry
        ),
    );
    check(
        re.nadipam_changed == 0,
        format!(
            "{} reinvocations answered with another allocation than the first call's",
            re.nadipam_changed
        ),
    );
    check(
        re.pods_not_reinvoked == 0 && re.pods_reinvoked > 0,
        format!(
            "{} Pods got an address through the apiserver without the reordering webhook ({} with it)",
            re.pods_not_reinvoked, re.pods_reinvoked
        ),
    );
    check(
        re.nadipam_reinvoked >= re.pods_reinvoked,
        format!(
            "nadipam was reinvoked {} times for {} Pods changed after it",
            re.nadipam_reinvoked, re.pods_reinvoked
        ),
    );
    failed
}

fn map_of(m: &Mutex<BTreeMap<String, u64>>) -> serde_json::Value {
    json!(*m.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The run's figures as they go to chaos.json.
fn record_of(w: &World, run: &Run, failures: &[String]) -> serde_json::Value {
    let s = &w.stats;
    let f = &run.settled.figures;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    json!({
        "generated": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "commit": record::commit(repo),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "seed": run.seed,
        "cpus": record::cpus(),
        "load_before": run.load_before,
        "load_after": record::load_average(),
        "replicas": REPLICAS,
        "reclaim_after_s": RECLAIM_AFTER.as_secs(),
        "passed": failures.is_empty(),
        "failures": failures,
        "allocations": {
            "target": run.target,
            "total": run.loaded.allocations,
            "pods_with_address": s.pods_seen(),
            "rejected_after_reserving": get(&s.rejected),
            "direct_never_created": get(&s.direct_orphans),
        },
        "figures": {
            "held_by_two": f.held_by_two(),
            "pod_pod": f.pod_pod,
            "mac_pod_pod": f.mac_pod_pod,
            "pod_lease": f.pod_lease,
            "live_pods": f.live_pods,
            "leaked": f.leaked,
            "leases": f.leases,
            "status_diff": f.status_diff,
            "status": f.status_line,
            "snapshots": get(&s.audits),
            "worst_snapshot": get(&s.audit_worst),
        },
        "reinvocation": Reinvoked::of(w, run.loaded),
        "load": {
            "created_through_apiserver": get(&s.bare_created),
            "direct_created": get(&s.direct_created),
            "dry_runs": get(&s.dry_runs) + get(&s.direct_dry),
            "dry_runs_direct": get(&s.direct_dry),
            "deletes": get(&s.pods_deleted),
            "statefulset_deletes": get(&s.sts_deletes),
            "scalings": get(&s.scales),
            "races": get(&s.races),
            "mac_races": get(&s.mac_races),
            "race_winners": get(&s.race_winners),
            "race_max_winners": get(&s.race_max_winners),
        },
        "spread": {
            "proxy_per_replica": w.backends.served.iter().map(get).collect::<Vec<_>>(),
            "direct_per_replica": s.direct_sent.iter().map(get).collect::<Vec<_>>(),
            "redirected": get(&w.backends.redirected),
            "cut": get(&w.backends.cut),
            "unavailable": get(&w.backends.unavailable),
        },
        "faults": {
            "kills": get(&s.kills),
            "restarts": get(&s.restarts),
            "crashes": get(&s.crashes),
            "panics": run.logged.panics,
            "lease_stolen": get(&s.steals),
            "lease_deleted": get(&s.lease_deletes),
            "leader_changes": get(&s.leader_changes),
            "leaderless_s": get(&s.leaderless_ms) as f64 / 1000.0,
            "apiserver_restarts": u64::from(run.loaded.apiserver_down.is_some()),
            "apiserver_away_s": run.loaded.apiserver_down.map(|d| d.as_secs_f64()),
        },
        "orphans": {
            "left": s.orphans(),
            "direct": run.logged.known_orphans,
            "direct_reclaimed_by_token": run.logged.known_reclaimed,
            "reclaimed": run.logged.reclaimed,
        },
        "denials": map_of(&s.denials),
        "errors": map_of(&s.errors),
        "leases_left_after_teardown": run.left,
        "durations": {
            "setup_s": run.setup_time.as_secs_f64(),
            "load_s": run.loaded.time.as_secs_f64(),
            "settle_s": run.settled.time.as_secs_f64(),
            "teardown_s": run.teardown_time.as_secs_f64(),
            "total_s": run.total.as_secs_f64(),
        },
    })
}

/// Deletes the namespace (and so every Pod) and the IPPool, waits until the controller has released every
/// lease of the Subnet; returns how many are left.
async fn teardown(w: &World) -> usize {
    let _ = within(
        "deleting the namespace",
        Api::<Namespace>::all(w.client.clone()).delete(&w.ns, &DeleteParams::default()),
    )
    .await;
    let leases: Api<IPLease> = Api::all(w.client.clone());
    let selector = format!("nadipam.io/subnet={}", w.subnet);
    let left = until("every lease released", Duration::from_secs(120), || async {
        let n = leases
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| e.to_string())?
            .items
            .len();
        if n == 0 { Ok(0) } else { Err(n.to_string()) }
    })
    .await;
    match left {
        Ok(n) => n,
        Err(_) => leases
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items.len())
            .unwrap_or(usize::MAX),
    }
}
