//! Burst: N Pods created by Deployments (N/10 × 10, or 1 × N), timed from the first Deployment create until
//! every Pod exists and, with nadipam, carries its addresses. The same burst without any webhook is the
//! baseline. With nadipam, the time until every lease is settled (a server that binds, `--bind-leases`: until
//! every lease is Bound, binds being paced at `--bind-rate`; otherwise when the last Pod appeared) and the CPU
//! until then are recorded too. Then every Deployment is deleted and the time until every lease is gone is
//! the release time.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use nadipam::api::{IPLease, LeasePhase, subnet_selector};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::common::server::Server;
use crate::cpu;
use crate::env::{Bed, until};
use crate::promtext::{self, Samples};

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum Stack {
    V4,
    Dual,
}

#[derive(Clone, Debug)]
pub struct Shape {
    pub deployments: usize,
    pub replicas: usize,
    pub stack: Stack,
}

impl Shape {
    pub fn new(deployments: usize, replicas: usize, stack: Stack) -> Shape {
        Shape {
            deployments,
            replicas,
            stack,
        }
    }

    pub fn pods(&self) -> usize {
        self.deployments * self.replicas
    }

    pub fn label(&self) -> String {
        let stack = match self.stack {
            Stack::V4 => "IPv4",
            Stack::Dual => "dual stack",
        };
        format!("{} × {} ({stack})", self.deployments, self.replicas)
    }
}

/// Where a Pod create spends its time, from the apiserver's own metrics over the burst (means per request).
#[derive(Clone, Debug, Serialize, Default)]
pub struct Breakdown {
    /// Pod creates the apiserver served in the window.
    pub pod_creates: f64,
    /// Mean apiserver latency of a Pod create, admission and storage included.
    pub pod_create_ms: f64,
    /// Mean time the apiserver waited on mutating webhooks per Pod create.
    pub mutating_webhook_ms: f64,
    /// Mean time the apiserver waited on validating webhooks per Deployment create (nadipam validates workloads).
    pub validating_webhook_ms: f64,
    /// Mean etcd create latency for Pods, as the apiserver measured it.
    pub etcd_pod_create_ms: f64,
    /// IPLease creates that reached etcd (one per address), and their mean etcd latency.
    pub etcd_lease_creates: f64,
    pub etcd_lease_create_ms: f64,
    /// Requests the apiserver served in the window, by verb and resource (those with at least one per 20 Pods).
    pub requests: BTreeMap<String, f64>,
    /// Every etcd request the apiserver made in the window (all resources, all operations).
    pub etcd_requests: f64,
}

/// The webhook's own view: its admission histogram over the window.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub count: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The histogram bucket bounds the quantiles fall in.
    pub p50_bucket_ms: f64,
    pub p99_bucket_ms: f64,
}

impl Latency {
    pub fn from_buckets(buckets: &[(f64, f64)]) -> Option<Latency> {
        let (p50, b50) = promtext::quantile(buckets, 0.5)?;
        let (p99, b99) = promtext::quantile(buckets, 0.99)?;
        Some(Latency {
            count: buckets.last().map_or(0.0, |b| b.1),
            p50_ms: p50 * 1000.0,
            p99_ms: p99 * 1000.0,
            p50_bucket_ms: b50 * 1000.0,
            p99_bucket_ms: b99 * 1000.0,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BurstResult {
    pub shape: String,
    pub deployments: usize,
    pub replicas: usize,
    pub stack: Stack,
    /// false: no webhook registered (the baseline).
    pub nadipam: bool,
    /// A server configuration other than the default (e.g. the earlier default, for a before/after).
    pub variant: Option<String>,
    pub pods: usize,
    pub wall_s: f64,
    pub pods_per_s: f64,
    /// Delete of every Deployment until every Pod (baseline) or every lease (nadipam) is gone.
    pub release_s: f64,
    pub distinct_addresses: usize,
    pub apiserver: Breakdown,
    pub admission: Option<Latency>,
    /// CPU seconds per component from the first create until the last Pod was seen.
    pub cpu_s: BTreeMap<String, f64>,
    /// nadipam: from the first create until every lease was settled (Bound, for a server that binds).
    pub bound_s: Option<f64>,
    /// nadipam: CPU seconds per component from the first create until every lease was settled (the whole work
    /// of the burst, paced binds included), net of the idle control plane's.
    pub cpu_bound_s: Option<BTreeMap<String, f64>>,
}

/// "none", "nadipam" or "nadipam <variant>": the IPAM column of the report.
pub fn ipam_label(nadipam: bool, variant: Option<&str>) -> String {
    match (nadipam, variant) {
        (false, _) => "none".to_owned(),
        (true, None) => "nadipam".to_owned(),
        (true, Some(v)) => format!("nadipam {v}"),
    }
}

static RUN: AtomicUsize = AtomicUsize::new(0);

/// The nadipam server a burst runs against.
#[derive(Clone, Copy)]
pub struct Nadipam<'a> {
    pub server: &'a Server,
    /// Its configuration, when not the default (the report's label).
    pub variant: Option<&'a str>,
    /// It binds leases (`--bind-leases`): the burst is settled once every lease is Bound.
    pub binds: bool,
}

/// One burst in a fresh namespace with its own NetworkAttachmentDefinition and Subnet; `with` None: no
/// webhook (the baseline).
pub async fn run(bed: &Bed, shape: &Shape, with: Option<Nadipam<'_>>) -> BurstResult {
    let nadipam = with.is_some();
    let server = with.map(|w| w.server);
    let variant = with.and_then(|w| w.variant);
    let k = RUN.fetch_add(1, Ordering::SeqCst);
    let n = shape.pods();
    let ns = format!("bench-burst-{k}-{}", std::process::id());
    let provider = format!("net.{ns}");
    let cidr = match shape.stack {
        Stack::V4 => format!("10.{}.0.0/16", 100 + k),
        Stack::Dual => format!("10.{}.0.0/16,fd00:{}::/64", 100 + k, 100 + k),
    };
    let subnet = ns.clone();
    network(bed, &ns, &subnet, &cidr);
    settle(bed, &ns).await;
    let client = bed.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let families = match shape.stack {
        Stack::V4 => 1,
        Stack::Dual => 2,
    };
    eprintln!(
        "bench: burst {} with IPAM {}: {n} Pods in namespace {ns}",
        shape.label(),
        ipam_label(nadipam, variant)
    );

    let key = format!("{provider}.kubernetes.io/ip_address");
    let (ready_tx, ready_rx) = oneshot::channel();
    let watch = tokio::spawn(watch_until(
        pods.clone(),
        n,
        nadipam.then_some(key),
        ready_tx,
    ));
    ready_rx
        .await
        .unwrap_or_else(|_| panic!("the Pod watch of {ns} ended before its first list"));

    let api_before = bed.apiserver_metrics().await;
    let web_before = server.map(admission_buckets);
    let cpu_before = cpu::snapshot();
    let start = Instant::now();
    let mut creates = tokio::task::JoinSet::new();
    for d in 0..shape.deployments {
        let deployments = deployments.clone();
        let dep = deployment(&format!("d-{d}"), shape.replicas, &ns);
        creates.spawn(async move { deployments.create(&PostParams::default(), &dep).await });
    }
    while let Some(r) = creates.join_next().await {
        r.unwrap_or_else(|e| panic!("create task: {e}"))
            .unwrap_or_else(|e| panic!("creating a Deployment in {ns}: {e}"));
    }
    let (done_at, seen) = tokio::time::timeout(Duration::from_secs(600), watch)
        .await
        .unwrap_or_else(|_| panic!("{ns}: not every one of {n} Pods appeared within 600 s"))
        .unwrap_or_else(|e| panic!("watch task: {e}"));
    let wall = done_at.duration_since(start);
    let cpu_s = cpu::delta(&cpu_before, &cpu::snapshot());
    let api_after = bed.apiserver_metrics().await;
    let admission = server.zip(web_before).map(|(server, before)| {
        let during = promtext::bucket_delta(&before, &admission_buckets(server));
        Latency::from_buckets(&during)
            .unwrap_or_else(|| panic!("{ns}: nadipam's histogram saw no Pod admission"))
    });

    // Correctness: with nadipam every Pod has its own address in each family, and one lease per address.
    let mut distinct = HashSet::new();
    for ips in seen.values() {
        let parts: Vec<&str> = ips.split(',').filter(|s| !s.is_empty()).collect();
        if nadipam {
            assert_eq!(parts.len(), families, "{ns}: a Pod got {ips:?}");
        }
        for ip in parts {
            assert!(
                distinct.insert(ip.to_owned()),
                "{ns}: address {ip} handed out twice"
            );
        }
    }
    let leases: Api<IPLease> = Api::all(client.clone());
    let lease_count = |leases: Api<IPLease>, subnet: String| async move {
        leases
            .list_metadata(&ListParams::default().labels(&subnet_selector(&subnet)))
            .await
            .map(|l| l.items.len())
            .map_err(|e| e.to_string())
    };
    if nadipam {
        assert_eq!(distinct.len(), n * families, "{ns}: distinct addresses");
        let count = lease_count(leases.clone(), subnet.clone())
            .await
            .unwrap_or_else(|e| panic!("listing leases: {e}"));
        assert_eq!(count, n * families, "{ns}: leases of Subnet {subnet}");
    }
    let (bound_s, cpu_bound_s) = match with {
        Some(with) if with.binds => {
            all_bound(with.server, &leases, &subnet, n * families).await;
            let elapsed = start.elapsed();
            let cpu = cpu::net_of_idle(
                cpu::delta(&cpu_before, &cpu::snapshot()),
                &bed.idle_cpu,
                elapsed,
            );
            (Some(elapsed.as_secs_f64()), Some(cpu))
        }
        // Without binds every lease is settled once its Pod is stored: the burst itself.
        Some(_) => (
            Some(wall.as_secs_f64()),
            Some(cpu::net_of_idle(cpu_s.clone(), &bed.idle_cpu, wall)),
        ),
        None => (None, None),
    };

    // Release: delete every Deployment; the garbage collector deletes ReplicaSets and Pods, nadipam the leases.
    let release_start = Instant::now();
    deployments
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting the Deployments of {ns}: {e}"));
    until(
        &format!("every Pod of {ns} to be deleted"),
        Duration::from_secs(600),
        Duration::from_millis(50),
        || {
            let pods = pods.clone();
            async move {
                let left = pods
                    .list_metadata(&ListParams::default().limit(1))
                    .await
                    .map_err(|e| e.to_string())?;
                if left.items.is_empty() {
                    Ok(())
                } else {
                    Err("Pods left".into())
                }
            }
        },
    )
    .await;
    if nadipam {
        until(
            &format!("every lease of Subnet {subnet} to be released"),
            Duration::from_secs(600),
            Duration::from_millis(50),
            || {
                let (leases, subnet) = (leases.clone(), subnet.clone());
                async move {
                    match lease_count(leases, subnet).await? {
                        0 => Ok(()),
                        left => Err(format!("{left} leases left")),
                    }
                }
            },
        )
        .await;
    }
    let release = release_start.elapsed();
    cleanup(bed, &ns, &subnet).await;

    let result = BurstResult {
        shape: shape.label(),
        deployments: shape.deployments,
        replicas: shape.replicas,
        stack: shape.stack,
        nadipam,
        variant: variant.map(str::to_owned),
        pods: n,
        wall_s: wall.as_secs_f64(),
        pods_per_s: n as f64 / wall.as_secs_f64(),
        release_s: release.as_secs_f64(),
        distinct_addresses: distinct.len(),
        apiserver: breakdown(&api_before, &api_after),
        admission,
        cpu_s,
        bound_s,
        cpu_bound_s,
    };
    eprintln!(
        "bench:   {n} Pods in {:.2} s ({:.0}/s), every lease settled after {:?} s, released in {:.2} s; apiserver {:?}; webhook {:?}",
        result.wall_s,
        result.pods_per_s,
        result.bound_s,
        result.release_s,
        result.apiserver,
        result.admission
    );
    result
}

/// Leases the server holds back for a paced bind (`nadipam_bind_backlog`).
pub fn bind_backlog(server: &Server) -> f64 {
    promtext::parse(&server.metrics()).sum("nadipam_bind_backlog", &[])
}

/// Waits until the server's bind backlog is empty: every lease of the phase bound or released, so the next
/// phase does not share the machine with its binds.
pub async fn binds_drained(server: &Server) {
    until(
        "the bind backlog to drain",
        Duration::from_secs(600),
        Duration::from_millis(250),
        || async {
            match bind_backlog(server) {
                0.0 => Ok(()),
                left => Err(format!("{left} leases waiting")),
            }
        },
    )
    .await;
}

/// Waits until `want` leases of `subnet` are Bound: the server's backlog (a cheap metrics read, polled) is
/// empty, then a list of the Subnet's leases confirms it (the last binds may still be in flight).
pub async fn all_bound(server: &Server, leases: &Api<IPLease>, subnet: &str, want: usize) {
    binds_drained(server).await;
    until(
        &format!("every lease of Subnet {subnet} to be Bound"),
        Duration::from_secs(600),
        Duration::from_millis(250),
        || {
            let (leases, subnet) = (leases.clone(), subnet.to_owned());
            async move {
                let list = leases
                    .list(&ListParams::default().labels(&subnet_selector(&subnet)))
                    .await
                    .map_err(|e| e.to_string())?;
                let bound = list
                    .items
                    .iter()
                    .filter(|l| l.spec.phase == LeasePhase::Bound)
                    .count();
                if bound >= want {
                    Ok(())
                } else {
                    Err(format!("{bound} of {want} Bound"))
                }
            }
        },
    )
    .await;
}

/// A namespace (with its default ServiceAccount, which Pod admission needs), a NAD and a Subnet.
pub fn network(bed: &Bed, ns: &str, subnet: &str, cidr: &str) {
    bed.apply(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: net, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
    "ipam": {{"type": "nadipam", "provider": "net.{ns}"}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  provider: net.{ns}
  cidrBlock: "{cidr}"
"#
    ));
}

/// Waits until the namespace's default ServiceAccount exists and the webhook's caches have the Subnet.
pub async fn settle(bed: &Bed, ns: &str) {
    let sas: Api<ServiceAccount> = Api::namespaced(bed.client.clone(), ns);
    until(
        &format!("ServiceAccount {ns}/default"),
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let sas = sas.clone();
            async move {
                match sas.get_opt("default").await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("not yet".into()),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    // The webhook decides from reflector caches; a just-applied Subnet reaches them within milliseconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Deletes the namespace (and waits for it to go) and the Subnet.
pub async fn cleanup(bed: &Bed, ns: &str, subnet: &str) {
    let _ = bed
        .cluster
        .kubectl()
        .args([
            "delete",
            "subnet",
            subnet,
            "--ignore-not-found",
            "--wait=false",
        ])
        .output();
    crate::common::delete_namespace_and_wait(&bed.client, ns, Duration::from_secs(600)).await;
}

fn deployment(name: &str, replicas: usize, ns: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"k8s.v1.cni.cncf.io/networks": format!("{ns}/net")}
                },
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    }))
    .unwrap_or_else(|e| panic!("deployment literal: {e}"))
}

/// Watches the namespace's Pods until `n` of them are done (exist; with `key`, carry that annotation) and
/// returns when that happened and each done Pod's `key` value. Signals `ready` once the initial list is in.
async fn watch_until(
    pods: Api<Pod>,
    n: usize,
    key: Option<String>,
    ready: oneshot::Sender<()>,
) -> (Instant, BTreeMap<String, String>) {
    let mut ready = Some(ready);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut stream = watcher(pods, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            Ok(watcher::Event::InitDone) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                eprintln!("bench: pod watch: {e} (retrying)");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let value = match &key {
            None => Some(String::new()),
            Some(k) => pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(k))
                .cloned(),
        };
        if let Some(v) = value {
            seen.insert(name, v);
            if seen.len() >= n {
                return (Instant::now(), seen);
            }
        }
    }
    panic!("the Pod watch ended with {} of {n} Pods seen", seen.len());
}

/// nadipam's Pod admission histogram buckets, summed over outcomes.
pub fn admission_buckets(server: &Server) -> Vec<(f64, f64)> {
    promtext::parse(&server.metrics()).buckets(
        "nadipam_admission_duration_seconds",
        &[("resource", "pods")],
    )
}

fn mean(s: &Samples, before: &Samples, name: &str, want: &[(&str, &str)]) -> (f64, f64) {
    let sum = s.sum(&format!("{name}_sum"), want) - before.sum(&format!("{name}_sum"), want);
    let count = s.sum(&format!("{name}_count"), want) - before.sum(&format!("{name}_count"), want);
    (
        count,
        if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        },
    )
}

pub fn breakdown(before: &Samples, after: &Samples) -> Breakdown {
    let (creates, create_ms) = mean(
        after,
        before,
        "apiserver_request_duration_seconds",
        &[("verb", "POST"), ("resource", "pods"), ("subresource", "")],
    );
    let (_, mutating_ms) = mean(
        after,
        before,
        "apiserver_admission_webhook_admission_duration_seconds",
        &[("operation", "CREATE"), ("type", "admit")],
    );
    let (_, validating_ms) = mean(
        after,
        before,
        "apiserver_admission_webhook_admission_duration_seconds",
        &[("operation", "CREATE"), ("type", "validating")],
    );
    let (_, etcd_ms) = mean(
        after,
        before,
        "etcd_request_duration_seconds",
        &[("operation", "create"), ("resource", "pods")],
    );
    let (lease_creates, etcd_lease_ms) = mean(
        after,
        before,
        "etcd_request_duration_seconds",
        &[("operation", "create"), ("resource", "ipleases")],
    );
    let (etcd_requests, _) = mean(after, before, "etcd_request_duration_seconds", &[]);
    let by = ["verb", "resource", "subresource"];
    let was = before.group("apiserver_request_total", &by);
    let requests = after
        .group("apiserver_request_total", &by)
        .into_iter()
        .map(|(k, v)| {
            let d = v - was.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, d)| *d >= creates / 20.0 && *d > 0.0)
        .collect();
    Breakdown {
        pod_creates: creates,
        pod_create_ms: create_ms,
        mutating_webhook_ms: mutating_ms,
        validating_webhook_ms: validating_ms,
        etcd_pod_create_ms: etcd_ms,
        etcd_lease_creates: lease_creates,
        etcd_lease_create_ms: etcd_lease_ms,
        etcd_requests,
        requests,
    }
}
